"""Real drivers through the relay: pgjdbc (tests/drivers/jdbc/DriverCheck.java) and node-postgres
(tests/drivers/node/check.js) run a scripted session against a prod target with the default pack.
Prepared statements (unnamed, then named server-side ones), metadata queries, a refused DELETE in
the extended protocol, recovery on the same connection, and a refusal inside a transaction that
aborts it (25P02 after it, nothing kept after ROLLBACK). Agents are denied, humans are told that
approval is required; the audit log shows extended-protocol statements and the deny decisions.

Needs java (17+), Debian's libpostgresql-jdbc-java, node and tests/drivers/node/node_modules
(scripts/install-deps installs all of them); a missing one fails the suite, it is never skipped.

Run: cd tests/integration && DBWARDEN_BIN=../../build/default/agent/dbwarden \
         /usr/bin/python3 -m unittest -v test_drivers
"""

import json
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / 'policy' / 'packs' / 'guardrails.yaml'
JDBC_JAR = Path('/usr/share/java/postgresql.jar')
JAVA_PROGRAM = REPO / 'tests' / 'drivers' / 'jdbc' / 'DriverCheck.java'
NODE_DIR = REPO / 'tests' / 'drivers' / 'node'
NODE_PROGRAM = NODE_DIR / 'check.js'
TOOL_PATH = '/usr/local/bin:/usr/bin:/bin'

AGENTS_POLICY = """version: 1
principals:
  agents:
    - application_name: ["ai-*"]
rules: []
"""

cluster = None
relay = None
JAVA = None
NODE = None


def require_driver_tools():
    global JAVA, NODE
    JAVA = shutil.which('java', path=TOOL_PATH)
    NODE = shutil.which('node', path=TOOL_PATH)
    problems = []
    if JAVA is None:
        problems.append('java not found (install openjdk-17-jre-headless)')
    if not JDBC_JAR.is_file():
        problems.append(f'{JDBC_JAR} not found (install libpostgresql-jdbc-java)')
    if NODE is None:
        problems.append('node not found (install nodejs and npm)')
    if not (NODE_DIR / 'node_modules' / 'pg' / 'package.json').is_file():
        problems.append(f'{NODE_DIR}/node_modules/pg missing (run scripts/install-deps, or '
                        f'npm ci --prefix {NODE_DIR})')
    if problems:
        raise fx.PrerequisiteError('; '.join(problems))


