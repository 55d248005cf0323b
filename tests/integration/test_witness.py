"""The second witness (docs/routing.md#the-second-witness): the tap counts what the server's side of
each relayed connection read and wrote; the agent reconciles that with the relay's account of the
session and reports a `witness_mismatch` when they disagree.

A real PostgreSQL 15, the agent with its tap loaded into this kernel, and real clients through the
relay: pgbench (simple, extended, prepared; over TCP and over the server's unix socket), psql,
pgjdbc and node-postgres running test_drivers' scripted sessions, psycopg2 with errors, an
agent's refused DROP and COPY ... PROGRAM, its write under a row budget (whose counts are requests
the relay makes itself, as is masking's search_path probe) and a raw extended-protocol pipeline
whose failed Execute makes the server skip the next one. Every one of those sessions must
reconcile with no mismatch. Then a statement is injected into the relay's upstream socket from
outside the relay (pidfd_getfd, as a process with ptrace rights over the agent could): the server
runs it, the audit log has no statement for it, and the witness must say so, naming the session.

Needs root and a kernel with BTF:
    sudo DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \\
         tests/integration/test_witness.py -v
"""

import ctypes
import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PGBENCH = str(fx.PG_BIN / 'pgbench')
PSQL = str(fx.PG_BIN / 'psql')
PACKS = Path(__file__).resolve().parents[2] / 'policy' / 'packs'
JDBC_CHECK = Path(__file__).resolve().parents[1] / 'drivers' / 'jdbc' / 'DriverCheck.java'
JDBC_JAR = Path('/usr/share/java/postgresql.jar')
NODE_CHECK = Path(__file__).resolve().parents[1] / 'drivers' / 'node' / 'check.js'
TOOL_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/lib/jvm/default-java/bin'
RESULTS = ('match', 'mismatch', 'unwitnessed', 'unclaimed', 'encrypted', 'cancel', 'internal')

cluster = None
agent = None


