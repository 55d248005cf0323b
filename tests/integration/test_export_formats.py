"""The audit log in the SIEM formats over real HTTP: statements (one allowed, one failing, one an
agent's DROP the default pack denies) go through the relay, then GET /v1/events and
/v1/events/stream are read with ?format=native|ocsf|ecs|cef and each rendering is checked against
the native events: the same seqs in the same order, OCSF activity/status/disposition, ECS outcome,
CEF header and extensions (parsed by the small CEF reader below), and a 400 for an unknown format.

Run: cd tests/integration && DBWARDEN_BIN=/work/main/build/default/agent/dbwarden \
         PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m unittest -v test_export_formats
"""

import json
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

cluster = None
relay = None

HUMAN_APP = 'export-human'
AGENT_APP = 'ai-export'


def setUpModule():
    global cluster, relay
    cluster = fx.module_cluster()
    cluster.psql('CREATE TABLE ledger (id int PRIMARY KEY, note text);'
                 "INSERT INTO ledger SELECT g, 'n' || g FROM generate_series(1, 5) g;")
    relay = fx.guardrails_relay(cluster)
    human = fx.psycopg2_connect(relay.port(), application_name=HUMAN_APP)
    agent = fx.psycopg2_connect(relay.port(), application_name=AGENT_APP)
    try:
        assert fx.sql_outcome(human, 'SELECT note FROM ledger WHERE id = 1')[0] == 'ok'
        assert fx.sql_outcome(human, 'SELECT 1 / 0')[0] == '22012'
        # The default pack denies an agent's DROP on prod outright.
        assert fx.sql_outcome(agent, 'DROP TABLE ledger')[0] != 'ok'
    finally:
        human.close()
        agent.close()
    relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == AGENT_APP
                   and e.get('decision', {}).get('action') == 'deny', what='the denied DROP')
    relay.wait_for(lambda e: True, kind='session_end', count=2, what='both sessions ended')


def get(path):
    status, headers, body = fx.api_request(relay.api_port, path)
    return status, headers, body


def events(fmt=None, **params):
    """GET /v1/events (newest first) in `fmt`: (response headers, body bytes)."""
    params.setdefault('limit', '1000')
    if fmt:
        params['format'] = fmt
    status, headers, body = get('/v1/events?' + urllib.parse.urlencode(params))
    assert status == 200, (status, body)
    return headers, body


def stream(fmt=None):
    path = '/v1/events/stream?wait=0&limit=5000' + (f'&format={fmt}' if fmt else '')
    status, headers, body = get(path)
    assert status == 200, (status, body)
    return headers, body


# -- what the docs promise, derived from a native event (docs/export.md)

def statement_like(e):
    return e.get('kind') in ('statement', 'decision')


def disposition(e):
    """(OCSF disposition_id, ECS allowed|denied) of the decision, or None."""
    d = e.get('decision')
    if d is None:
        return None
    action, enforced = d.get('action'), d.get('enforced')
    if action == 'allow':
        return 1, 'allowed'
    if action == 'log':
        return 17, 'allowed'
    if action == 'deny':
        return (2, 'denied') if enforced else (15, 'allowed')
    if action == 'approve':
        if enforced:
            return 2, 'denied'
        return (8, 'allowed') if d.get('approval_id') else (15, 'allowed')
    return 99, None


def outcome(e):
    kind = e.get('kind')
    if 'error' in e or kind in ('login_failed', 'connect_refused', 'protocol_violation',
                                'upstream_error'):
        return 'failure'
    if statement_like(e):
        if e.get('decision', {}).get('enforced') or e.get('result', {}).get('sqlstate'):
            return 'failure'
        return 'success' if 'result' in e else 'unknown'
    return 'success' if kind == 'session_start' else 'unknown'


ACTIVITY = [  # (OCSF activity_id, rank, commands)
    (7, 6, {'DELETE', 'DROP', 'TRUNCATE'}),
    (6, 5, {'CREATE'}),
    (2, 4, {'UPDATE', 'MERGE', 'ALTER', 'GRANT', 'REVOKE', 'ROLE', 'COMMENT'}),
    (5, 3, {'INSERT'}),
    (1, 2, {'SELECT', 'SHOW', 'FETCH', 'COPY'}),
    (0, 0, {'UNKNOWN', 'UNPARSEABLE'}),
]


