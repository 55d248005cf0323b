"""The eBPF tap against a real PostgreSQL 15 with real clients: the agent loads its BPF programs
into this kernel, follows the test cluster's server processes, and turns what psql (TCP and unix
socket), pgbench and psycopg2 send straight to the server into audit events with source "tap".

  sessions:  every statement once, with user, database, client pid and exe
  bypass:    a direct session on a relay_only target is reported, one through the relay is not
  results:   a result of tens of MB is decoded without losing step
  pickup:    a session opened before the agent is followed from its next statement
  syscalls:  a client writing with sendmsg and reading with recvmsg and recv, peeking 3 bytes
             before each read (client-side capture): nothing peeked enters the stream
  loss:      with the agent frozen (SIGSTOP) the ring buffer overflows; losses are counted and
             logged, gaps recorded, and later statements still decode
  identity:  a client in its own cgroup v2 directory is reported with that cgroup path; a client
             that exits before the (frozen) agent reads /proc, or is a zombie by then, keeps its
             exe, parent and cgroup from what the kernel recorded at connect(); an executable
             deleted before connect() reads "(deleted)"

Needs root (BPF) and a kernel with BTF: ctest label `privileged`.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_tap.py -v
"""

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PSQL = str(fx.PG_BIN / 'psql')
PGBENCH = str(fx.PG_BIN / 'pgbench')


CGROUP_ROOT = fx.cgroup2_root()

cluster = None
agent = None