def setUpModule():
    global cluster, relay
    fx.require_postgres()
    fx.dbwarden_bin()
    require_driver_tools()
    workdir = Path(fx.tempfile.mkdtemp(prefix='dbwarden-drivers-'))
    unittest.addModuleCleanup(lambda: shutil.rmtree(workdir, ignore_errors=True))
    (workdir / 'agents.yaml').write_text(AGENTS_POLICY)
    # The default pack in ticket mode: the drivers' scripts expect a refusal at once, not a
    # statement held for a person (holds with real clients are test_approvals' business).
    (workdir / 'guardrails-ticket.yaml').write_text(
        PACK.read_text().replace('mode: hold', 'mode: ticket'))
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.psql("""
        CREATE TABLE customers (id int PRIMARY KEY, email text);
        INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 50) g;
        CREATE TABLE scratch (id int);
    """, dbname='appdb', user='app')
    relay = fx.Relay([{'name': 'orders', 'env': 'prod',
                       'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                     extra={'policy': {'files': [str(workdir / 'guardrails-ticket.yaml'),
                                                 str(workdir / 'agents.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def count(table):
    return int(cluster.query_value(f'SELECT count(*) FROM {table}', dbname='appdb'))


class Transcript:
    """The JSON lines a driver program printed, by step name."""

    def __init__(self, label, proc):
        self.label = label
        self.proc = proc
        self.lines = []
        for raw in proc.stdout.splitlines():
            if raw.startswith('{'):
                self.lines.append(json.loads(raw))

    def all(self, step):
        return [line for line in self.lines if line['step'] == step]

    def one(self, step):
        found = self.all(step)
        if len(found) != 1:
            raise AssertionError(f'{self.label}: expected one "{step}" line, got {len(found)}\n'
                                 f'{self.dump()}')
        return found[0]

    def dump(self):
        return (f'--- {self.label} exit {self.proc.returncode} stdout ---\n{self.proc.stdout[-6000:]}'
                f'--- stderr ---\n{self.proc.stderr[-3000:]}\n{relay.diag(2000)}')


def run_driver(cmd, label, timeout=240):
    env = {'PATH': TOOL_PATH, 'LC_ALL': 'C.UTF-8', 'HOME': os.environ.get('HOME', '/tmp'),
           'TZ': 'UTC'}
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f'{label} did not finish within {timeout}s; output so far:\n'
                             f'{exc.stdout}\n{exc.stderr}\n{relay.diag(2000)}') from None
    return Transcript(label, proc)


def run_java(app):
    return run_driver([JAVA, '-cp', JDBC_JAR, JAVA_PROGRAM, fx.LOOPBACK, relay.port('orders'),
                       'appdb', 'app', app], f'DriverCheck.java as {app}')


def run_node(app):
    return run_driver([NODE, NODE_PROGRAM, fx.LOOPBACK, relay.port('orders'), 'appdb', 'app',
                       app], f'check.js as {app}')


def session_statements(app):
    """The statement events of the (one) session with this application_name, once it ended."""
    # A session's end is written after its statements: wait for it, then read them all.
    relay.wait_for(lambda e: fx.principal(e).get('application_name') == app, kind='session_end',
                   what=f'session_end of {app}')
    return relay.events(kind='statement',
                        predicate=lambda e: fx.principal(e).get('application_name') == app)


_transcripts = {}


class DriverScenario:
    """Shared assertions; the subclasses say which driver runs and what it does differently.

    Each program runs once per application_name (cached), and several tests look at the result:
    the scenario as the driver saw it, the allowed statements' audit events, the refusals' ones.
    """

    driver = None            # 'java' or 'node'
    agent_app = human_app = None
    refusal_steps = ()       # steps that run a DELETE without WHERE outside the transaction
    refusals = 0             # DELETEs refused per run, the transaction's included
    named = None             # predicate on statement.name for a named prepared statement

    def transcript(self, app):
        if app not in _transcripts:
            t = run_java(app) if self.driver == 'java' else run_node(app)
            _transcripts[app] = t
        t = _transcripts[app]
        self.assertEqual(t.proc.returncode, 0, t.dump())
        self.assertEqual(t.one('connect')['ok'], True, t.dump())
        self.assertEqual(t.one('done')['ok'], True, t.dump())
        return t

    def assert_ok(self, t, line):
        self.assertTrue(line.get('ok'), f'step {line} failed\n{t.dump()}')

    def assert_refused(self, t, line, rule, phrase):
        self.assertFalse(line.get('ok'), f'step {line} was not refused\n{t.dump()}')
        self.assertEqual(line.get('sqlstate'), '42501', f'{line}\n{t.dump()}')
        text = (line.get('message') or '') + ' ' + (line.get('detail') or '')
        self.assertIn(rule, text, line)
        self.assertIn(phrase, text, line)

    def check_scenario(self, t, rule, phrase):
        selects = t.all('select')
        self.assertEqual([s['i'] for s in selects], list(range(1, 11)), t.dump())
        for s in selects:
            self.assert_ok(t, s)
            self.assertEqual(s['email'], f'c{s["id"]}@example.com', s)
        tables = t.one('tables')
        self.assert_ok(t, tables)
        self.assertEqual(tables['names'], ['customers'])
        columns = t.one('columns')
        self.assert_ok(t, columns)
        self.assertEqual(columns['names'], ['id', 'email'])
        refusals = [line for step in self.refusal_steps for line in t.all(step)]
        self.assertTrue(refusals, t.dump())
        for line in refusals:
            self.assert_refused(t, line, rule, phrase)
        recovery = t.one('recovery')
        self.assert_ok(t, recovery)
        self.assertEqual(recovery['email'], 'c42@example.com')
        fresh = t.one('recovery_fresh')
        self.assert_ok(t, fresh)
        self.assertEqual(fresh['count'], 50)
        self.assert_ok(t, t.one('tx_insert'))
        self.assertEqual(t.one('tx_insert')['rows'], 1)
        self.assert_refused(t, t.one('tx_delete'), rule, phrase)
        insert2 = t.one('tx_insert2')
        self.assertFalse(insert2['ok'], f'INSERT after the refusal ran in the aborted transaction\n'
                                        f'{t.dump()}')
        self.assertEqual(insert2['sqlstate'], '25P02', t.dump())
        self.assert_ok(t, t.one('tx_rollback'))
        scratch = t.one('scratch_count')
        self.assert_ok(t, scratch)
        self.assertEqual(scratch['count'], 0)
        self.assertEqual(count('customers'), 50)
        self.assertEqual(count('scratch'), 0)

    def check_allowed_audit(self, app):
        events = session_statements(app)
        self.assertTrue(events, f'no statement events for {app}')
        kind = 'agent' if app.startswith('ai-') else 'human'
        for e in events:
            self.assertEqual(e['principal']['kind'], kind, e)
        selects = [e for e in events
                   if e['statement']['sql'] == 'SELECT email FROM customers WHERE id = $1']
        # Ten in the loop, one in the recovery step (node: three unnamed ones too).
        self.assertGreaterEqual(len(selects), 11, [e['statement'] for e in events])
        for e in selects:
            self.assertEqual(e['statement']['protocol'], 'extended', e)
            self.assertEqual(e['decision']['action'], 'allow', e)
            self.assertEqual(e['result'].get('rows'), 1, e)
            self.assertNotIn('sqlstate', e['result'], e)
        names = [e['statement'].get('name') or '' for e in selects]
        self.assertTrue(any(self.named(n) for n in names),
                        f'no SELECT through a named prepared statement: {names}')
        return events

    def check_refusals_audited(self, app, rule, action):
        events = session_statements(app)
        refused = [e for e in events if 'DELETE' in e['statement']['commands']]
        self.assertEqual(
            len(refused), self.refusals,
            f'{app} had {self.refusals} DELETEs refused by policy in the extended protocol (see '
            f'the scenario test); the audit log should hold one statement event with the '
            f'{action} decision for each, it holds {len(refused)}. Statement events of the '
            f'session: {[(e["statement"]["protocol"], e["statement"]["sql"]) for e in events]}')
        for e in refused:
            self.assertEqual(e['statement']['protocol'], 'extended', e)
            self.assertEqual(e['decision']['action'], action, e)
            self.assertEqual(e['decision']['rules'], [rule], e)
            self.assertTrue(e['decision']['enforced'], e)
            self.assertIn('no_where', e['statement']['risks'], e)
            self.assertEqual(e['result'].get('sqlstate'), '42501', e)

    # -- the tests

    def test_agent_scenario(self):
        self.check_scenario(self.transcript(self.agent_app), 'prod-no-where-agent',
                            'prod-no-where-agent')

    def test_agent_audit(self):
        self.transcript(self.agent_app)
        self.check_allowed_audit(self.agent_app)

    def test_agent_refusals_audited(self):
        self.transcript(self.agent_app)
        self.check_refusals_audited(self.agent_app, 'prod-no-where-agent', 'deny')

    def test_human_scenario(self):
        self.check_scenario(self.transcript(self.human_app), 'prod-no-where-human',
                            'approval required')

    def test_human_audit(self):
        self.transcript(self.human_app)
        self.check_allowed_audit(self.human_app)

    def test_human_refusals_audited(self):
        self.transcript(self.human_app)
        self.check_refusals_audited(self.human_app, 'prod-no-where-human', 'approve')


class JdbcTest(DriverScenario, unittest.TestCase):
    driver = 'java'
    agent_app, human_app = 'ai-jdbc', 'jdbc-human'
    refusal_steps = ('delete', 'delete_again')
    refusals = 8  # delete, delete_again x6, tx_delete

    @staticmethod
    def named(name):
        return name.startswith('S_')  # pgjdbc's server-side statements

    def check_scenario(self, t, rule, phrase):
        super().check_scenario(t, rule, phrase)
        # pgjdbc switched to a named server-side statement (prepareThreshold 5).
        self.assertTrue(t.all('select')[-1]['server_prepared'], t.dump())
        self.assertTrue(t.one('recovery')['server_prepared'], t.dump())
        self.assertEqual(len(t.all('delete_again')), 6, t.dump())

    def check_allowed_audit(self, app):
        events = super().check_allowed_audit(app)
        # pgjdbc speaks only the extended protocol, BEGIN and ROLLBACK included.
        self.assertEqual({e['statement']['protocol'] for e in events}, {'extended'},
                         [(e['statement']['protocol'], e['statement']['sql']) for e in events])
        # The metadata queries were allowed and ran.
        catalog = [e for e in events if any(t.startswith('pg_catalog.')
                                            for t in e['statement']['tables_read'])]
        self.assertGreaterEqual(len(catalog), 2, [e['statement']['sql'][:80] for e in events])
        for e in catalog:
            self.assertEqual(e['decision']['action'], 'allow', e)


class NodeTest(DriverScenario, unittest.TestCase):
    driver = 'node'
    agent_app, human_app = 'ai-node', 'node-human'
    refusal_steps = ('delete', 'delete_param', 'delete_named')
    refusals = 5  # delete, delete_param, delete_named x2, tx_delete

    @staticmethod
    def named(name):
        return name == 'by-id'

    def check_scenario(self, t, rule, phrase):
        super().check_scenario(t, rule, phrase)
        unnamed = t.all('select_unnamed')
        self.assertEqual(len(unnamed), 3, t.dump())
        for s in unnamed:
            self.assert_ok(t, s)
            self.assertEqual(s['email'], f'c{s["id"]}@example.com', s)
        self.assertEqual(len(t.all('delete_named')), 2, t.dump())
        self.assert_ok(t, t.one('tx_begin'))


if __name__ == '__main__':
    unittest.main()
