"""Approvals end to end: real PostgreSQL 15, psql and psycopg2 through the relay, votes over real
HTTP and the CLI, the approvals store across an agent restart, and webhooks delivered to a local
HTTP server that fails first.

  hold:   approved (the client gets its normal result), denied, timed out, cancelled by the client
  ticket: refused with the request id; once approved the same statement runs once; a second
          re-run, another literal and another principal are refused
  who:    self-approval refused, approver groups, a two-person rule
  audit:  requested -> approved -> executed with who did what; the statement event names the
          request

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_approvals.py -v
"""

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

TOKENS = {  # name -> (token, role, groups)
    'alice': ('alice-token', 'approver', ['dba']),
    'bob': ('bob-token', 'approver', ['dba']),
    'carol': ('carol-token', 'approver', []),
    'app': ('app-token', 'approver', ['dba']),  # same name as the db user: its own requests
    'watcher': ('watcher-token', 'viewer', []),
}

POLICY = """
version: 1
rules:
  - id: hold-no-where
    match: {env: [prod], statement: {risks: [no_where], tables: [orders]}}
    action: approve
    message: UPDATE or DELETE of every order needs approval
    approval: {mode: hold, timeout: 2m}
  - id: hold-slow
    match: {env: [prod], statement: {risks: [no_where], tables: [slow]}}
    action: approve
    message: clearing slow needs approval
    approval: {mode: hold, timeout: 2s}
  - id: ticket-ledger
    match: {env: [prod], statement: {commands: [DELETE], tables: [ledger]}}
    action: approve
    message: deleting from the ledger needs a ticket
    sqlstate: DBW01
    approval: {mode: ticket, timeout: 10m, grant_ttl: 10m}
  - id: two-person-truncate
    match: {env: [prod], statement: {commands: [TRUNCATE]}}
    action: approve
    message: TRUNCATE needs two DBAs
    approval: {mode: hold, timeout: 2m, approvers: 2, groups: [dba]}
"""

cluster = None
relay = None
workdir = None
hooks = None