def start_agent(**tap):
    options = {'enabled': 'true', 'ports': [cluster.port], 'capture_bytes': 16384,
               'ring_buffer_mb': 8}
    options.update(tap)
    r = fx.Relay([{'name': 'orders', 'env': 'prod', 'relay_only': True,
                   'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                 extra={'tap': options, 'policy': {'mode': 'enforce'}})
    r.start()
    fx.wait_until(lambda: 'tap: running' in r.stderr_text(), 120, 'the tap to load')
    return r


def setUpModule():
    global cluster, agent
    fx.require_tap()
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.psql('CREATE TABLE items (id int PRIMARY KEY, name text);'
                 "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
                 dbname='appdb', user='app')
    agent = start_agent()
    unittest.addModuleCleanup(agent.close)


def by_app(app, kind='statement'):
    return agent.events(kind, lambda e: e.get('source') == 'tap' and e.get(
        'principal', {}).get('application_name') == app)


def wait_statements(app, count, timeout=20, relay=None):
    relay = relay or agent
    return relay.wait_for(lambda e: e.get('source') == 'tap' and e.get('principal', {}).get(
        'application_name') == app, timeout=timeout, count=count, kind='statement')


def psql(*args, app, host=None, user='app', env=None):
    """Runs psql straight at the server; returns (pid, stdout)."""
    cmd = [PSQL, '-X', '-v', 'ON_ERROR_STOP=1', '-h', host or fx.LOOPBACK, '-p', str(cluster.port),
           '-U', user, '-d', 'appdb', *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(fx.CLIENT_ENV, PGAPPNAME=app, **(env or {})))
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f'psql failed: {err}')
    return proc.pid, out


class SessionsTest(unittest.TestCase):
    def check_psql(self, app, host, transport):
        pid, out = psql('-c', 'SELECT count(*) FROM items WHERE id < 11', '-c',
                        "UPDATE items SET name = 'renamed' WHERE id = 3", app=app, host=host)
        self.assertIn('10', out)
        evs = wait_statements(app, 2)
        time.sleep(0.5)  # nothing more arrives for the session
        evs = by_app(app)
        self.assertEqual([e['statement']['sql'] for e in evs],
                         ['SELECT count(*) FROM items WHERE id < $1',
                          'UPDATE items SET name = $1 WHERE id = $2'])
        for e in evs:
            self.assertEqual(e['target'], 'orders')
            self.assertEqual(e['principal']['db_user'], 'app')
            self.assertEqual(e['principal']['database'], 'appdb')
            self.assertEqual(e['process']['pid'], pid)
            self.assertTrue(e['process']['exe'].endswith('/psql'), e['process'])
        self.assertEqual(evs[0]['result']['command_tag'], 'SELECT 1')
        self.assertEqual(evs[0]['result']['rows'], 1)
        self.assertEqual(evs[1]['result']['command_tag'], 'UPDATE 1')
        start = agent.wait_for(lambda e: e.get('source') == 'tap' and e.get('principal', {}).get(
            'application_name') == app, kind='session_start')[0]
        self.assertTrue(start['detail'].startswith(transport), start)
        agent.wait_for(lambda e: e.get('source') == 'tap' and e.get('principal', {}).get(
            'application_name') == app, kind='session_end')
        return evs

    def test_psql_over_tcp(self):
        evs = self.check_psql('tap-psql-tcp', fx.LOOPBACK, 'tcp')
        self.assertTrue(evs[0]['principal']['client_addr'].startswith('127.0.0.1:'))

    def test_psql_over_the_unix_socket(self):
        evs = self.check_psql('tap-psql-unix', cluster.socket_dir, 'unix')
        self.assertEqual(evs[0]['principal']['client_addr'],
                         f'unix:{cluster.socket_dir}/.s.PGSQL.{cluster.port}')

    def test_psycopg2_extended_protocol(self):
        code = ('import psycopg2, os\n'
                f'c = psycopg2.connect(host="{fx.LOOPBACK}", port={cluster.port}, user="app", '
                'dbname="appdb", application_name="tap-psycopg2")\n'
                'cur = c.cursor()\n'
                'cur.execute("SELECT name FROM items WHERE id = %s", (7,))\n'
                'print(os.getpid(), cur.fetchone()[0])\n'
                'c.rollback(); c.close()\n')
        out = subprocess.run(['/usr/bin/python3', '-c', code], capture_output=True, text=True,
                             timeout=60, check=True).stdout.split()
        pid = int(out[0])
        evs = wait_statements('tap-psycopg2', 3)
        self.assertEqual([e['statement']['sql'] for e in evs],
                         ['BEGIN', 'SELECT name FROM items WHERE id = $1', 'ROLLBACK'])
        self.assertTrue(all(e['process']['pid'] == pid for e in evs))
        self.assertTrue(evs[1]['process']['exe'].startswith('/usr/bin/python3'))

    def test_node_postgres(self):
        # node-postgres writes through libuv (write/writev): the vectored capture path.
        import test_drivers as td
        td.require_driver_tools()
        script = (
            "const {Client} = require('pg');"
            "(async () => {"
            f"  const c = new Client({{host: '{fx.LOOPBACK}', port: {cluster.port}, user: 'app',"
            "    database: 'appdb', application_name: 'tap-node'});"
            "  await c.connect();"
            "  const r = await c.query('SELECT name FROM items WHERE id = $1', [9]);"
            "  await c.query('SELECT count(*) FROM items');"
            "  console.log(process.pid, r.rows[0].name);"
            "  await c.end();"
            "})().catch(e => { console.log(e.message); process.exit(1); });")
        env = {'PATH': td.TOOL_PATH, 'LC_ALL': 'C.UTF-8', 'HOME': os.environ.get('HOME', '/tmp')}
        out = subprocess.run([td.NODE, '-e', script], cwd=td.NODE_DIR, env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
        evs = wait_statements('tap-node', 2)
        self.assertEqual([e['statement']['sql'] for e in evs],
                         ['SELECT name FROM items WHERE id = $1', 'SELECT count(*) FROM items'])
        self.assertEqual([e['statement']['protocol'] for e in evs], ['extended', 'simple'])
        self.assertEqual(evs[0]['process']['pid'], int(out[0]))
        self.assertEqual(out[1:], ['item', '9'])

    def test_pgbench_every_statement_once(self):
        env = dict(fx.CLIENT_ENV, PGAPPNAME='tap-pgbench')
        cluster.psql('CREATE DATABASE benchdb OWNER app')
        subprocess.run([PGBENCH, '-h', fx.LOOPBACK, '-p', str(cluster.port), '-U', 'app', '-i',
                        '-s', '1', '-q', 'benchdb'], env=env, check=True, capture_output=True,
                       timeout=120)
        subprocess.run([PGBENCH, '-h', fx.LOOPBACK, '-p', str(cluster.port), '-U', 'app', '-S',
                        '-c', '4', '-j', '2', '-t', '50', '-n', 'benchdb'], env=env, check=True,
                       capture_output=True, timeout=120)
        want = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'  # pgbench's own text
        evs = agent.wait_for(lambda e: e.get('source') == 'tap' and e.get('statement', {}).get(
            'sql') == want, kind='statement', count=200, timeout=30)
        time.sleep(1)
        evs = agent.events('statement', lambda e: e.get('source') == 'tap' and e.get(
            'statement', {}).get('sql') == want)
        self.assertEqual(len(evs), 200)
        self.assertTrue(all(e['result']['rows'] == 1 for e in evs))
        self.assertTrue(all(e['process']['exe'].endswith('/pgbench') for e in evs))

    def test_bpf_run_time_is_exported(self):
        def bpf_counters():
            text = fx.api_request(agent.api_port, '/metrics')[2].decode()
            out = {}
            for line in text.splitlines():
                m = re.match(r'dbwarden_tap_bpf_(run_time_seconds|runs)_total'
                             r'\{program="([a-z_]+)"\} ([0-9.]+)$', line)
                if m:
                    out[(m.group(2), m.group(1))] = float(m.group(3))
            return out

        with open('/proc/sys/kernel/bpf_stats_enabled') as f:
            was = f.read().strip()
        with open('/proc/sys/kernel/bpf_stats_enabled', 'w') as f:
            f.write('1')
        try:
            time.sleep(1.5)  # the agent mirrors the kernel's counters once a second
            before = bpf_counters()
            psql('-c', 'SELECT 1', app='tap-bpf-stats')
            wait_statements('tap-bpf-stats', 1)
            time.sleep(1.5)
            after = bpf_counters()
        finally:
            with open('/proc/sys/kernel/bpf_stats_enabled', 'w') as f:
                f.write(was)
        # The data syscalls are traced at their exit only.
        self.assertFalse([k for k in after if k[0].startswith('enter_') and k[0] != 'enter_close'
                          and k[0] != 'enter_connect'], after)
        for prog in ('exit_sendto', 'exit_recvfrom'):
            self.assertGreater(after[(prog, 'runs')], before.get((prog, 'runs'), 0), prog)
            self.assertGreater(after[(prog, 'run_time_seconds')],
                               before.get((prog, 'run_time_seconds'), 0), prog)

    def test_large_result_decodes_without_desync(self):
        pid, out = psql('-c', "SELECT g, repeat('x', 1000) FROM generate_series(1, 40000) g",
                        '-c', 'SELECT 4242 AS after_the_flood', app='tap-large')
        self.assertIn('4242', out)
        evs = wait_statements('tap-large', 2, timeout=60)
        self.assertEqual(evs[0]['result']['command_tag'], 'SELECT 40000')
        self.assertEqual(evs[0]['result']['rows'], 40000)
        self.assertGreater(evs[0]['result']['bytes'], 40_000_000)
        self.assertEqual(evs[1]['statement']['sql'], 'SELECT $1 AS after_the_flood')
        self.assertEqual(evs[1]['result']['command_tag'], 'SELECT 1')


class BypassTest(unittest.TestCase):
    def test_direct_session_is_a_bypass_and_the_relay_is_not(self):
        pid, _ = psql('-c', 'SELECT 1', app='tap-direct')
        ev = agent.wait_for(lambda e: e.get('principal', {}).get('application_name') ==
                            'tap-direct', kind='bypass')[0]
        self.assertEqual(ev['source'], 'tap')
        self.assertEqual(ev['target'], 'orders')
        self.assertEqual(ev['process']['pid'], pid)
        self.assertTrue(ev['process']['exe'].endswith('/psql'))
        self.assertIn('did not come through the relay', ev['detail'])

        # The same statements through the relay: the relay's events, no tap session, no bypass.
        out = subprocess.run([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(agent.port()), '-U', 'app',
                              '-d', 'appdb', '-c', 'SELECT 1'], capture_output=True, text=True,
                             env=dict(fx.CLIENT_ENV, PGAPPNAME='tap-via-relay'), timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        agent.wait_for(lambda e: e.get('principal', {}).get('application_name') ==
                       'tap-via-relay' and e['source'] == 'relay', kind='statement')
        # A later direct session is the marker that the tap has read past the relay's traffic.
        psql('-c', 'SELECT 2', app='tap-marker')
        agent.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'tap-marker',
                       kind='bypass')
        via_relay = agent.events(predicate=lambda e: e.get('source') == 'tap' and e.get(
            'principal', {}).get('application_name') == 'tap-via-relay')
        self.assertEqual(via_relay, [])
        metrics = fx.api_request(agent.api_port, '/metrics')[2].decode()
        self.assertIn('dbwarden_tap_relay_connections_total', metrics)
        self.assertNotIn('dbwarden_tap_relay_connections_total 0\n', metrics)

    def test_shadow_policy_judges_tapped_statements(self):
        # Through the relay a person's DROP on prod waits for approval; straight to the server
        # it runs, and the tap records what the relay would have done.
        cluster.psql('CREATE TABLE doomed (id int)', dbname='appdb', user='app')
        psql('-c', 'DROP TABLE doomed', app='tap-human-drop')
        ev = wait_statements('tap-human-drop', 1)[0]
        self.assertEqual(ev['decision']['action'], 'approve')
        self.assertEqual(ev['decision']['mode'], 'monitor')
        self.assertFalse(ev['decision']['enforced'])
        self.assertEqual(ev['decision']['rules'], ['prod-destructive-human'])
        self.assertEqual(ev['result']['command_tag'], 'DROP TABLE')


class UnixUpstreamTest(unittest.TestCase):
    def test_relay_on_the_servers_unix_socket_is_not_a_bypass(self):
        # A relay_only target whose relay reaches the server at its unix socket: the tap finds
        # the server by that path, knows the relay's upstream connections as the relay's, and
        # still reports a client that uses the socket directly.
        socket_path = os.path.join(cluster.socket_dir, f'.s.PGSQL.{cluster.port}')
        r = fx.Relay([{'name': 'orders-unix', 'env': 'prod', 'relay_only': True,
                       'upstream': f'unix:{socket_path}'}],
                     extra={'tap': {'enabled': 'true', 'ports': [cluster.port],
                                    'capture_bytes': 16384, 'ring_buffer_mb': 8},
                            'policy': {'mode': 'enforce'}})
        self.addCleanup(r.close)
        r.start()
        fx.wait_until(lambda: 'tap: running' in r.stderr_text(), 120, 'the tap to load')
        self.assertIn('tap: target orders-unix: server pid', r.stderr_text())

        out = subprocess.run([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(r.port()), '-U', 'app',
                              '-d', 'appdb', '-c', 'SELECT inet_client_addr() IS NULL'],
                             capture_output=True, text=True, timeout=60,
                             env=dict(fx.CLIENT_ENV, PGAPPNAME='unix-via-relay'))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(' t\n', out.stdout)  # the server saw a unix-socket connection
        r.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'unix-via-relay'
                   and e['source'] == 'relay', kind='statement')
        # Straight at the socket: a bypass, and the marker that the tap read past the relay's.
        pid, _ = psql('-c', 'SELECT 2', app='unix-direct', host=cluster.socket_dir)
        ev = r.wait_for(lambda e: e.get('principal', {}).get('application_name') ==
                        'unix-direct', kind='bypass')[0]
        self.assertEqual(ev['target'], 'orders-unix')
        self.assertEqual(ev['process']['pid'], pid)
        via_relay = r.events(predicate=lambda e: e.get('source') == 'tap' and e.get(
            'principal', {}).get('application_name') == 'unix-via-relay')
        self.assertEqual(via_relay, [])
        metrics = fx.api_request(r.api_port, '/metrics')[2].decode()
        self.assertNotIn('dbwarden_tap_relay_connections_total 0\n', metrics)


class PickupTest(unittest.TestCase):
    def test_session_opened_before_the_agent(self):
        import psycopg2
        conn = psycopg2.connect(host=fx.LOOPBACK, port=cluster.port, user='app', dbname='appdb',
                                application_name='tap-early')
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT 1')
            with fx.Relay([{'name': 'orders', 'env': 'prod',
                            'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                          extra={'tap': {'enabled': 'true', 'ports': [cluster.port]}}) as late:
                fx.wait_until(lambda: 'tap: running' in late.stderr_text(), 120, 'the tap')
                with conn.cursor() as cur:
                    cur.execute('SELECT id FROM items WHERE id = 5')
                    cur.execute('SELECT count(*) FROM items')
                evs = late.wait_for(lambda e: e.get('source') == 'tap' and e.get(
                    'principal', {}).get('db_user') == 'app', kind='statement', count=2)
                self.assertEqual([e['statement']['sql'] for e in evs],
                                 ['SELECT id FROM items WHERE id = $1', 'SELECT count(*) FROM items'])
                self.assertEqual(evs[0]['principal']['database'], 'appdb')
                self.assertEqual(evs[1]['result']['command_tag'], 'SELECT 1')
        finally:
            conn.close()


class LossTest(unittest.TestCase):
    def test_overflow_is_counted_and_decoding_recovers(self):
        with fx.Relay([{'name': 'orders', 'env': 'prod',
                        'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                      extra={'tap': {'enabled': 'true', 'ports': [cluster.port],
                                     'ring_buffer_mb': 1}}) as small:
            fx.wait_until(lambda: 'tap: running' in small.stderr_text(), 120, 'the tap')
            env = dict(fx.CLIENT_ENV, PGAPPNAME='tap-loss')
            # Frozen, the agent reads nothing: the 1 MiB ring overflows under this load.
            small.proc.send_signal(signal.SIGSTOP)
            try:
                subprocess.run([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(cluster.port), '-U',
                                'app', '-d', 'appdb', '-c',
                                "SELECT g, repeat('y', 500) FROM generate_series(1, 20000) g"],
                               env=env, check=True, capture_output=True, timeout=120)
            finally:
                small.proc.send_signal(signal.SIGCONT)
            loss = small.wait_for(lambda e: e.get('source') == 'tap', kind='tap_loss',
                                  timeout=20)[0]
            self.assertGreater(loss['count'], 0)
            self.assertIn('ringbuf_full_chunks=', loss['detail'])
            # Later statements decode as if nothing happened.
            psql('-c', 'SELECT 777 AS after_the_loss', app='tap-after-loss')
            ev = small.wait_for(lambda e: e.get('source') == 'tap' and e.get(
                'principal', {}).get('application_name') == 'tap-after-loss',
                kind='statement')[0]
            self.assertEqual(ev['statement']['sql'], 'SELECT $1 AS after_the_loss')
            self.assertEqual(ev['result']['command_tag'], 'SELECT 1')
            metrics = fx.api_request(small.api_port, '/metrics')[2].decode()
            lost = [line for line in metrics.splitlines()
                    if line.startswith('dbwarden_tap_losses_total{cause="ringbuf_full_chunks"}')]
            self.assertTrue(lost and int(lost[0].split()[-1]) > 0, lost)


def gone_count():
    metrics = fx.api_request(agent.api_port, '/metrics')[2].decode()
    m = re.search(r'^dbwarden_tap_processes_gone_total (\d+)$', metrics, re.M)
    assert m, 'no dbwarden_tap_processes_gone_total in /metrics'
    return int(m.group(1))


@contextlib.contextmanager
def agent_frozen():
    """The shared agent stopped (SIGSTOP): it reads nothing until the block ends."""
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        agent.proc.send_signal(signal.SIGCONT)


class MaskingCatalogTest(unittest.TestCase):
    """DDL the tap sees on a connection that skips the relay makes masking read its catalog
    again before the next masked statement (agent/tap_ddl_sink.h)."""

    def test_direct_redefinition_is_seen_before_the_next_masked_statement(self):
        import psycopg2
        secret = 'tapsecret-7731-zq'
        cluster.create_user('masked')
        cluster.psql(f"""
            CREATE TABLE secrets (id int, s text);
            INSERT INTO secrets VALUES (1, '{secret}');
            CREATE VIEW flip AS SELECT id, name FROM items;
            GRANT SELECT ON secrets, flip, items TO masked;
        """, dbname='appdb', user='app')
        work = tempfile.mkdtemp(prefix='dbwarden-tapmask-')
        self.addCleanup(shutil.rmtree, work, True)
        policy = os.path.join(work, 'policy.yaml')
        with open(policy, 'w') as f:
            f.write('version: 1\nmasking:\n  - id: tap-secret\n'
                    '    match: {principal: {db_user: [masked]}}\n'
                    '    columns: ["public.secrets.s"]\n    function: redact\n')
        with fx.Relay([{'name': 'orders', 'env': 'prod',
                        'upstream': f'{fx.LOOPBACK}:{cluster.port}'}], workers=1,
                      extra={'tap': {'enabled': 'true', 'ports': [cluster.port]},
                             'policy': {'files': [policy]}}) as r:
            fx.wait_until(lambda: 'tap: running' in r.stderr_text(), 120, 'the tap to load')
            conn = psycopg2.connect(host=fx.LOOPBACK, port=r.port(), user='masked',
                                    dbname='appdb', connect_timeout=10)
            conn.autocommit = True
            try:
                cur = conn.cursor()
                # An expression: only masking by reference can hide it.
                read = "SELECT name || '' FROM flip WHERE id = 1"
                cur.execute(read)
                self.assertEqual(cur.fetchall(), [('item 1',)])  # the catalog is cached now
                psql('-c', 'CREATE OR REPLACE VIEW flip AS SELECT id, s AS name FROM secrets',
                     app='tap-mask-ddl')
                r.wait_for(lambda e: e.get('source') == 'tap' and 'CREATE OR REPLACE VIEW' in
                           e.get('statement', {}).get('sql', ''), kind='statement', timeout=20)
                cur.execute(read)
                rows = cur.fetchall()
                self.assertNotIn(secret, repr(rows))
                self.assertEqual(rows, [('[redacted]',)])
            finally:
                conn.close()
                cluster.psql('DROP VIEW flip; DROP TABLE secrets', dbname='appdb', user='app')


class IdentityTest(unittest.TestCase):
    def cgroup(self, name):
        """A cgroup v2 directory for one client, removed after the test (once it is empty)."""
        if not (CGROUP_ROOT / 'cgroup.procs').exists():
            self.skipTest('no cgroup v2 hierarchy')
        group = CGROUP_ROOT / f'dbwarden-{name}-{os.getpid()}.scope'
        group.mkdir()

        def remove():
            for _ in range(50):
                try:
                    group.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)
        self.addCleanup(remove)
        return group

    def psql_in_cgroup(self, group, sql, user=None):
        """A shell that moves itself into `group`, then becomes psql running `sql` (as the
        system user `user`, when given)."""
        become = ''
        if user is not None:
            pw = pwd.getpwnam(user)
            become = f'/usr/bin/setpriv --reuid={pw.pw_uid} --regid={pw.pw_gid} --clear-groups '
        return (f'echo $$ > {group}/cgroup.procs && exec {become}{PSQL} -X -h {fx.LOOPBACK} '
                f'-p {cluster.port} -U app -d appdb -c "{sql}"')

    def test_client_in_its_own_cgroup(self):
        group = self.cgroup('test')
        subprocess.run(['/bin/sh', '-c', self.psql_in_cgroup(group, 'SELECT 31337')], check=True,
                       capture_output=True, timeout=60,
                       env=dict(fx.CLIENT_ENV, PGAPPNAME='tap-cgroup'))
        ev = wait_statements('tap-cgroup', 1)[0]
        self.assertEqual(ev['process']['cgroup'], f'/{group.name}')
        self.assertEqual(ev['process']['unit'], group.name)

    def test_client_gone_before_the_agent_reads_it(self):
        # psql -c is done in milliseconds; with the agent frozen it is gone for certain before
        # the agent reads the connect record. The kernel's record still names it.
        group = self.cgroup('gone')
        gone_before = gone_count()
        with agent_frozen():
            # As another user: uid, gid and comm come from the kernel's record too.
            proc = subprocess.Popen(['/bin/sh', '-c',
                                     self.psql_in_cgroup(group, 'SELECT 4711', user='postgres')],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(fx.CLIENT_ENV, PGAPPNAME='tap-gone'))
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err)
            self.assertIn(b'4711', out)
        self.assertFalse(Path(f'/proc/{proc.pid}').exists())
        ev = wait_statements('tap-gone', 1)[0]
        p = ev['process']
        self.assertEqual(p['pid'], proc.pid)
        self.assertEqual(p['exe'], os.path.realpath(PSQL))
        self.assertEqual(p['ppid'], os.getpid())
        self.assertEqual(p['parents'][0]['pid'], os.getpid())
        self.assertEqual(p['parents'][0]['exe'], os.path.realpath('/proc/self/exe'))
        self.assertEqual(p['cgroup'], f'/{group.name}')
        self.assertEqual(p['unit'], group.name)
        self.assertEqual(p['uid'], pwd.getpwnam('postgres').pw_uid)
        self.assertEqual(p['gid'], pwd.getpwnam('postgres').pw_gid)
        self.assertEqual(p['comm'], 'psql')
        self.assertNotIn('cmdline', p)
        self.assertGreater(gone_count(), gone_before)

    def test_exited_but_unreaped_client_is_gone_too(self):
        # A zombie still has /proc/PID/status but no exe: it must be described from the kernel's
        # record, not cached from /proc with an empty exe.
        gone_before = gone_count()
        with agent_frozen():
            proc = subprocess.Popen([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(cluster.port), '-U',
                                     'app', '-d', 'appdb', '-c', 'SELECT 4712'],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(fx.CLIENT_ENV, PGAPPNAME='tap-zombie'))
            with proc.stdout, proc.stderr:
                self.assertIn(b'4712', proc.stdout.read())  # to EOF: psql has exited
                proc.stderr.read()
            fx.wait_until(lambda: Path(f'/proc/{proc.pid}/stat').read_text().split(') ')[1]
                          .startswith('Z'), 10, 'psql to become a zombie')
        try:
            ev = wait_statements('tap-zombie', 1)[0]
            p = ev['process']
            self.assertEqual(p['pid'], proc.pid)
            self.assertEqual(p['exe'], os.path.realpath(PSQL))
            self.assertEqual(p['ppid'], os.getpid())
            self.assertNotIn('cmdline', p)
            self.assertGreater(gone_count(), gone_before)
        finally:
            proc.wait(timeout=10)

    def test_deleted_executable_is_marked_deleted(self):
        # A client whose executable was removed before it connected (or a memfd) reads
        # "... (deleted)" in /proc; the kernel's record says the same.
        with tempfile.TemporaryDirectory() as d:
            copy = Path(d) / 'psql-copy'
            copy.write_bytes(Path(PSQL).read_bytes())
            copy.chmod(0o755)
            script = (f'(sleep 0.5; rm {copy}) & exec {copy} -X -h {fx.LOOPBACK} -p {cluster.port} '
                      f'-U app -d appdb -c "SELECT pg_sleep(1.5)" -c "\\c appdb" '
                      f'-c "SELECT 4713"')
            with agent_frozen():
                out = subprocess.run(['/bin/sh', '-c', script], capture_output=True, timeout=60,
                                     env=dict(fx.CLIENT_ENV, PGAPPNAME='tap-deleted'))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertFalse(copy.exists())
            evs = wait_statements('tap-deleted', 2)
            by_sql = {e['statement']['sql']: e['process']['exe'] for e in evs}
            self.assertEqual(by_sql['SELECT pg_sleep($1)'], str(copy))
            self.assertEqual(by_sql['SELECT $1'], f'{copy} (deleted)')


# A client that speaks the protocol itself through sendmsg/recvmsg and peeks before each read:
# recv(MSG_PEEK) is a recvfrom with the flag in its fourth argument, recvmsg(MSG_PEEK) has it in
# its third; a peeked read captured as data would put its bytes in the stream twice.
RAW_CLIENT = r"""
import socket, struct, sys

s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))

def message(kind, body):
    return [kind, struct.pack('!I', len(body) + 4), body]

def read_until_ready(use_recvmsg):
    buf = b''
    while True:
        # A peek of 3 bytes: captured as data, they would misframe everything after them.
        if use_recvmsg:
            peeked = s.recvmsg(3, 0, socket.MSG_PEEK)[0]
            got = s.recvmsg(65536)[0]
        else:
            peeked = s.recv(3, socket.MSG_PEEK)
            got = s.recv(65536)
        assert peeked and got.startswith(peeked), (got, peeked)
        buf += got
        at = 0
        while at + 5 <= len(buf):
            kind, size = buf[at:at + 1], struct.unpack('!I', buf[at + 1:at + 5])[0]
            if at + 1 + size > len(buf):
                break
            if kind == b'E':
                raise SystemExit('server error: %r' % buf[at:at + 1 + size])
            if kind == b'Z':
                return
            at += 1 + size

params = b'user\0postgres\0database\0postgres\0application_name\0tap-msg\0\0'
body = struct.pack('!I', 196608) + params
s.sendmsg([struct.pack('!I', len(body) + 4), body])
read_until_ready(True)
s.sendmsg(message(b'Q', b'SELECT 7 AS by_recvfrom\0'))
read_until_ready(False)
s.sendmsg(message(b'Q', b'SELECT g FROM generate_series(1, 3) g\0'))
read_until_ready(True)
s.sendmsg(message(b'X', b''))
"""


class SyscallFlavoursTest(unittest.TestCase):
    """Client-side capture (a server this tap does not watch, on a port in tap.ports) of a client
    that writes with sendmsg and reads with recvmsg and recv, each read peeked first."""

    def test_sendmsg_recvmsg_and_peeked_reads(self):
        other = fx.PgCluster()
        self.addCleanup(other.close)
        other.start()
        tapper = start_agent(ports=[cluster.port, other.port])
        self.addCleanup(tapper.close)
        out = subprocess.run(['/usr/bin/python3', '-c', RAW_CLIENT, str(other.port)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        evs = wait_statements('tap-msg', 2, relay=tapper)
        time.sleep(0.5)  # nothing more arrives for the session
        evs = tapper.events('statement', lambda e: e.get('principal', {}).get(
            'application_name') == 'tap-msg')
        self.assertEqual([(e['statement']['sql'], e.get('result', {}).get('command_tag'),
                           e.get('result', {}).get('rows')) for e in evs],
                         [('SELECT $1 AS by_recvfrom', 'SELECT 1', 1),
                          ('SELECT g FROM generate_series($1, $2) g', 'SELECT 3', 3)])
        for e in evs:
            self.assertEqual(e['source'], 'tap')
            self.assertIn('python3', e['process']['exe'])
        self.assertEqual(fx.metric(tapper.api_port, 'dbwarden_tap_gaps_total'), 0)


if __name__ == '__main__':
    unittest.main()
