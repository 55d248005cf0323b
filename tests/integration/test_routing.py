"""Kernel-enforced routing (relay_only: enforce | refuse, docs/routing.md), with real clients in
cgroups this test makes, the agent's cgroup connect4/connect6 programs loaded into this kernel,
and a real PostgreSQL whose postmaster runs in a cgroup of its own, as under systemd.

  enforce:    psql (IPv4, IPv6, localhost), psycopg2, pgjdbc and pgbench pointed at the server's
              own port end up in the relay: audited with their real process and the address they
              dialled (principal.routed_from), judged (an agent's DROP is denied) and masked (the
              PII pack) exactly like clients that connected to the relay. Every way of opening the
              socket a client has — connect(), non-blocking connect(), bind() first, an IPv6
              socket to the v4-mapped address, TCP Fast Open's sendto(), the unspecified address,
              io_uring's IORING_OP_CONNECT (no connect system call at all) — is routed the same.
  refuse:     connect() fails with EPERM and a connect_refused event names the process.
  exemptions: the relay's own upstream connections, the server's own processes (a dblink from a
              backend), a standby's walreceiver in an exempt cgroup, an exempt user and an exempt
              executable (by inode: a symlink to it is exempt, a copy is not) connect directly;
              a program a backend runs (COPY ... TO PROGRAM) is routed: exec ends the exemption.
  agent exit: on_agent_exit: open detaches on SIGTERM and on SIGKILL; closed keeps direct
              access closed after SIGKILL until the agent is back (it takes the pinned links
              over) or `dbwarden routing release` runs.

Whether a connection went straight to the server is read from the server itself: for a direct
connection inet_client_port() is the client's own local port; through the relay it is the
relay's upstream socket's.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import unittest
from pathlib import Path

import pgfixture as fx

HERE = Path(__file__).resolve().parent
PROBE = HERE / 'route_probe.py'
PYTHON = '/usr/bin/python3'
PSQL = fx.PG_BIN / 'psql'  # the binary itself: /usr/bin/psql is Debian's wrapper script
JAVA_PROBE = fx.REPO_ROOT / 'tests' / 'drivers' / 'jdbc' / 'RouteProbe.java'
JDBC_JAR = Path('/usr/share/java/postgresql.jar')
PACKS = fx.REPO_ROOT / 'policy' / 'packs'
PORT_SQL = 'SELECT inet_client_port()'

top = clients = standby_cg = cluster = locked = relay = None
exempt_dir = None


def setUpModule():
    global top, clients, standby_cg, cluster, locked, relay, exempt_dir
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    top = fx.TestCgroup(f'dbwarden-route-{os.getpid()}')
    unittest.addModuleCleanup(top.close)
    server_cg = top.child('server')
    agent_cg = top.child('agent')
    clients = top.child('clients')
    standby_cg = top.child('standby')
    hba = ['host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust',
           'host replication all 127.0.0.1/32 trust']
    cluster = fx.PgCluster(cgroup=server_cg, hba_lines=hba,
                           conf={'listen_addresses': '127.0.0.1,::1', 'wal_level': 'replica',
                                 'max_wal_senders': 4})
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.psql("CREATE TABLE customers (id int PRIMARY KEY, email text); "
                 "INSERT INTO customers VALUES (1, 'alice@example.com'), (2, 'bob@example.org'); "
                 "CREATE EXTENSION dblink")
    locked = fx.PgCluster(cgroup=server_cg)
    unittest.addModuleCleanup(locked.close)
    locked.start()
    # An exempt executable: a copy of the interpreter with an inode of its own.
    exempt_dir = tempfile.mkdtemp(prefix='dbwarden-route-exe-')
    unittest.addModuleCleanup(shutil.rmtree, exempt_dir, True)
    os.chmod(exempt_dir, 0o755)
    shutil.copy2(os.path.realpath(PYTHON), os.path.join(exempt_dir, 'exempt-python'))
    os.symlink(os.path.join(exempt_dir, 'exempt-python'), os.path.join(exempt_dir, 'link-python'))
    os.mkdir(os.path.join(exempt_dir, 'other'))
    shutil.copy2(os.path.realpath(PYTHON), os.path.join(exempt_dir, 'other', 'exempt-python'))
    site = os.path.join(exempt_dir, 'site.yaml')
    Path(site).write_text('version: 1\nprincipals:\n  agents:\n    - application_name: ["ai-*"]\n'
                          'rules: []\n')
    relay = fx.Relay(
        [{'name': 'prod', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{cluster.port}',
          'relay_only': 'enforce',
          'listen_unix': os.path.join(exempt_dir, 'relay', f'.s.PGSQL.{cluster.port}')},
         {'name': 'locked', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{locked.port}',
          'relay_only': 'refuse'}],
        workers=1, cgroup=agent_cg,
        extra={'policy': {'files': [str(PACKS / 'guardrails.yaml'), str(PACKS / 'pii.yaml'),
                                    site]},
               'routing': {'cgroups': [top.rel],
                           'pin_dir': f'/sys/fs/bpf/dbwarden-test-{os.getpid()}',
                           'exempt': [{'cgroup': standby_cg.rel}, {'uid': ['nobody']},
                                      {'exe': [os.path.join(exempt_dir, 'exempt-python')]}]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def probe(variant, host, port, app, sql=PORT_SQL, *, cgroup=None, user=None, exe=PYTHON):
    """route_probe.py in `cgroup` (default: the clients'), as `user`, run by `exe`."""
    cmd = [exe, PROBE, variant, host, port, 'postgres', app, sql]
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = ['/usr/bin/setpriv', f'--reuid={pw.pw_uid}', f'--regid={pw.pw_gid}',
               '--clear-groups'] + cmd
    proc = subprocess.run((cgroup or clients).wrap(cmd), capture_output=True, text=True,
                          timeout=60, env={'PATH': '/usr/bin:/bin', 'LC_ALL': 'C.UTF-8'})
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f'probe {variant} failed: {proc.stderr}\n{relay.diag(1500)}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def is_direct(result):
    """True when the server saw the probe's own socket (no relay in between)."""
    assert result['connected'] and not result['error'], result
    return int(result['rows'][0][0]) == result['local_port']


def session_start(app, timeout=15):
    return relay.wait_for(lambda e: fx.principal(e).get('application_name') == app,
                          kind='session_start', timeout=timeout, what=f'session_start of {app}')[0]


def psql(args, app, *, cgroup=None):
    cmd = [PSQL, '-X', '-At', '-U', 'postgres', '-d', 'postgres'] + [str(a) for a in args]
    env = dict(fx.CLIENT_ENV, PGAPPNAME=app)
    if cgroup is False:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    return subprocess.run((cgroup or clients).wrap(cmd), capture_output=True, text=True,
                          timeout=60, env=env)


class EnforceTest(unittest.TestCase):
    def test_psql_at_the_server_port_is_routed_judged_and_masked(self):
        sql = 'SELECT email FROM customers ORDER BY id LIMIT 10'
        routed = psql(['-h', fx.LOOPBACK, '-p', cluster.port, '-c', sql], 'ai-route-psql')
        self.assertEqual(routed.returncode, 0, routed.stderr + relay.diag(1500))
        via_relay = psql(['-h', fx.LOOPBACK, '-p', relay.port('prod'), '-c', sql], 'ai-relay-psql')
        self.assertEqual(via_relay.returncode, 0, via_relay.stderr)
        self.assertEqual(routed.stdout, via_relay.stdout)
        self.assertNotIn('alice@example.com', routed.stdout)
        self.assertIn('example.com', routed.stdout)  # partial masking keeps the domain
        ev = session_start('ai-route-psql')
        self.assertEqual(fx.principal(ev)['routed_from'], f'{fx.LOOPBACK}:{cluster.port}')
        self.assertEqual(ev['process']['comm'], 'psql')
        self.assertEqual(ev['process']['cgroup'], clients.rel)
        self.assertNotIn('routed_from', fx.principal(session_start('ai-relay-psql')))
        # Judged: an agent's DROP in production is denied, as it is through the relay.
        drop = psql(['-h', fx.LOOPBACK, '-p', cluster.port, '-c', 'DROP TABLE customers'],
                    'ai-route-drop')
        self.assertNotEqual(drop.returncode, 0)
        self.assertIn('not allowed for AI agents in production', drop.stderr)
        self.assertEqual(cluster.query_value("SELECT count(*) FROM customers"), '2')

    def test_psql_over_ipv6_and_localhost_is_routed(self):
        for host, app in (('::1', 'ai-route-v6'), ('localhost', 'ai-route-localhost')):
            with self.subTest(host=host):
                out = psql(['-h', host, '-p', cluster.port, '-c', PORT_SQL], app)
                self.assertEqual(out.returncode, 0, out.stderr + relay.diag(1500))
                ev = session_start(app)
                self.assertIn(fx.principal(ev)['routed_from'],
                              (f'[::1]:{cluster.port}', f'{fx.LOOPBACK}:{cluster.port}'))
        self.assertEqual(fx.principal(session_start('ai-route-v6'))['routed_from'],
                         f'[::1]:{cluster.port}')

    def test_every_way_to_open_the_socket_is_routed(self):
        cases = [('plain', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}'),
                 ('nonblock', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}'),
                 ('bound', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}'),
                 ('mapped', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}'),
                 ('fastopen', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}'),
                 ('plain', '0.0.0.0', f'0.0.0.0:{cluster.port}'),
                 ('plain', '::', f'[::]:{cluster.port}'),
                 ('nonblock', '::1', f'[::1]:{cluster.port}'),
                 ('psycopg2', fx.LOOPBACK, f'{fx.LOOPBACK}:{cluster.port}')]
        for i, (variant, host, original) in enumerate(cases):
            with self.subTest(variant=variant, host=host):
                app = f'ai-route-{variant}-{i}'
                result = probe(variant, host, cluster.port, app)
                self.assertFalse(is_direct(result), f'{variant} to {host} reached the server '
                                 f'directly: {result}')
                ev = session_start(app)
                self.assertEqual(fx.principal(ev)['routed_from'], original)
                self.assertEqual(ev['process']['pid'], result['pid'])

    def test_clients_of_the_server_unix_socket_are_routed(self):
        socket_path = f'{cluster.socket_dir}/.s.PGSQL.{cluster.port}'
        sql = 'SELECT email FROM customers ORDER BY id LIMIT 1'
        out = psql(['-h', cluster.socket_dir, '-p', cluster.port, '-c', sql], 'ai-route-unix')
        self.assertEqual(out.returncode, 0, out.stderr + relay.diag(1500))
        self.assertNotIn('alice@example.com', out.stdout)
        self.assertIn('@example.com', out.stdout)
        ev = session_start('ai-route-unix')
        self.assertEqual(fx.principal(ev)['routed_from'], f'unix:{socket_path}')
        self.assertEqual(fx.principal(ev)['client_addr'], '[local]')
        self.assertEqual(ev['process']['comm'], 'psql')
        self.assertEqual(ev['process']['cgroup'], clients.rel)
        drop = psql(['-h', cluster.socket_dir, '-p', cluster.port, '-c', 'DROP TABLE customers'],
                    'ai-route-unix-drop')
        self.assertIn('not allowed for AI agents in production', drop.stderr)
        result = probe('psycopg2', cluster.socket_dir, cluster.port, 'ai-route-unix-pg2',
                       'SELECT pg_backend_pid()')
        self.assertTrue(result['connected'] and not result['error'], result)
        ev = session_start('ai-route-unix-pg2')
        self.assertEqual(fx.principal(ev)['routed_from'], f'unix:{socket_path}')
        self.assertEqual(ev['process']['pid'], result['pid'])

    def test_io_uring_connect_is_routed_and_refused(self):
        # IORING_OP_CONNECT makes no connect system call (syscall tracepoints never see it): the
        # cgroup hook runs inside the kernel's connect, wherever it was asked for.
        exe = os.path.join(exempt_dir, 'uring_connect')
        fx.run(['cc', '-O0', '-Wall', '-o', exe, HERE / 'uring_connect.c'])

        def uring(cgroup, port):
            out = subprocess.run(cgroup.wrap([exe, fx.LOOPBACK, port]), capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            return json.loads(out.stdout)

        routed = uring(clients, cluster.port)
        self.assertEqual(routed['res'], 0, routed)
        self.assertEqual(routed['peer_port'], relay.port('prod'))  # the kernel rewrote it
        refused = uring(clients, locked.port)
        self.assertEqual(refused['res'], -1, refused)  # -EPERM
        # The same program from a cgroup without the programs reaches the server itself.
        outside = fx.TestCgroup(f'dbwarden-route-outside-{os.getpid()}')
        self.addCleanup(outside.close)
        self.assertEqual(uring(outside, cluster.port)['peer_port'], cluster.port)

    def test_jdbc_is_routed_judged_and_masked(self):
        java = shutil.which('java', path='/usr/bin:/bin:/usr/lib/jvm/default-java/bin')
        if not java or not JDBC_JAR.exists():
            raise fx.PrerequisiteError('java and libpostgresql-jdbc-java are needed')
        proc = subprocess.run(clients.wrap([java, '-cp', JDBC_JAR, JAVA_PROBE, fx.LOOPBACK,
                                            cluster.port, 'postgres', 'ai-route-jdbc']),
                              capture_output=True, text=True, timeout=180,
                              env={'PATH': '/usr/bin:/bin', 'HOME': '/tmp', 'LC_ALL': 'C.UTF-8'})
        self.assertEqual(proc.returncode, 0, proc.stderr + relay.diag(1500))
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertNotEqual(out['email'], 'alice@example.com')
        self.assertTrue(out['email'].endswith('@example.com'), out)
        self.assertEqual(out['drop_sqlstate'], '42501')
        # pgjdbc sets application_name after its startup: the session is found by its process.
        ev = relay.wait_for(lambda e: e.get('process', {}).get('comm') == 'java',
                            kind='session_start')[0]
        self.assertEqual(fx.principal(ev)['routed_from'], f'{fx.LOOPBACK}:{cluster.port}')
        denied = relay.wait_for(lambda e: e['session_id'] == ev['session_id']
                                and 'DROP' in e['statement']['commands'], kind='statement')[0]
        self.assertEqual(fx.principal(denied)['application_name'], 'ai-route-jdbc')
        self.assertEqual(denied['decision']['action'], 'deny')
        self.assertEqual(cluster.query_value("SELECT count(*) FROM customers"), '2')

    def test_pgbench_sessions_are_all_routed(self):
        script = os.path.join(exempt_dir, 'bench.sql')
        Path(script).write_text('SELECT 1;\n')
        proc = subprocess.run(clients.wrap(
            [fx.PG_BIN / 'pgbench', '-n', '-h', fx.LOOPBACK, '-p', cluster.port, '-U', 'postgres',
             '-c', '4', '-t', '25', '-f', script, 'postgres']),
            capture_output=True, text=True, timeout=120,
            env=dict(fx.CLIENT_ENV, PGAPPNAME='ai-route-pgbench'))
        self.assertEqual(proc.returncode, 0, proc.stderr + relay.diag(1500))
        starts = relay.wait_for(
            lambda e: fx.principal(e).get('application_name') == 'ai-route-pgbench',
            kind='session_start', count=4)
        self.assertTrue(all(fx.principal(e)['routed_from'] == f'{fx.LOOPBACK}:{cluster.port}'
                            for e in starts))
        statements = relay.wait_for(
            lambda e: fx.principal(e).get('application_name') == 'ai-route-pgbench'
            and e['statement']['commands'] == ['SELECT'], kind='statement', count=100)
        self.assertEqual(len(statements), 100)


class RefuseTest(unittest.TestCase):
    def test_connect_fails_with_eperm_and_is_audited(self):
        result = probe('plain', fx.LOOPBACK, locked.port, 'ai-refused')
        self.assertFalse(result['connected'], result)
        self.assertEqual(result['errno'], 'EPERM')
        ev = relay.wait_for(lambda e: e['process']['pid'] == result['pid'],
                            kind='connect_refused')[0]
        self.assertEqual(ev['target'], 'locked')
        self.assertEqual(ev['source'], 'route')
        self.assertEqual(ev['process']['cgroup'], clients.rel)
        self.assertIn(f'{fx.LOOPBACK}:{locked.port}', ev['detail'])
        out = psql(['-h', fx.LOOPBACK, '-p', locked.port, '-c', 'SELECT 1'], 'ai-refused-psql')
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('Operation not permitted', out.stderr)
        out = psql(['-h', locked.socket_dir, '-p', locked.port, '-c', 'SELECT 1'],
                   'ai-refused-unix')
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('Operation not permitted', out.stderr)
        ev = relay.wait_for(lambda e: f'unix:{locked.socket_dir}/.s.PGSQL.{locked.port}'
                            in e['detail'], kind='connect_refused')[0]
        self.assertEqual(ev['process']['comm'], 'psql')
        for variant, host in (('mapped', fx.LOOPBACK), ('fastopen', fx.LOOPBACK),
                              ('plain', '0.0.0.0')):
            with self.subTest(variant=variant, host=host):
                r = probe(variant, host, locked.port, 'ai-refused-' + variant)
                self.assertFalse(r['connected'] and not r['error'], r)
                self.assertIn(r['errno'], ('EPERM', None), r)


class RoutingMetricsTest(unittest.TestCase):
    def test_routing_metrics_follow_the_conventions(self):
        """Routing's families, checked as test_metrics_format checks the rest."""
        probe('plain', fx.LOOPBACK, locked.port, 'ai-refused-metrics')
        fx.wait_until(lambda: fx.metric(relay.api_port,
                                        'dbwarden_routing_connects_total{result="refused"}'),
                      20, 'a refused connect in the metrics')
        text = fx.api_request(relay.api_port, '/metrics')[2].decode()
        self.assertIn('# TYPE dbwarden_routing_connects_total counter', text)
        self.assertEqual(fx.metric_convention_problems(text), [])


class ExemptTest(unittest.TestCase):
    def test_exempt_cgroup_user_and_executable_connect_directly(self):
        self.assertFalse(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-not-exempt')))
        self.assertTrue(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-exempt-cgroup',
                                        cgroup=standby_cg)))
        self.assertTrue(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-exempt-uid',
                                        user='nobody')))
        exe = os.path.join(exempt_dir, 'exempt-python')
        self.assertTrue(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-exempt-exe',
                                        exe=exe)))
        # The same inode under another name is the same program; another file of the same
        # name is not.
        self.assertTrue(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-exempt-link',
                                        exe=os.path.join(exempt_dir, 'link-python'))))
        self.assertFalse(is_direct(probe('plain', fx.LOOPBACK, cluster.port, 'ai-exempt-copy',
                                         exe=os.path.join(exempt_dir, 'other',
                                                          'exempt-python'))))

    def test_server_processes_connect_directly(self):
        # A backend (forked by the postmaster after the agent started) connects with dblink.
        value = cluster.query_value(
            f"SELECT x FROM dblink('host={fx.LOOPBACK} port={cluster.port} dbname=postgres "
            f"user=postgres application_name=ai-dblink', 'SELECT 7') AS t(x int)")
        self.assertEqual(value, '7')
        # Not through the relay: a later routed session is in the log, the dblink one is not.
        probe('plain', fx.LOOPBACK, cluster.port, 'ai-after-dblink')
        session_start('ai-after-dblink')
        self.assertEqual(relay.events(kind='session_start', predicate=lambda e: fx.principal(
            e).get('application_name') == 'ai-dblink'), [])

    def test_a_program_a_backend_runs_is_not_exempt(self):
        # COPY ... TO PROGRAM: a superuser's way to make the server run a client. Its shell is
        # a child of an exempt backend, but it exec()s: the exemption ends there.
        out = os.path.join(exempt_dir, 'copy-program.json')
        Path(out).touch()
        os.chmod(out, 0o666)
        cluster.psql(f"COPY (SELECT 1) TO PROGRAM '{PYTHON} {PROBE} plain {fx.LOOPBACK} "
                     f"{cluster.port} postgres ai-copy-program \"{PORT_SQL}\" > {out}'")
        result = json.loads(Path(out).read_text())
        self.assertFalse(is_direct(result), result)
        ev = session_start('ai-copy-program')
        self.assertEqual(fx.principal(ev)['routed_from'], f'{fx.LOOPBACK}:{cluster.port}')
        self.assertEqual(ev['process']['pid'], result['pid'])

    def test_standby_in_an_exempt_cgroup_replicates_directly(self):
        root = tempfile.mkdtemp(prefix='dbwarden-standby-')
        self.addCleanup(shutil.rmtree, root, True)
        os.chmod(root, 0o755)
        pw = pwd.getpwnam('postgres')
        os.chown(root, pw.pw_uid, pw.pw_gid)
        data = os.path.join(root, 'data')
        port = fx.free_port()
        as_pg = ['runuser', '-u', 'postgres', '--']
        fx.run(standby_cg.wrap(as_pg + [fx.PG_BIN / 'pg_basebackup', '-D', data, '-R', '-X',
                                        'stream', '-h', fx.LOOPBACK, '-p', cluster.port, '-U',
                                        'postgres']), timeout=120)
        with open(os.path.join(data, 'postgresql.auto.conf'), 'a') as f:
            f.write(f"port = {port}\nunix_socket_directories = '{root}'\n"
                    f"listen_addresses = '{fx.LOOPBACK}'\n")
        pg_ctl = [fx.PG_BIN / 'pg_ctl', '-D', data, '-w', '-t', '60', '-l',
                  os.path.join(root, 'log')]
        fx.run(standby_cg.wrap(as_pg + pg_ctl + ['start']), timeout=90)
        self.addCleanup(fx.run, as_pg + [fx.PG_BIN / 'pg_ctl', '-D', data, 'stop', '-m',
                                         'immediate'], check=False)
        fx.wait_until(lambda: cluster.query_value(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == '1', 60,
            'the standby to stream')
        self.assertEqual(relay.events(kind='session_start', predicate=lambda e: fx.principal(
            e).get('application_name') in ('walreceiver', 'pg_basebackup')), [])


class AgentExitTest(unittest.TestCase):
    """Agents of their own, attached to a cgroup of their own, in front of a cluster of its own:
    the module's agent does not route these clients."""

    @classmethod
    def setUpClass(cls):
        cls.top = fx.TestCgroup(f'dbwarden-route-exit-{os.getpid()}')
        cls.addClassCleanup(cls.top.close)
        cls.clients = cls.top.child('clients')
        cls.agent_cg = cls.top.child('agent')
        cls.cluster = fx.PgCluster(cgroup=cls.top.child('server'))
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.start()

    def agent(self, on_exit, pin_dir):
        r = fx.Relay([{'name': 'x', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{self.cluster.port}',
                       'relay_only': 'enforce'}], workers=1, cgroup=self.agent_cg,
                     extra={'routing': {'cgroups': [self.top.rel], 'on_agent_exit': on_exit,
                                        'pin_dir': pin_dir}})
        self.addCleanup(r.close)
        return r.start()

    def direct(self, app):
        return is_direct(probe('plain', fx.LOOPBACK, self.cluster.port, app,
                               cgroup=self.clients))

    def test_open_detaches_on_stop_and_on_sigkill(self):
        pin_dir = f'/sys/fs/bpf/dbwarden-test-open-{os.getpid()}'
        r = self.agent('open', pin_dir)
        self.assertFalse(self.direct('open-1'))
        r.stop()
        self.assertTrue(self.direct('open-2'))
        r.start()
        self.assertFalse(self.direct('open-3'))
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait(10)
        self.assertTrue(self.direct('open-4'))
        self.assertFalse(os.path.exists(pin_dir))

    def test_closed_keeps_direct_access_closed_until_released(self):
        pin_dir = f'/sys/fs/bpf/dbwarden-test-closed-{os.getpid()}'
        self.addCleanup(subprocess.run, [fx.dbwarden_bin(), 'routing', 'release', '--pin-dir',
                                         pin_dir], capture_output=True)
        r = self.agent('closed', pin_dir)
        self.assertFalse(self.direct('closed-1'))
        pins = sorted(os.listdir(pin_dir))
        self.assertTrue(pins)
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait(10)
        down = probe('plain', fx.LOOPBACK, self.cluster.port, 'closed-2', cgroup=self.clients)
        self.assertFalse(down['connected'], down)  # sent to the relay's port, where nothing is
        self.assertEqual(down['errno'], 'ECONNREFUSED')
        # Back: the new agent takes the pinned links over (no window without them).
        r.start()
        self.assertFalse(self.direct('closed-3'))
        ev = r.wait_for(lambda e: fx.principal(e).get('application_name') == 'closed-3',
                        kind='session_start')[0]
        self.assertEqual(fx.principal(ev)['routed_from'], f'{fx.LOOPBACK}:{self.cluster.port}')
        self.assertEqual(sorted(os.listdir(pin_dir)), pins)
        self.assertIn('replaced', r.stderr_text())
        r.stop()
        down = probe('plain', fx.LOOPBACK, self.cluster.port, 'closed-4', cgroup=self.clients)
        self.assertEqual(down['errno'], 'ECONNREFUSED')
        released = subprocess.run([fx.dbwarden_bin(), 'routing', 'release', '--pin-dir', pin_dir],
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual(released.returncode, 0, released.stderr)
        self.assertIn(f'released {len(pins)} pinned', released.stdout)
        self.assertTrue(self.direct('closed-5'))


if __name__ == '__main__':
    unittest.main()