class WebhookServer:
    """A loopback HTTP server that answers 500 to the first `fail_first` POSTs, then 200."""

    def __init__(self, fail_first=1):
        self.bodies = []
        self.statuses = []
        self.fail_first = fail_first
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                status = 500 if len(outer.statuses) < outer.fail_first else 200
                outer.statuses.append(status)
                outer.bodies.append((status, json.loads(body), dict(self.headers)))
                self.send_response(status)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((fx.LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_relay():
    tokens = []
    for name, (tok, role, groups) in TOKENS.items():
        t = {'name': name, 'role': role, 'sha256': hashlib.sha256(tok.encode()).hexdigest()}
        if groups:
            t['groups'] = groups
        tokens.append(t)
    dead_port = fx.free_port()  # nothing listens: every attempt fails
    api_port = fx.free_port()
    r = fx.Relay([{'name': 'orders', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                 extra={'policy': {'files': [str(workdir / 'approvals.yaml')]},
                        'api': {'listen': f'{fx.LOOPBACK}:{api_port}', 'tokens': tokens},
                        'approvals': {
                            'webhooks': [
                                {'url': f'http://{fx.LOOPBACK}:{hooks.port}/hook',
                                 'headers': {'X-Test': 'yes'}},
                                {'url': f'http://{fx.LOOPBACK}:{dead_port}/hook'}],
                            'webhook_attempts': 2, 'webhook_backoff': '200ms',
                            'webhook_timeout': '2s'}})
    r.api_port = api_port
    return r.start()


def setUpModule():
    global cluster, relay, workdir, hooks
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    workdir = Path(tempfile.mkdtemp(prefix='dbwarden-approvals-'))
    unittest.addModuleCleanup(shutil.rmtree, workdir, True)
    (workdir / 'approvals.yaml').write_text(POLICY)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    for user in ('app', 'app2'):
        cluster.create_user(user)
    cluster.create_db('appdb', owner='app')
    cluster.psql('CREATE TABLE orders (id int PRIMARY KEY, status text);'
                 'CREATE TABLE slow (id int);'
                 'CREATE TABLE ledger (id int PRIMARY KEY, amount int);'
                 'CREATE TABLE scratch (id int);'
                 'GRANT ALL ON ALL TABLES IN SCHEMA public TO app2;',
                 dbname='appdb', user='app')
    hooks = WebhookServer(fail_first=1)
    unittest.addModuleCleanup(hooks.close)
    relay = start_relay()
    unittest.addModuleCleanup(lambda: relay.close())


def reset_tables():
    cluster.psql("TRUNCATE orders, slow, ledger, scratch;"
                 "INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 5) g;"
                 "INSERT INTO slow VALUES (1), (2);"
                 "INSERT INTO ledger SELECT g, g * 10 FROM generate_series(1, 4) g;"
                 "INSERT INTO scratch VALUES (1);", dbname='appdb')


def api(path, token='alice', method='GET', body=None):
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = fx.api_request(relay.api_port, path, TOKENS[token][0] if token else None,
                                    method, data)
    return status, json.loads(raw)


def cli(*args, token='alice', check=True):
    env = dict(fx.CLIENT_ENV, DBWARDEN_API=f'http://{fx.LOOPBACK}:{relay.api_port}',
               DBWARDEN_TOKEN=TOKENS[token][0])
    return fx.run([relay.bin, 'approvals', *args], env=env, check=check)


def connect(user='app', **kw):
    import psycopg2
    conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(), user=user, dbname='appdb',
                            application_name='approvals-test', **kw)
    conn.autocommit = True
    return conn


def wait_pending(predicate=lambda r: True, waiting=True, timeout=15):
    """The pending request matching `predicate` (and, if asked, with a session waiting on it)."""
    def find():
        status, body = api('/v1/approvals?state=pending')
        for r in body.get('approvals', []):
            if predicate(r) and (waiting is None or r['waiting'] == waiting):
                return r
        return None
    return fx.wait_until(find, timeout, 'a pending approval request')


def steps(request_id):
    """The approval events of one request, in order: [(step, actor)]."""
    evs = relay.events(kind='approval', predicate=lambda e: e['approval']['id'] == request_id)
    return [(e['approval']['step'], e['approval'].get('actor', '')) for e in evs
            if e['approval']['step'] != 'webhook_failed']  # the dead test webhook's


def count(table):
    return int(cluster.query_value(f'SELECT count(*) FROM {table}', dbname='appdb'))


class BackgroundQuery:
    """Runs one statement on a psycopg2 connection in a thread; keeps the result or error."""

    def __init__(self, conn, sql):
        self.conn, self.sql = conn, sql
        self.result = self.error = self.rowcount = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            with self.conn.cursor() as cur:
                cur.execute(self.sql)
                self.rowcount = cur.rowcount
                self.result = cur.statusmessage
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc

    def join(self, timeout=30):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f'{self.sql!r} still running after {timeout}s')
        return self


class ApprovalsTest(unittest.TestCase):
    def setUp(self):
        reset_tables()

    def test_hold_approved_with_psql_and_audit_trail(self):
        env = dict(fx.CLIENT_ENV, PGAPPNAME='psql-approvals')
        proc = subprocess.Popen(
            [str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U',
             'app', '-d', 'appdb', '-c', "DELETE   FROM orders -- every one\n"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            req = wait_pending(lambda r: r['target'] == 'orders' and 'orders' in
                               r['statement'].get('sql', ''))
            self.assertEqual(req['mode'], 'hold')
            self.assertEqual(req['principal']['db_user'], 'app')
            self.assertEqual(req['statement']['sql'], "DELETE   FROM orders -- every one\n")
            self.assertEqual(req['statement']['normalized'], 'DELETE FROM orders')
            self.assertEqual(req['rules'], ['hold-no-where'])
            self.assertTrue(req['process']['exe'].endswith('/psql'), req['process'])
            self.assertEqual(count('orders'), 5, 'nothing may run before approval')
            other = connect()  # other sessions are unaffected
            try:
                with other.cursor() as cur:
                    cur.execute('SELECT count(*) FROM orders WHERE id > 0')
                    self.assertEqual(cur.fetchone()[0], 5)
            finally:
                other.close()
            # A viewer sees the request but not the literal text.
            status, seen = api(f'/v1/approvals/{req["id"]}', token='watcher')
            self.assertEqual(status, 200)
            self.assertNotIn('sql', seen['statement'])
            shown = cli('show', req['id']).stdout
            self.assertIn('DELETE   FROM orders', shown)
            out = cli('approve', req['id'], '--comment', 'ticket OPS-1').stdout
            self.assertIn('approved', out)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertIn('DELETE 5', stdout)
        self.assertIn(f'held for approval (request {req["id"]})', stderr)
        self.assertIn(f'dbwarden approvals approve {req["id"]}', stderr)
        self.assertEqual(count('orders'), 0)
        relay.wait_for(lambda e: e['approval']['id'] == req['id'] and
                       e['approval']['step'] == 'executed', kind='approval')
        self.assertEqual(steps(req['id']),
                         [('requested', 'app'), ('approved', 'alice'), ('executed', 'app')])
        approved = relay.events(kind='approval', predicate=lambda e: e['approval']['id'] == req[
            'id'] and e['approval']['step'] == 'approved')[0]
        self.assertEqual(approved['approval']['comment'], 'ticket OPS-1')
        self.assertNotIn('every one', json.dumps(approved))  # comments of the SQL stay out
        stmt = relay.wait_for(lambda e: (e.get('decision') or {}).get('approval_id') == req['id'],
                              kind='statement')[0]
        self.assertEqual(stmt['result']['command_tag'], 'DELETE 5')
        self.assertEqual(stmt['decision']['action'], 'approve')
        self.assertFalse(stmt['decision']['enforced'])
        status, done = api(f'/v1/approvals/{req["id"]}')
        self.assertEqual(done['state'], 'executed')

    def test_a_bind_is_held_with_its_values(self):
        """A prepared DELETE with a parameter is judged at each Bind with its value: a bound
        that covers the table is held for approval, and the approver sees the statement with
        the value; a selective one runs at once."""
        from test_gate_protocol import WireClient
        sql = 'DELETE FROM orders WHERE id > $1'
        with WireClient.connect(relay.port(), user='app', database='appdb',
                                application_name='bind-approvals') as c:
            c.send(WireClient.parse_msg('del', sql) + WireClient.bind_msg('', 'del', [b'3']) +
                   WireClient.execute_msg('') + WireClient.sync_msg())
            msgs = c.read_until_ready()
            self.assertIn((b'C', b'DELETE 2\0'), msgs)
            c.send(WireClient.bind_msg('', 'del', [b'-2147483648']) + WireClient.execute_msg('') +
                   WireClient.sync_msg())
            req = wait_pending(lambda r: r['principal'].get('application_name') ==
                               'bind-approvals')
            self.assertEqual(req['statement']['sql'], 'DELETE FROM orders WHERE id > (-2147483648)')
            self.assertEqual(req['rules'], ['hold-no-where'])
            self.assertEqual(count('orders'), 3, 'nothing may run before approval')
            status, _ = api(f'/v1/approvals/{req["id"]}/approve', token='alice', method='POST')
            self.assertEqual(status, 200)
            msgs = c.read_until_ready()
            self.assertIn((b'C', b'DELETE 3\0'), msgs, msgs)
        self.assertEqual(count('orders'), 0)

    def test_hold_denied_with_psycopg2(self):
        import psycopg2
        conn = connect()
        try:
            q = BackgroundQuery(conn, "UPDATE orders SET status = 'gone'")
            req = wait_pending(lambda r: r['statement'].get('sql') ==
                               "UPDATE orders SET status = 'gone'")
            status, body = api(f'/v1/approvals/{req["id"]}/deny', token='bob',
                               method='POST', body={'comment': 'not today'})
            self.assertEqual(status, 200, body)
            self.assertEqual(body['state'], 'denied')
            q.join()
            self.assertTrue(any(f'held for approval (request {req["id"]})' in n
                                for n in conn.notices), conn.notices)
            self.assertIsInstance(q.error, psycopg2.Error)
            self.assertEqual(q.error.pgcode, '42501')
            self.assertIn(f'approval request {req["id"]} was denied by bob', str(q.error))
            self.assertIn('not today', str(q.error))
            self.assertEqual(cluster.query_value(
                "SELECT count(*) FROM orders WHERE status = 'gone'", dbname='appdb'), '0')
            with conn.cursor() as cur:  # the session carries on
                cur.execute('SELECT count(*) FROM orders WHERE id > 0')
                self.assertEqual(cur.fetchone()[0], 5)
        finally:
            conn.close()
        self.assertEqual(steps(req['id']), [('requested', 'app'), ('denied', 'bob')])
        # A decided request takes no more votes.
        status, body = api(f'/v1/approvals/{req["id"]}/approve', token='alice', method='POST')
        self.assertEqual(status, 409, body)

    def test_hold_times_out(self):
        import psycopg2
        conn = connect()
        try:
            t0 = time.monotonic()
            with self.assertRaises(psycopg2.Error) as caught, conn.cursor() as cur:
                cur.execute('DELETE FROM slow')
            elapsed = time.monotonic() - t0
        finally:
            conn.close()
        self.assertEqual(caught.exception.pgcode, '57014')
        self.assertIn('was not decided within 2s', str(caught.exception))
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertEqual(count('slow'), 2)
        rid = str(caught.exception).split('approval request ')[1].split()[0]
        self.assertEqual(steps(rid), [('requested', 'app'), ('expired', 'agent')])
        status, body = api(f'/v1/approvals/{rid}')
        self.assertEqual(body['state'], 'expired')

    def test_hold_cancelled_by_client(self):
        import psycopg2
        conn = connect()
        try:
            q = BackgroundQuery(conn, 'DELETE FROM orders')
            req = wait_pending(lambda r: r['statement'].get('sql') == 'DELETE FROM orders')
            conn.cancel()
            q.join()
            self.assertIsInstance(q.error, psycopg2.extensions.QueryCanceledError)
            self.assertIn(req['id'], str(q.error))
            with conn.cursor() as cur:
                cur.execute('SELECT 1')
        finally:
            conn.close()
        self.assertEqual(count('orders'), 5)
        status, body = api(f'/v1/approvals/{req["id"]}')
        self.assertEqual(body['state'], 'withdrawn')
        self.assertEqual(steps(req['id']), [('requested', 'app'), ('withdrawn', 'app')])

    def test_client_hang_up_detaches_the_request(self):
        proc = subprocess.Popen(
            [str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U',
             'app', '-d', 'appdb', '-c', "UPDATE orders SET status = 'hung up'"],
            env=fx.CLIENT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            req = wait_pending(lambda r: r['statement'].get('sql') ==
                               "UPDATE orders SET status = 'hung up'")
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        # The relay notices at once; the request stays pending for a re-run once approved.
        wait_pending(lambda r: r['id'] == req['id'], waiting=False, timeout=10)
        relay.wait_for(lambda e: e.get('session_id') == req['session_id'] and
                       'held for approval' in e.get('detail', ''), kind='session_end')
        self.assertEqual(cluster.query_value(
            "SELECT count(*) FROM orders WHERE status = 'hung up'", dbname='appdb'), '0')
        status, body = api(f'/v1/approvals/{req["id"]}/deny', token='alice', method='POST')
        self.assertEqual((status, body['state']), (200, 'denied'))

    def test_ticket_runs_once_for_the_same_statement_and_principal(self):
        import psycopg2
        conn, other = connect(), connect(user='app2')
        try:
            def refused(c, sql):
                with self.assertRaises(psycopg2.Error) as caught, c.cursor() as cur:
                    cur.execute(sql)
                self.assertEqual(caught.exception.pgcode, 'DBW01', str(caught.exception))
                return str(caught.exception).split('(request ')[1].split(')')[0]

            first = refused(conn, 'DELETE FROM ledger WHERE id = 1')
            # Asking again while pending names the same request.
            self.assertEqual(refused(conn, 'DELETE FROM ledger WHERE id = 1'), first)
            status, body = api(f'/v1/approvals/{first}/approve', token='alice', method='POST',
                               body={'comment': 'cleanup'})
            self.assertEqual((status, body['state']), (200, 'approved'))
            # Another principal, another literal: not covered.
            self.assertNotEqual(refused(other, 'DELETE FROM ledger WHERE id = 1'), first)
            self.assertNotEqual(refused(conn, 'DELETE FROM ledger WHERE id = 2'), first)
            self.assertEqual(count('ledger'), 4)
            # The same statement, formatted and capitalised differently: runs once.
            with conn.cursor() as cur:
                cur.execute('delete  FROM Ledger /* approved */ where ID = 1')
                self.assertEqual(cur.rowcount, 1)
            self.assertEqual(count('ledger'), 3)
            second = refused(conn, 'DELETE FROM ledger WHERE id = 1')
            self.assertNotEqual(second, first)
        finally:
            conn.close()
            other.close()
        self.assertEqual(steps(first),
                         [('requested', 'app'), ('approved', 'alice'), ('executed', 'app')])
        # Each refusal names the request too; the one that ran is not enforced.
        ran = relay.wait_for(lambda e: (e.get('decision') or {}).get('approval_id') == first and
                             not e['decision']['enforced'], kind='statement')
        self.assertEqual([e['result']['command_tag'] for e in ran], ['DELETE 1'])
        refusals = relay.events(kind='statement', predicate=lambda e: (e.get('decision') or {}).get(
            'approval_id') == first and e['decision']['enforced'])
        self.assertEqual([e['result']['sqlstate'] for e in refusals], ['DBW01', 'DBW01'])

    def test_self_approval_groups_and_two_person_rule(self):
        conn = connect()
        try:
            q = BackgroundQuery(conn, 'TRUNCATE scratch')
            req = wait_pending(lambda r: r['statement'].get('sql') == 'TRUNCATE scratch')
            self.assertEqual(req['required'], 2)
            status, body = api(f'/v1/approvals/{req["id"]}/approve', token='app', method='POST')
            self.assertEqual(status, 403)
            self.assertIn('own request', body['error'])
            status, body = api(f'/v1/approvals/{req["id"]}/approve', token='carol', method='POST')
            self.assertEqual(status, 403)
            self.assertIn('approver group', body['error'])
            status, body = api(f'/v1/approvals/{req["id"]}/approve', token='watcher',
                               method='POST')
            self.assertEqual(status, 403)
            status, body = api(f'/v1/approvals/{req["id"]}/approve', token='alice', method='POST')
            self.assertEqual((status, body['state'], body['approvals']), (200, 'pending', 1))
            status, body = api(f'/v1/approvals/{req["id"]}/approve', token='alice', method='POST')
            self.assertEqual(status, 409)
            self.assertIn('already voted', body['error'])
            time.sleep(0.3)
            self.assertTrue(q.thread.is_alive(), 'one approval of two must not release it')
            self.assertEqual(count('scratch'), 1)
            out = cli('approve', req['id'], token='bob').stdout
            self.assertIn('2 of 2', out)
            q.join()
            self.assertIsNone(q.error)
            self.assertEqual(q.result, 'TRUNCATE TABLE')
        finally:
            conn.close()
        self.assertEqual(count('scratch'), 0)
        self.assertEqual(steps(req['id']), [('requested', 'app'), ('vote', 'alice'),
                                            ('approved', 'bob'), ('executed', 'app')])

    def test_restart_keeps_pending_request(self):
        global relay
        import psycopg2
        conn = connect()
        q = BackgroundQuery(conn, "UPDATE orders SET status = 'restarted'")
        req = wait_pending(lambda r: r['statement'].get('sql') ==
                           "UPDATE orders SET status = 'restarted'")
        relay.stop()
        q.join()
        self.assertIsInstance(q.error, psycopg2.Error)
        conn.close()
        relay.start()
        fx.wait_until(lambda: api('/healthz')[0] == 200, 10, 'the API after restart')
        kept = wait_pending(lambda r: r['id'] == req['id'], waiting=False)
        self.assertEqual(kept['statement']['sql'], "UPDATE orders SET status = 'restarted'")
        status, body = api(f'/v1/approvals/{req["id"]}/approve', token='alice', method='POST')
        self.assertEqual((status, body['state']), (200, 'approved'))
        conn = connect()
        try:
            with conn.cursor() as cur:  # approved after its session ended: runs once on re-run
                cur.execute("UPDATE orders SET status = 'restarted'")
                self.assertEqual(cur.rowcount, 5)
        finally:
            conn.close()
        self.assertEqual(steps(req['id']),
                         [('requested', 'app'), ('approved', 'alice'), ('executed', 'app')])

    def test_webhooks_retry_and_give_up(self):
        import psycopg2
        conn = connect()
        try:
            with self.assertRaises(psycopg2.Error) as caught, conn.cursor() as cur:
                cur.execute('DELETE FROM ledger WHERE id = 4')
        finally:
            conn.close()
        rid = str(caught.exception).split('(request ')[1].split(')')[0]

        def delivered():
            return [b for s, b, h in hooks.bodies if s == 200 and b['request']['id'] == rid]
        body = fx.wait_until(delivered, 15, 'the webhook delivery')[0]
        self.assertIn(rid, body['text'])
        self.assertIn(f'dbwarden approvals approve {rid}', body['text'])
        self.assertEqual(body['event'], 'approval_requested')
        self.assertNotIn('sql', body['request']['statement'])  # literal values stay out
        self.assertEqual(body['request']['statement']['normalized'],
                         'DELETE FROM ledger WHERE id = $1')
        self.assertTrue(any(h.get('X-Test') == 'yes' for s, b, h in hooks.bodies))
        # The module's first delivery was answered 500 and retried.
        self.assertEqual(hooks.statuses[0], 500)
        # The dead webhook gives up after its 2 attempts: an event and a metric.
        ev = relay.wait_for(lambda e: e['approval']['id'] == rid and
                            e['approval']['step'] == 'webhook_failed', kind='approval')[0]
        self.assertIn('2 attempts', ev['approval']['comment'])
        req = urllib.request.Request(f'http://{fx.LOOPBACK}:{relay.api_port}/metrics')
        req.add_header('Authorization', f'Bearer {TOKENS["watcher"][0]}')
        metrics = urllib.request.urlopen(req, timeout=10).read().decode()
        failures = [ln for ln in metrics.splitlines()
                    if ln.startswith('dbwarden_approval_webhook_failures_total ')]
        self.assertTrue(failures and int(failures[0].split()[1]) >= 3, failures)

    def test_extended_protocol_hold_with_node_postgres(self):
        # node-postgres sends a query with parameters as Parse/Bind/Execute/Sync: the relay
        # holds it at the Parse, with the Bind and Execute behind it.
        import test_drivers as td
        td.require_driver_tools()
        script = (
            "const {Client} = require('pg');"
            "(async () => {"
            f"  const c = new Client({{host: '{fx.LOOPBACK}', port: {relay.port()}, user: 'app',"
            "    database: 'appdb', application_name: 'node-approvals'});"
            "  const notices = []; c.on('notice', n => notices.push(n.message));"
            "  await c.connect();"
            "  const r = await c.query('UPDATE orders SET status = $1', ['node']);"
            "  console.log(JSON.stringify({command: r.command, rows: r.rowCount, notices}));"
            "  await c.end();"
            "})().catch(e => { console.log(JSON.stringify({error: e.message})); process.exit(1); });")
        env = {'PATH': td.TOOL_PATH, 'LC_ALL': 'C.UTF-8', 'HOME': os.environ.get('HOME', '/tmp')}
        proc = subprocess.Popen([td.NODE, '-e', script], cwd=td.NODE_DIR, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            req = wait_pending(lambda r: r['statement'].get('sql') ==
                               'UPDATE orders SET status = $1')
            self.assertEqual(req['principal']['application_name'], 'node-approvals')
            self.assertEqual(count('orders'), 5)
            self.assertEqual(api(f'/v1/approvals/{req["id"]}/approve', token='alice',
                                 method='POST')[0], 200)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        result = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual((result.get('command'), result.get('rows')), ('UPDATE', 5), stderr)
        self.assertTrue(any(req['id'] in n for n in result['notices']), result)
        self.assertEqual(cluster.query_value(
            "SELECT count(*) FROM orders WHERE status = 'node'", dbname='appdb'), '5')

    def test_api_errors(self):
        status, body = api('/v1/approvals/doesnotexist/approve', method='POST')
        self.assertEqual(status, 404)
        status, body = api('/v1/approvals?state=bogus')
        self.assertEqual(status, 400)
        status, body = api('/v1/approvals/x/approve', method='POST', body=['not', 'an', 'object'])
        self.assertEqual(status, 400)
        proc = cli('approve', 'doesnotexist', check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn('no approval request doesnotexist', proc.stderr)


if __name__ == '__main__':
    unittest.main()