def setUpModule():
    global cluster, agent
    fx.require_tap()
    cluster = fx.module_cluster()
    site = cluster.datadir.parent / 'site.yaml'
    site.write_text('version: 1\nprincipals:\n  agents:\n    - application_name: ["ai-*"]\n'
                    'rules: []\n')
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.psql('CREATE TABLE scratch (id int);'
                 'CREATE TABLE customers (id int PRIMARY KEY, email text, note text);'
                 "INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'n' || g "
                 'FROM generate_series(1, 50) g;', dbname='appdb', user='app')
    subprocess.run([PGBENCH, '-i', '-s', '1', '-q', '-h', cluster.socket_dir, '-p',
                    str(cluster.port), '-U', 'app', 'appdb'], check=True,
                   capture_output=True, env=fx.CLIENT_ENV)
    agent = fx.Relay(
        [{'name': 'prod', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'},
         {'name': 'local', 'env': 'prod',
          'upstream': f'unix:{cluster.socket_dir}/.s.PGSQL.{cluster.port}'}],
        extra={'tap': {'enabled': 'true', 'ports': [cluster.port], 'ring_buffer_mb': 16},
               'policy': {'mode': 'enforce',
                          'files': [str(PACKS / 'guardrails.yaml'), str(PACKS / 'pii.yaml'),
                                    str(site)]}})
    unittest.addModuleCleanup(agent.close)
    agent.start()
    fx.wait_until(lambda: 'tap: running' in agent.stderr_text(), 120, 'the tap to load')


def results():
    return {r: fx.metric(agent.api_port, f'dbwarden_witness_connections_total{{result="{r}"}}')
            for r in RESULTS}


def mismatches():
    return agent.events('witness_mismatch')


def pgbench(target, mode, clients=4, tx=100, app='witness-pgbench'):
    host, port = agent.listen(target)
    out = subprocess.run([PGBENCH, '-n', '-S', '-M', mode, '-c', str(clients), '-t', str(tx),
                          '-h', host, '-p', str(port), '-U', 'app', 'appdb'],
                         capture_output=True, text=True, timeout=300,
                         env=dict(fx.CLIENT_ENV, PGAPPNAME=app))
    if out.returncode != 0:
        raise AssertionError(f'pgbench failed: {out.stderr}')


def cstr(s):
    return s.encode() + b'\0'


def pipeline(port, app, messages):
    """Logs in as app/appdb through the relay, sends `messages` in one write and returns the
    backend messages up to ReadyForQuery; then Terminates."""
    with fx.RawPg(fx.LOOPBACK, port, timeout=30) as pg:
        assert pg.startup('app', 'appdb', application_name=app)[0] == 'ready'
        pg.send(b''.join(messages))
        out = []
        while not out or out[-1][0] != b'Z':
            m = pg.read_message()
            assert m is not None, f'connection closed after {out}'
            out.append(m)
        pg.send(fx.frame(b'X'))
        return out


class ReconcileTest(unittest.TestCase):
    """Real workloads through the relay reconcile exactly: every session a match."""

    def test_workloads_reconcile_without_mismatch(self):
        before = results()
        earlier = {e['seq'] for e in mismatches()}  # the injection test's, when it ran first
        sessions = 0
        # pgbench in each protocol mode, over TCP and over the server's unix socket.
        for target in ('prod', 'local'):
            for mode in ('simple', 'extended', 'prepared'):
                pgbench(target, mode)
                sessions += 5  # its 4 clients and the connection it checks the tables with
        host, port = agent.listen('prod')
        # psql: a failing statement in the middle, masking (the relay's search_path probe),
        # an agent's DROP refused by the policy.
        out = subprocess.run(
            [PSQL, '-X', '-h', host, '-p', str(port), '-U', 'app', '-d', 'appdb', '-c',
             'SELECT email FROM customers WHERE id < 5', '-c', 'SELECT 1/0', '-c',
             'SELECT count(*) FROM customers'],
            capture_output=True, text=True, env=dict(fx.CLIENT_ENV, PGAPPNAME='witness-psql'))
        self.assertIn('division by zero', out.stderr)
        sessions += 1
        conn = fx.psycopg2_connect(port, user='app', dbname='appdb',
                                   application_name='ai-witness')
        self.assertEqual(fx.sql_outcome(conn, 'DROP TABLE customers')[0], '42501')
        self.assertEqual(fx.sql_outcome(conn, "COPY customers TO PROGRAM 'cat'")[0], '42501')
        # An agent's write runs under the row budget: the relay's own counts around it.
        self.assertEqual(fx.sql_outcome(conn, "UPDATE customers SET note = 'w' WHERE id = 7"),
                         ('ok', 'UPDATE 1'))
        self.assertGreaterEqual(fx.metric(agent.api_port, 'dbwarden_limit_wrapped_total'), 1)
        self.assertEqual(fx.sql_outcome(conn, 'SELECT 1/0')[0], '22012')
        with conn.cursor() as cur:
            cur.execute('SELECT id, email FROM customers WHERE id = %s', (3,))
            self.assertNotIn('user3@example.com', str(cur.fetchall()))
        conn.close()
        sessions += 1
        # pgjdbc's scripted session (test_drivers): named statements past prepareThreshold, an
        # agent's DELETE refused in a pipeline, a failed transaction (25P02), DatabaseMetaData;
        java, node = shutil.which('java', path=TOOL_PATH), shutil.which('node', path=TOOL_PATH)
        if not java or not JDBC_JAR.exists() or not node:
            raise fx.PrerequisiteError('java, libpostgresql-jdbc-java and node are needed')
        # ... and node-postgres's (test_drivers): values, named queries, queryMode extended.
        for cmd in ([java, '-cp', str(JDBC_JAR), str(JDBC_CHECK)], [node, str(NODE_CHECK)]):
            out = subprocess.run(cmd + [fx.LOOPBACK, str(port), 'appdb', 'app', 'ai-driver'],
                                 capture_output=True, text=True, timeout=240,
                                 stdin=subprocess.DEVNULL,
                                 env={'PATH': TOOL_PATH, 'HOME': os.environ.get('HOME', '/tmp')})
            self.assertIn('"step":"done","ok":true', out.stdout, out.stdout + out.stderr)
            sessions += 1
        # Extended protocol: the first Execute fails, so the server skips the second up to Sync.
        answer = pipeline(port, 'witness-pipeline', [
            fx.frame(b'P', cstr('') + cstr('SELECT 1/0') + b'\0\0'),
            fx.frame(b'B', cstr('') + cstr('') + b'\0\0' + b'\0\0' + b'\0\0'),
            fx.frame(b'E', cstr('') + b'\0\0\0\0'),
            fx.frame(b'P', cstr('') + cstr('SELECT 2') + b'\0\0'),
            fx.frame(b'B', cstr('') + cstr('') + b'\0\0' + b'\0\0' + b'\0\0'),
            fx.frame(b'E', cstr('') + b'\0\0\0\0'),
            fx.frame(b'S')])
        kinds = [k for k, _ in answer]
        self.assertIn(b'E', kinds)  # the error
        self.assertNotIn(b'D', kinds)  # SELECT 2 never ran
        sessions += 1

        def settled():
            now = results()
            done = sum(now[r] - before[r] for r in ('match', 'mismatch', 'unclaimed'))
            return done >= sessions and now
        now = fx.wait_until(settled, 60, f'{sessions} reconciled sessions')
        self.assertEqual([e['detail'] for e in mismatches() if e['seq'] not in earlier], [],
                         'a real workload must reconcile')
        self.assertEqual(now['match'] - before['match'], sessions)
        self.assertEqual(now['mismatch'], before['mismatch'])
        self.assertEqual(now['unclaimed'], before['unclaimed'])
        # The masking catalog reads are the relay's own connections, not sessions.
        self.assertGreaterEqual(now['internal'], 1)


class MetricsTest(unittest.TestCase):
    def test_tap_and_witness_metrics_follow_the_conventions(self):
        """The families only an agent with the tap exports (tap, witness), checked as
        test_metrics_format checks the rest."""
        pgbench('prod', 'simple', clients=1, tx=10, app='witness-metrics')
        fx.wait_until(lambda: results()['match'] > 0, 60, 'a reconciled session')
        text = fx.api_request(agent.api_port, '/metrics')[2].decode()
        self.assertIn('# TYPE dbwarden_witness_connections_total counter', text)
        self.assertIn('# TYPE dbwarden_tap_bpf_run_time_seconds_total counter', text)
        self.assertEqual(fx.metric_convention_problems(text), [])


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd(2)
        if got < 0:
            raise OSError(ctypes.get_errno(), 'pidfd_getfd')
        return got
    finally:
        os.close(pidfd)


def agent_socket_fd(pid, local_port):
    """The agent's descriptor for its TCP socket bound to local_port."""
    inodes = set()
    for table in ('/proc/%d/net/tcp' % pid, '/proc/%d/net/tcp6' % pid):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(':', 1)[1], 16) == local_port:
                inodes.add(f[9])
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        m = re.match(r'socket:\[(\d+)\]', link)
        if m and m.group(1) in inodes:
            return int(fd)
    raise AssertionError(f'no socket of the agent on port {local_port}')


