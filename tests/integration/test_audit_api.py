"""The audit log end to end: statements through the relay land in the RocksDB store and come
back over real HTTP (/v1/events, the NDJSON stream, verify, metrics) with principal, process,
decision and result; tokens are enforced; the SRE CLI reads it; the chain verifies offline and
continues across an agent restart.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_audit_api.py -v
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

VIEWER = 'viewer-token-for-tests'
ADMIN = 'admin-token-for-tests'

cluster = None


def setUpModule():
    global cluster
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.psql('CREATE TABLE accounts (id int PRIMARY KEY, owner text);'
                 "INSERT INTO accounts SELECT g, 'o' || g FROM generate_series(1, 20) g;",
                 dbname='appdb', user='app')


def make_relay():
    port = fx.free_port()
    tokens = [{'name': 'oncall', 'role': 'viewer', 'sha256': hashlib.sha256(VIEWER.encode()).hexdigest()},
              {'name': 'boss', 'role': 'admin', 'sha256': hashlib.sha256(ADMIN.encode()).hexdigest()}]
    relay = fx.Relay([{'name': 'orders', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                     extra={'api': {'listen': f'{fx.LOOPBACK}:{port}', 'tokens': tokens}})
    relay.api_port = port
    return relay


def http(relay, path, token=VIEWER, method='GET', body=None):
    return fx.api_request(relay.api_port, path, token, method, body)


class AuditApiTest(unittest.TestCase):
    def test_end_to_end(self):
        import psycopg2
        with make_relay() as relay:
            # The default pack holds a person's DROP on prod; the admin denies it over the API.
            proc = subprocess.Popen([str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p',
                                     str(relay.port()), '-U', 'app', '-d', 'appdb', '-c',
                                     "SELECT owner FROM accounts WHERE id = 3", '-c',
                                     'DROP TABLE accounts'],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=dict(fx.CLIENT_ENV, PGAPPNAME='api-psql'))
            try:
                held = relay.wait_for(lambda e: e['approval']['step'] == 'requested',
                                      kind='approval')[0]
                status, _, body = http(relay, f'/v1/approvals/{held["approval"]["id"]}/deny',
                                       token=ADMIN, method='POST', body=b'{}')
                self.assertEqual(status, 200, body)
                _, stderr = proc.communicate(timeout=60)
            finally:
                proc.kill()
            self.assertIn('statement held for approval', stderr)
            self.assertIn(f'approval request {held["approval"]["id"]} was denied by boss', stderr)
            relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'api-psql',
                           kind='statement', count=2)

            # Auth: no token 401, viewer fine, health open.
            self.assertEqual(http(relay, '/v1/events', token=None)[0], 401)
            self.assertEqual(http(relay, '/v1/events', token='wrong')[0], 401)
            self.assertEqual(http(relay, '/healthz', token=None)[0], 200)
            self.assertEqual(http(relay, '/readyz', token=None)[0], 200)

            status, _, body = http(relay, '/v1/events?action=deny&since=15m&limit=10')
            self.assertEqual(status, 200, body)
            # The human's DROP is an approve decision; deny filter finds none of ours.
            status, _, body = http(relay, '/v1/events?action=approve&kind=statement&limit=10')
            events = json.loads(body)['events']
            self.assertEqual(len(events), 1, events)
            ev = events[0]
            self.assertEqual(ev['decision']['rules'], ['prod-destructive-human'])
            self.assertEqual(ev['principal']['db_user'], 'app')
            self.assertTrue(ev['process']['exe'].endswith('psql'))
            self.assertEqual(ev['result']['sqlstate'], '42501')
            self.assertEqual(len(ev['hash']), 64)

            status, _, body = http(relay, '/v1/events?table=accounts&kind=statement')
            sqls = [e['statement']['sql'] for e in json.loads(body)['events']]
            self.assertIn('SELECT owner FROM accounts WHERE id = $1', sqls)

            # Stream: NDJSON in sequence order, resumable by cursor without gaps or duplicates.
            status, headers, body = http(relay, '/v1/events/stream?limit=3')
            first = [json.loads(l) for l in body.splitlines() if l.strip()]
            cursor = headers['X-Dbwarden-Cursor']
            status, _, body = http(relay, f'/v1/events/stream?cursor={cursor}&limit=1000')
            rest = [json.loads(l) for l in body.splitlines() if l.strip()]
            seqs = [e['seq'] for e in first + rest]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))

            status, _, body = http(relay, '/v1/audit/verify')
            self.assertEqual(status, 200)
            self.assertTrue(json.loads(body)['ok'], body)
            status, _, body = http(relay, '/metrics')
            self.assertIn(b'dbwarden_decisions_total', body)
            self.assertIn(b'dbwarden_audit_events_dropped_total 0', body)

            # The SRE CLI over the API.
            env = dict(os.environ, DBWARDEN_API=f'http://{fx.LOOPBACK}:{relay.api_port}',
                       DBWARDEN_TOKEN=VIEWER)
            out = subprocess.run([str(relay.bin), 'events', '--since', '1h', '--kind', 'statement',
                                  '--json'], capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn('prod-destructive-human', out.stdout)
            out = subprocess.run([str(relay.bin), 'audit', 'verify'], capture_output=True,
                                 text=True, env=env, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_every_filter_over_http(self):
        # Each /v1/events filter, over real HTTP, selects exactly the events whose field has
        # the value (checked against the unfiltered list), and a value nobody has finds none.
        with make_relay() as relay:
            for app in ('filter-a', 'filter-b'):
                out = subprocess.run([str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p',
                                      str(relay.port()), '-U', 'app', '-d', 'appdb', '-c',
                                      f"SELECT owner FROM accounts WHERE id = {len(app)}"],
                                     capture_output=True, text=True, timeout=60,
                                     env=dict(fx.CLIENT_ENV, PGAPPNAME=app))
                self.assertEqual(out.returncode, 0, out.stderr)
            relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'filter-b',
                           kind='statement')
            status, _, body = http(relay, '/v1/events?limit=1000')
            self.assertEqual(status, 200, body)
            everything = json.loads(body)['events']
            stmt = next(e for e in everything if e['kind'] == 'statement' and
                        e['principal'].get('application_name') == 'filter-b')

            def ids(query):
                status, _, body = http(relay, f'/v1/events?limit=1000&{query}')
                self.assertEqual(status, 200, f'{query}: {body}')
                return [e['seq'] for e in json.loads(body)['events']]

            def seqs(pred):
                return [e['seq'] for e in everything if pred(e)]

            cases = {
                'db_user=app': lambda e: e.get('principal', {}).get('db_user') == 'app',
                'database=appdb': lambda e: e.get('principal', {}).get('database') == 'appdb',
                f'session={stmt["session_id"]}': lambda e: e.get('session_id') ==
                stmt['session_id'],
                f'fingerprint={stmt["statement"]["fingerprint"]}':
                    lambda e: e.get('statement', {}).get('fingerprint') ==
                    stmt['statement']['fingerprint'],
                f'exe={stmt["process"]["exe"]}': lambda e: e.get('process', {}).get('exe') ==
                stmt['process']['exe'],
                'source=relay': lambda e: e.get('source') == 'relay',
            }
            for query, pred in cases.items():
                with self.subTest(query=query):
                    want = seqs(pred)
                    self.assertTrue(want, f'no event matches {query}: the case proves nothing')
                    self.assertEqual(ids(query), want)
            with self.subTest(query='until'):
                self.assertEqual(ids(f'until={stmt["ts"]}'), seqs(lambda e: e['ts'] < stmt['ts']))
            for query in ('db_user=nobody', 'database=nodb', 'session=0000', 'source=tap',
                          'exe=/no/such/exe', 'fingerprint=0000000000000000'):
                with self.subTest(query=query):
                    self.assertEqual(ids(query), [])

    def test_slow_request_is_cut_off(self):
        # A request must arrive within 10 s: a client that sends half a header and stalls is
        # disconnected (it cannot hold a connection open), while a complete request is answered.
        import socket
        with make_relay() as relay:
            slow = socket.create_connection((fx.LOOPBACK, relay.api_port), timeout=30)
            self.addCleanup(slow.close)
            slow.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n')  # no blank line: unfinished
            start = time.monotonic()
            data = slow.recv(4096)
            while data and b'\r\n\r\n' not in data:
                more = slow.recv(4096)
                if not more:
                    break
                data += more
            rest = slow.recv(4096) if data else b''
            elapsed = time.monotonic() - start
            self.assertEqual(rest, b'', 'the connection stayed open')
            self.assertGreater(elapsed, 8, 'cut off before the 10 s limit')
            self.assertLess(elapsed, 20, 'not cut off near the 10 s limit')
            self.assertEqual(http(relay, '/healthz', token=None)[0], 200)

    def test_restart_continues_chain(self):
        relay = make_relay()
        self.addCleanup(relay.close)
        relay.start()
        relay.stop()
        head = max(e['seq'] for e in relay.events())
        relay.start()
        relay.stop()
        seqs = [e['seq'] for e in relay.events()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertGreater(len(seqs), head)
        out = subprocess.run([str(relay.bin), 'audit', 'verify', '--state-dir', relay.state_dir],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn('verified', out.stdout)

    def test_stream_cursor_survives_a_restart(self):
        # A SIEM puller's cursor taken before a restart resumes after it: no gap, no duplicate.
        relay = make_relay()
        self.addCleanup(relay.close)
        relay.start()
        status, headers, body = http(relay, '/v1/events/stream?limit=1000')
        self.assertEqual(status, 200, body)
        before = [json.loads(l) for l in body.splitlines() if l.strip()]
        cursor = headers['X-Dbwarden-Cursor']
        relay.stop()
        relay.start()
        out = subprocess.run([str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p',
                              str(relay.port()), '-U', 'app', '-d', 'appdb', '-c', 'SELECT 7'],
                             capture_output=True, text=True, env=fx.CLIENT_ENV, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        relay.wait_for(lambda e: e.get('statement', {}).get('sql') == 'SELECT $1',
                       kind='statement')
        status, _, body = http(relay, f'/v1/events/stream?cursor={cursor}&limit=1000')
        self.assertEqual(status, 200, body)
        after = [json.loads(l) for l in body.splitlines() if l.strip()]
        seqs = [e['seq'] for e in before + after]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        kinds = [e['kind'] for e in after]
        self.assertIn('agent_stop', kinds)
        self.assertIn('agent_start', kinds)
        self.assertIn('statement', kinds)


if __name__ == '__main__':
    unittest.main()