def activity(e):
    if statement_like(e):
        best = None
        writes = bool(e.get('statement', {}).get('tables_written'))
        for c in e.get('statement', {}).get('commands', []):
            act = (5, 3) if c == 'COPY' and writes else next(
                ((a, r) for a, r, cmds in ACTIVITY if c in cmds), (4, 1))
            if best is None or act[1] > best[1]:
                best = act
        return best[0] if best else 0
    return 3 if e.get('kind') in ('session_start', 'login_failed') else 99


# -- CEF, read as a receiver would

def parse_cef(line):
    """(7 header fields, extension dict), unescaped; raises ValueError on bad escaping."""
    header, field, i = [], '', 0
    while len(header) < 7:
        c = line[i]
        i += 1
        if c == '\\':
            if line[i] not in '\\|':
                raise ValueError(f'bad header escape in {line!r}')
            field += line[i]
            i += 1
        elif c == '|':
            header.append(field)
            field = ''
        else:
            field += c
    rest = line[i:]
    starts = []  # (key start, '=' position)
    for p in range(len(rest)):
        if p and rest[p - 1] != ' ':
            continue
        q = p
        while q < len(rest) and rest[q].isalnum():
            q += 1
        if q > p and q < len(rest) and rest[q] == '=':
            starts.append((p, q))
    ext = {}
    for k, (p, q) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(rest)
        raw, value, j = rest[q + 1:end], '', 0
        while j < len(raw):
            if raw[j] == '=':
                raise ValueError(f'unescaped = in {raw!r}')
            if raw[j] == '\\':
                j += 1
                value += {'n': '\n', 'r': '\r', '\\': '\\', '=': '='}[raw[j]]
            else:
                value += raw[j]
            j += 1
        ext[rest[p:q]] = value
    return header, ext


class ExportFormatsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        _, body = events()
        cls.native = json.loads(body)['events']
        cls.seqs = [e['seq'] for e in cls.native]
        cls.denied = [e for e in cls.native
                      if e.get('principal', {}).get('application_name') == AGENT_APP
                      and e.get('decision', {}).get('action') == 'deny']
        cls.failed = [e for e in cls.native if e.get('result', {}).get('sqlstate') == '22012']

    def test_workload_is_in_the_log(self):
        self.assertTrue(self.denied, 'no denied DROP in the log')
        self.assertTrue(self.failed, 'no failed SELECT 1/0 in the log')
        self.assertEqual(self.seqs, sorted(self.seqs, reverse=True))

    def test_native_is_the_default(self):
        _, default = events(kind='statement')
        _, native = events('native', kind='statement')
        self.assertEqual(default, native)

    def test_ocsf(self):
        headers, body = events('ocsf')
        self.assertTrue(headers['Content-Type'].startswith('application/json'))
        page = json.loads(body)
        self.assertIn('next_cursor', page)
        out = page['events']
        self.assertEqual([o['metadata']['sequence'] for o in out], self.seqs)
        for n, o in zip(self.native, out):
            with self.subTest(seq=n['seq'], kind=n['kind']):
                self.assertEqual(o['class_uid'], 6005)
                self.assertEqual(o['category_uid'], 6)
                self.assertEqual(o['metadata']['uid'], n['hash'])
                self.assertEqual(o['metadata']['product']['name'], 'dbwarden')
                self.assertEqual(o['activity_id'], activity(n))
                self.assertEqual(o['type_uid'], 600500 + o['activity_id'])
                self.assertEqual(o['status_id'],
                                 {'success': 1, 'failure': 2, 'unknown': 0}[outcome(n)])
                disp = disposition(n)
                self.assertEqual(o.get('disposition_id'), disp[0] if disp else None)
                self.assertEqual(o['time'], self._ms(n['ts']))
                if 'statement' in n:
                    self.assertEqual(o['query_info']['query_string'], n['statement']['sql'])
                if 'principal' in n:
                    self.assertEqual(o['actor']['user']['name'], n['principal']['db_user'])
                    self.assertEqual(o['database']['name'], n['principal']['database'])
                self.assertEqual(o['unmapped']['kind'], n['kind'])
        drop = next(o for o in out if o['metadata']['sequence'] == self.denied[0]['seq'])
        self.assertEqual((drop['activity_id'], drop['activity_name']), (7, 'Delete'))
        self.assertEqual(drop['disposition'], 'Blocked')
        self.assertEqual(drop['status'], 'Failure')
        failed = next(o for o in out if o['metadata']['sequence'] == self.failed[0]['seq'])
        self.assertEqual(failed['status_code'], '22012')

    def test_ecs(self):
        _, body = events('ecs')
        out = json.loads(body)['events']
        self.assertEqual([o['event']['sequence'] for o in out], self.seqs)
        for n, o in zip(self.native, out):
            with self.subTest(seq=n['seq'], kind=n['kind']):
                self.assertEqual(o['@timestamp'], n['ts'])
                self.assertEqual(o['ecs']['version'].split('.')[0], '8')
                self.assertEqual(o['event']['id'], n['hash'])
                self.assertEqual(o['event']['outcome'], outcome(n))
                self.assertEqual(o['event']['kind'], 'event')
                self.assertIn('database', o['event']['category'])
                disp = disposition(n)
                if disp and disp[1]:
                    self.assertIn(disp[1], o['event']['type'])
                if 'principal' in n:
                    self.assertEqual(o['user']['name'], n['principal']['db_user'])
                    self.assertEqual(o['source']['address'], n['principal']['client_addr'])
                if 'statement' in n:
                    self.assertEqual(o['db']['query']['text'], n['statement']['sql'])
                self.assertEqual(o['dbwarden']['kind'], n['kind'])
        drop = next(o for o in out if o['event']['sequence'] == self.denied[0]['seq'])
        self.assertIn('denied', drop['event']['type'])
        self.assertEqual(drop['rule']['id'], self.denied[0]['decision']['rules'])

    def test_cef(self):
        headers, body = events('cef')
        self.assertTrue(headers['Content-Type'].startswith('text/plain'))
        self.assertIn('X-Dbwarden-Cursor', headers)
        lines = body.decode('utf-8').split('\n')
        self.assertEqual(lines[-1], '')
        lines = lines[:-1]
        self.assertEqual(len(lines), len(self.native))
        for n, line in zip(self.native, lines):
            with self.subTest(seq=n['seq'], kind=n['kind']):
                self.assertNotIn('\r', line)
                header, ext = parse_cef(line)
                self.assertEqual(header[:3], ['CEF:0', 'dbwarden', 'dbwarden'])
                self.assertTrue(header[4].startswith(n['kind']))
                self.assertTrue(0 <= int(header[6]) <= 10)
                self.assertEqual(int(ext['cn1']), n['seq'])
                self.assertEqual(ext['cn1Label'], 'seq')
                self.assertEqual(ext['cs6'], n['hash'])
                self.assertEqual(ext['outcome'], outcome(n))
                self.assertEqual(int(ext['rt']), self._ms(n['ts']))
                self.assertEqual(ext.get('act'), n.get('decision', {}).get('action'))
                if 'statement' in n:
                    self.assertEqual(ext['cs4'], n['statement']['sql'])
                if 'principal' in n:
                    self.assertEqual(ext['suser'], n['principal']['db_user'])
        drop = next(parse_cef(line) for n, line in zip(self.native, lines)
                    if n['seq'] == self.denied[0]['seq'])
        self.assertEqual(drop[0][4], f'{self.denied[0]["kind"]}:DROP')
        self.assertEqual(drop[1]['act'], 'deny')

    def test_stream(self):
        _, native = stream()
        native = [json.loads(line) for line in native.decode().splitlines()]
        self.assertEqual([e['seq'] for e in native], sorted(self.seqs))
        for fmt in ('ocsf', 'ecs', 'cef'):
            with self.subTest(fmt=fmt):
                headers, body = stream(fmt)
                self.assertEqual(headers['X-Dbwarden-Cursor'],
                                 stream()[0]['X-Dbwarden-Cursor'])
                lines = body.decode('utf-8').splitlines()
                if fmt == 'cef':
                    self.assertTrue(headers['Content-Type'].startswith('text/plain'))
                    got = [int(parse_cef(line)[1]['cn1']) for line in lines]
                else:
                    self.assertEqual(headers['Content-Type'], 'application/x-ndjson')
                    key = ('metadata', 'sequence') if fmt == 'ocsf' else ('event', 'sequence')
                    got = [json.loads(line)[key[0]][key[1]] for line in lines]
                self.assertEqual(got, [e['seq'] for e in native])

    def test_bad_format(self):
        for path in ('/v1/events?format=bogus', '/v1/events/stream?format=bogus&wait=0',
                     '/v1/events?format=OCSF', '/v1/events?format=ocsf&format=ecs'):
            with self.subTest(path=path):
                status, _, body = get(path)
                self.assertEqual(status, 400, body)
                if 'format=ecs' not in path:
                    self.assertIn('native, ocsf, ecs or cef', json.loads(body)['error'])

    @staticmethod
    def _ms(ts):
        from datetime import datetime, timezone
        dt = datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=timezone.utc)
        return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


if __name__ == '__main__':
    unittest.main()