class InjectionTest(unittest.TestCase):
    """A statement written into the relay's upstream socket by another process reaches the
    server without an audit record: the witness reports it."""

    def test_injected_statement_is_a_mismatch(self):
        port = agent.port('prod')
        conn = fx.psycopg2_connect(port, user='app', dbname='appdb',
                                   application_name='witness-victim')
        with conn.cursor() as cur:
            cur.execute('SELECT inet_client_port()')
            relay_port = cur.fetchone()[0]
        start = agent.wait_for(lambda e: e.get('principal', {}).get(
            'application_name') == 'witness-victim', kind='session_start')[0]
        fd = pidfd_getfd(agent.proc.pid, agent_socket_fd(agent.proc.pid, relay_port))
        try:
            query = cstr("SELECT 'injected past the gate'")
            os.write(fd, fx.frame(b'Q', query))
        finally:
            os.close(fd)
        fx.wait_until(lambda: 'injected past the gate' in cluster.psql(
            "SELECT string_agg(query, ',') FROM pg_stat_activity "
            f"WHERE client_port = {relay_port}"), 20, 'the injected statement to run')
        try:
            conn.close()
        except Exception:  # the relay may have ended the session on the unexpected answer
            pass
        evs = agent.wait_for(lambda e: e.get('session_id') == start['session_id'], timeout=60,
                             kind='witness_mismatch')
        detail = evs[0]['detail']
        self.assertIn('the audit log accounts for', detail)
        self.assertIn('the server received', detail)
        self.assertEqual(evs[0]['count'], 1, detail)
        self.assertEqual(evs[0]['principal']['application_name'], 'witness-victim')
        self.assertEqual(evs[0]['source'], 'agent')
        # No statement event of the session shows the injected text.
        stmts = agent.events('statement', lambda e: e.get('session_id') == start['session_id'])
        self.assertFalse([e for e in stmts if 'injected' in str(e.get('statement'))])
        self.assertGreaterEqual(results()['mismatch'], 1)


if __name__ == '__main__':
    unittest.main()
