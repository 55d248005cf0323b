"""`dbwarden policy check` and `dbwarden policy eval`: good files pass and bad ones are reported as
`FILE:LINE: reason` with exit code 2; eval decides plain SQL and JSON lines under the default pack
and under listed files, one JSON line per input.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_policy_cli.py -v
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / 'policy' / 'packs' / 'guardrails.yaml'
EXAMPLES = REPO / 'tests' / 'policy' / 'testdata'


class PolicyCliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.bin = fx.dbwarden_bin()
        cls.tmp = tempfile.TemporaryDirectory(prefix='dbwarden-policy-')
        cls.addClassCleanup(cls.tmp.cleanup)

    def write(self, name, text):
        path = Path(self.tmp.name) / name
        path.write_text(text)
        return str(path)

    def run_cli(self, args, stdin=''):
        return subprocess.run([self.bin, 'policy'] + args, input=stdin, capture_output=True,
                              text=True, timeout=60)

    def eval_lines(self, args, lines):
        r = self.run_cli(['eval'] + args, '\n'.join(lines) + '\n')
        out = [json.loads(line) for line in r.stdout.splitlines()]
        return r, out

    # --- policy check -------------------------------------------------------------------------

    def test_check_good_files(self):
        r = self.run_cli(['check', str(PACK)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f'{PACK}: ok (18 rules)\n')
        examples = sorted(str(p) for p in EXAMPLES.glob('*.yaml'))
        r = self.run_cli(['check', str(PACK)] + examples)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 1 + len(examples))

    def test_check_bad_files_name_file_and_line(self):
        cases = [
            (['version: 1', 'rules:', '  - id: a', '    action: block'], 4, 'unknown action "block"'),
            (['version: 1', 'rules:', '  - id: a', '    match:', '      statement:',
              '        commands: [DROPP]', '    action: deny'], 6, 'unknown command "DROPP"'),
            (['version: 1', 'rules:', '  - id: a', '    action: deny',
              '    approval: {timeout: 5m}'], 5, 'approval is only allowed with action: approve'),
            (['version: 1', 'rules:', '  - action: deny'], 3, 'missing required key "id"'),
            (['version: 1', 'rules:', '  - id: a', '    match:',
              '      time: {between: "9-5"}', '    action: deny'], 5, 'expected a window like'),
            (['version: 1', 'colour: blue'], 2, 'unknown key "colour"'),
        ]
        for i, (lines, line, what) in enumerate(cases):
            with self.subTest(what=what):
                path = self.write(f'bad{i}.yaml', '\n'.join(lines) + '\n')
                r = self.run_cli(['check', path])
                self.assertEqual(r.returncode, 2)
                self.assertIn(f'{path}:{line}: ', r.stderr)
                self.assertIn(what, r.stderr)

    def test_check_duplicate_ids_across_files_and_missing_glob(self):
        a = self.write('dup-a.yaml', 'version: 1\nrules:\n  - {id: x, action: log}\n')
        b = self.write('dup-b.yaml', 'version: 1\nrules:\n  - {id: x, action: deny}\n')
        r = self.run_cli(['check', a, b])
        self.assertEqual(r.returncode, 2)
        self.assertIn(f'{b}:3: duplicate rule id "x" (first defined at {a}:3)', r.stderr)
        r = self.run_cli(['check', os.path.join(self.tmp.name, 'nothing', '*.yaml')])
        self.assertEqual(r.returncode, 2)
        self.assertIn('no policy files match', r.stderr)
        self.assertEqual(self.run_cli(['check']).returncode, 2)

    # --- policy eval --------------------------------------------------------------------------

    def test_eval_plain_lines_default_pack(self):
        r, out = self.eval_lines(['--principal-kind', 'agent', '--env', 'prod'], [
            'DROP TABLE orders',
            'DELETE FROM orders',
            'SELECT id FROM orders WHERE id = 1',
            'SELEC broken',
        ])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([o['action'] for o in out], ['deny', 'deny', 'allow', 'deny'])
        self.assertEqual(out[0]['rules'], ['prod-destructive-agent'])
        self.assertIn('denied by rule prod-destructive-agent', out[0]['reason'])
        self.assertEqual(out[0]['sqlstate'], '42501')
        st = out[0]['statements'][0]
        self.assertEqual(st['command'], 'DROP')
        for key in ('object_kind', 'risks', 'tables_read', 'tables_written', 'functions',
                    'normalized', 'fingerprint'):
            self.assertIn(key, st)
        self.assertEqual(out[1]['rules'], ['prod-no-where-agent'])
        self.assertIn('no_where', out[1]['statements'][0]['risks'])
        self.assertEqual(out[2]['rules'], [])
        self.assertEqual(out[3]['rules'], ['prod-unparseable'])

    def test_eval_json_lines(self):
        lines = [
            json.dumps({'sql': 'DROP TABLE orders', 'principal': {'kind': 'human'}, 'id': 'a'}),
            json.dumps({'sql': 'DROP TABLE orders', 'env': 'staging',
                        'principal': {'kind': 'agent'}}),
            json.dumps({'sql': 'SELECT * FROM orders', 'target': 'orders',
                        'principal': {'kind': 'agent', 'db_user': 'svc', 'groups': ['ml'],
                                      'application_name': 'bot', 'exe': '/opt/agents/bot',
                                      'unit': 'ai.service'}}),
            '{"sql": "SELECT 1"',   # broken JSON: reported, the rest still decided
            json.dumps({'sql': 'SELECT 1; TRUNCATE orders', 'principal': {'kind': 'human'}}),
        ]
        r, out = self.eval_lines([], lines)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(out), 5)
        self.assertEqual(out[0]['id'], 'a')
        self.assertEqual(out[0]['action'], 'approve')
        self.assertEqual(out[0]['approval']['mode'], 'hold')
        self.assertEqual(out[0]['approval']['timeout_s'], 600)
        self.assertEqual(out[1]['action'], 'allow')
        self.assertEqual(out[2]['action'], 'deny')
        self.assertEqual(out[2]['rules'], ['prod-unbounded-select-agent'])
        self.assertEqual(out[3]['line'], 4)
        self.assertIn('invalid JSON', out[3]['error'])
        self.assertEqual(out[4]['action'], 'approve')
        self.assertEqual(len(out[4]['statements']), 2)

    def test_eval_with_parameter_values(self):
        # A statement with parameters is judged at its worst, and with `params` as the relay
        # judges a Bind or EXECUTE with those values; the normalized text stays the statement's.
        sql = 'DELETE FROM orders WHERE id > $1'
        lines = [json.dumps({'sql': sql})] + [
            json.dumps({'sql': sql, 'params': p}) for p in (['995'], [-2147483648], [None])
        ] + [json.dumps({'sql': 'SELECT * FROM orders LIMIT $1', 'params': [10]}),
             json.dumps({'sql': 'DELETE FROM orders WHERE note LIKE $1', 'params': ['%']}),
             json.dumps({'sql': sql, 'params': [{'no': 1}]})]
        r, out = self.eval_lines(['--principal-kind', 'agent', '--env', 'prod'], lines)
        self.assertEqual(r.returncode, 2)
        self.assertEqual([o.get('action') for o in out],
                         ['deny', 'allow', 'deny', 'deny', 'allow', 'deny', None])
        self.assertEqual(out[1]['statements'][0]['normalized'], sql)
        self.assertEqual(out[1]['limits']['max_rows']['value'], 100)
        self.assertIn('"params" must be an array', out[6]['error'])

    def test_eval_with_files_classification_and_monitor(self):
        agents = self.write('agents.yaml',
                            'version: 1\nprincipals:\n  agents:\n    - db_user: ["svc_ai_*"]\n')
        r, out = self.eval_lines(['--policy', str(PACK), '--policy', agents, '--user',
                                  'svc_ai_bot', '--mode', 'monitor'],
                                 ['TRUNCATE orders', '{"sql": "TRUNCATE orders", '
                                  '"principal": {"db_user": "alice"}}'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(out[0]['principal_kind'], 'agent')
        self.assertEqual(out[0]['action'], 'deny')
        self.assertTrue(out[0]['monitor'])
        self.assertEqual(out[1]['principal_kind'], 'human')
        self.assertEqual(out[1]['action'], 'approve')

    def test_eval_target_selects_rules_by_target_name(self):
        site = self.write('by-target.yaml',
                          'version: 1\nrules:\n  - id: billing-read-only\n    match:\n'
                          '      target: ["billing"]\n'
                          '      statement: {commands: ["UPDATE"]}\n    action: deny\n')
        args = ['--policy', site, '--env', 'staging']
        r, out = self.eval_lines(args + ['--target', 'billing'],
                                 ['UPDATE t SET a = 1 WHERE id = 2',
                                  '{"sql": "UPDATE t SET a = 1 WHERE id = 2", "target": "orders"}'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(out[0]['action'], 'deny')
        self.assertEqual(out[0]['rules'], ['billing-read-only'])
        self.assertNotEqual(out[1]['action'], 'deny', out[1])
        r, out = self.eval_lines(args + ['--target', 'orders'], ['UPDATE t SET a = 1 WHERE id = 2'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(out[0]['action'], 'deny', out[0])

    def test_eval_bad_arguments(self):
        self.assertEqual(self.run_cli(['eval', '--principal-kind', 'robot']).returncode, 2)
        self.assertEqual(self.run_cli(['eval', '--mode', 'strict']).returncode, 2)
        r = self.run_cli(['eval', '--policy', os.path.join(self.tmp.name, 'missing.yaml')],
                         'SELECT 1\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn('missing.yaml:0: cannot open file', r.stderr)


if __name__ == '__main__':
    unittest.main()
