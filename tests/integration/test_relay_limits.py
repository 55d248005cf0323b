"""The relay under hostile load before login (issue 22): a PasswordMessage announcing 1 GiB is
refused from its header without memory growing; a client that sends nothing, half a startup
packet or half a message, and a server that accepts and never answers, are cut off at
relay.authentication_timeout with the cause named; a relay out of file descriptors backs off
instead of spinning, logs once a second at most, and accepts again once descriptors are free.
Connection limits: per source address and in all, for the relay (a connection still in startup
makes room, else FATAL 53300) and the API (an idle connection makes room: 300 idle connections
do not keep /healthz out).

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_limits.py -v
"""

import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PSQL = str(fx.PG_BIN / 'psql')
TIMEOUT_S = 1.5  # relay.authentication_timeout in this module

cluster = None
relay = None
silent = None  # a server that accepts and never answers


class SilentServer:
    """Accepts TCP connections on a loopback port and never writes a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((fx.LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except (socket.timeout, OSError):
                continue

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


def setUpModule():
    global cluster, relay, silent
    fx.require_postgres()
    fx.dbwarden_bin()
    cluster = fx.PgCluster(hba_lines=['host all pw 127.0.0.1/32 scram-sha-256',
                                      'host all all 127.0.0.1/32 trust'])
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('pw', password='secret-pw')
    silent = SilentServer()
    unittest.addModuleCleanup(silent.close)
    relay = fx.Relay([
        {'name': 'main', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'},
        {'name': 'silent', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{silent.port}'},
    ], workers=1, relay_opts={'authentication_timeout': f'{int(TIMEOUT_S * 1000)}ms'})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def startup_packet(**params):
    body = struct.pack('!I', 196608)
    for k, v in params.items():
        body += k.encode() + b'\0' + v.encode() + b'\0'
    body += b'\0'
    return struct.pack('!I', len(body) + 4) + body


def error_fields(payload):
    out = {}
    for part in payload.split(b'\0'):
        if part:
            out[part[:1].decode()] = part[1:].decode(errors='replace')
    return out


def fatal_of(raw):
    """The FATAL ErrorResponse the relay ends a connection with (None if it closed silently)."""
    msgs, _ = raw.read_until_eof()
    errors = [error_fields(p) for t, p in msgs if t == b'E']
    return errors[-1] if errors else None


def metric(name):
    return fx.metric(relay.api_port, name)


class HugeMessageBeforeLoginTest(unittest.TestCase):
    def test_a_1_gib_password_message_is_refused_from_its_header(self):
        pid = relay.proc.pid
        before = fx.rss_kib(pid)
        for _ in range(4):
            with fx.RawPg(*relay.listen('main')) as raw:
                raw.send(startup_packet(user='pw', database='postgres'))
                kind, payload = raw.read_message()
                self.assertEqual(kind, b'R')  # the server asks for SASL
                raw.send(b'p' + struct.pack('!I', 0x3FFFFFF0) + b'x' * 1000)
                started = time.monotonic()
                err = fatal_of(raw)
                self.assertLess(time.monotonic() - started, 5)
                self.assertIsNotNone(err)
                self.assertEqual(err['S'], 'FATAL')
                self.assertEqual(err['C'], '08P01')
                self.assertIn('declares', err['M'])
        grown = fx.rss_kib(pid) - before
        self.assertLess(grown, 32 * 1024, f'relay RSS grew by {grown} KiB')
        relay.wait_for(lambda e: 'declares' in (e.get('error', {}).get('message') or ''),
                       kind='protocol_violation', count=4)

    def test_passwords_and_queries_after_login_keep_their_limits(self):
        # A password login still works through the cap, and a 100 kB query after it.
        env = dict(os.environ, PGPASSWORD='secret-pw')
        host, port = relay.listen('main')
        big = 'SELECT length(' + "'" + 'x' * 100000 + "'" + ')'
        out = subprocess.run([PSQL, '-X', '-At', '-h', host, '-p', str(port), '-U', 'pw',
                              '-d', 'postgres', '-c', big], capture_output=True, text=True,
                             env=env, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), '100000')


class StartupTimeoutTest(unittest.TestCase):
    def assert_cut_off(self, raw, sqlstate, text):
        started = time.monotonic()
        err = fatal_of(raw)
        elapsed = time.monotonic() - started
        self.assertIsNotNone(err, 'the relay closed without a FATAL')
        self.assertEqual(err['C'], sqlstate)
        self.assertIn(text, err['M'])
        self.assertIn('authentication_timeout', err['M'])
        self.assertLess(elapsed, TIMEOUT_S + 10)

    def test_a_client_that_sends_nothing(self):
        before = metric('dbwarden_relay_startup_timeouts_total')
        with fx.RawPg(*relay.listen('main'), timeout=TIMEOUT_S + 10) as raw:
            self.assert_cut_off(raw, '08P01', 'client did not complete startup')
        self.assertGreater(metric('dbwarden_relay_startup_timeouts_total'), before)
        relay.wait_for(lambda e: 'did not complete startup' in
                       (e.get('error', {}).get('message') or ''), kind='protocol_violation')

    def test_half_a_startup_packet(self):
        with fx.RawPg(*relay.listen('main'), timeout=TIMEOUT_S + 10) as raw:
            raw.send(startup_packet(user='pw', database='postgres')[:9])
            self.assert_cut_off(raw, '08P01', 'client did not complete startup')

    def test_half_a_password_message(self):
        with fx.RawPg(*relay.listen('main'), timeout=TIMEOUT_S + 10) as raw:
            raw.send(startup_packet(user='pw', database='postgres'))
            self.assertEqual(raw.read_message()[0], b'R')
            raw.send(b'p' + struct.pack('!I', 100) + b'SCRAM')
            self.assert_cut_off(raw, '08P01', 'client did not complete startup')

    def test_a_server_that_never_answers(self):
        with fx.RawPg(*relay.listen('silent'), timeout=TIMEOUT_S + 10) as raw:
            raw.send(startup_packet(user='pw', database='postgres'))
            self.assert_cut_off(raw, '08006', 'did not complete the connection')
        relay.wait_for(lambda e: 'did not complete the connection' in
                       (e.get('error', {}).get('message') or ''), kind='upstream_error')

    def test_a_session_that_became_ready_is_not_cut_off(self):
        host, port = relay.listen('main')
        out = subprocess.run([PSQL, '-X', '-At', '-h', host, '-p', str(port), '-U', 'postgres',
                              '-d', 'postgres', '-c', f'SELECT pg_sleep({TIMEOUT_S * 2}), 7'],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.strip().endswith('7'))


class AcceptBackoffTest(unittest.TestCase):
    def test_out_of_descriptors_backs_off_and_recovers(self):
        pid = relay.proc.pid
        open_fds = len(os.listdir(f'/proc/{pid}/fd'))
        limit = open_fds + 8
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        held = []
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
            host, port = relay.listen('main')
            # More connections than descriptors: the kernel completes them (backlog), the relay
            # cannot accept them all.
            for _ in range(40):
                s = socket.create_connection((host, port), timeout=5)
                held.append(s)
            fx.wait_until(lambda: metric('dbwarden_relay_accept_errors_total') > 0, 10,
                          'a failed accept')
            # The API's accept loop is out of descriptors too: connections wait in its backlog.
            for _ in range(5):
                held.append(socket.create_connection((fx.LOOPBACK, relay.api_port), timeout=5))
            log_before = relay.stderr_text().count('accept failed')
            cpu_before = fx.cpu_seconds(pid)
            time.sleep(3)  # measuring a rate over a window, not waiting for an event
            cpu = fx.cpu_seconds(pid) - cpu_before
            logged = relay.stderr_text().count('accept failed') - log_before
            self.assertLess(cpu, 1.0, f'the relay used {cpu:.2f} s of CPU in 3 s: spinning')
            self.assertLessEqual(logged, 5, f'{logged} accept-failure log lines in 3 s')
        finally:
            for s in held:
                s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        # Descriptors are back: new sessions are accepted again.
        def works():
            out = subprocess.run([PSQL, '-X', '-At', '-h', host, '-p', str(port), '-U',
                                  'postgres', '-d', 'postgres', '-c', 'SELECT 42'],
                                 capture_output=True, text=True, timeout=30)
            return out.returncode == 0 and out.stdout.strip() == '42'
        fx.wait_until(works, 20, 'a session accepted after descriptors were freed')
        self.assertGreater(metric('dbwarden_api_accept_errors_total'), 0)


def read_fatal(raw):
    try:
        return fatal_of(raw)
    except (socket.timeout, OSError):
        return None


class RelayConnectionLimitTest(unittest.TestCase):
    """relay.max_connections 6, relay.max_connections_per_source 3. Sources are other loopback
    addresses (127.0.0.2, ...), so each test client appears as its own host."""

    @classmethod
    def setUpClass(cls):
        cls.relay = fx.Relay([{'name': 'main', 'env': 'test',
                               'upstream': f'{fx.LOOPBACK}:{cluster.port}'}], workers=1,
                             relay_opts={'max_connections': 6, 'max_connections_per_source': 3})
        cls.relay.start()
        cls.held = []

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def tearDown(self):
        for raw in self.held:
            raw.close()
        self.held.clear()
        fx.wait_until(lambda: self.metric('dbwarden_relay_sessions_active') == 0, 10,
                      'sessions of the test to end')

    def metric(self, name, labels=''):
        text = fx.api_request(self.relay.api_port, '/metrics')[2].decode()
        m = re.search(r'^' + re.escape(name) + (re.escape(labels) if labels else
                      r'(?:\{[^}]*\})?') + r' (\d+)', text, re.M)
        return int(m.group(1)) if m else 0

    def ready_session(self, source):
        raw = fx.RawPg(*self.relay.listen(), source=source)
        self.held.append(raw)
        self.assertEqual(raw.startup('postgres', 'postgres'), ('ready', None))
        return raw

    def idle_connection(self, source):
        raw = fx.RawPg(*self.relay.listen(), source=source)
        self.held.append(raw)
        return raw

    def test_the_limits_are_exported(self):
        self.assertEqual(self.metric('dbwarden_relay_connection_limit', '{scope="total"}'), 6)
        self.assertEqual(
            self.metric('dbwarden_relay_connection_limit', '{scope="per_source"}'), 3)

    def test_a_source_at_its_limit_is_refused_when_its_sessions_are_in_use(self):
        for _ in range(3):
            self.ready_session('127.0.0.2')
        before = self.metric('dbwarden_relay_connections_refused_total', '{limit="per_source"}')
        extra = self.idle_connection('127.0.0.2')
        extra.send(startup_packet(user='postgres', database='postgres'))
        err = read_fatal(extra)
        self.assertIsNotNone(err, 'refused without a FATAL')
        self.assertEqual(err['C'], '53300')
        self.assertIn('relay.max_connections_per_source (3)', err['M'])
        self.assertEqual(
            self.metric('dbwarden_relay_connections_refused_total', '{limit="per_source"}'),
            before + 1)
        # Another host is not affected, and the three sessions still work.
        self.assertEqual(self.ready_session('127.0.0.3').simple_query('SELECT 1')[-1][0], b'Z')
        for raw in self.held[:3]:
            rows = [p for t, p in raw.simple_query('SELECT 7') if t == b'D']
            self.assertEqual(len(rows), 1)

    def test_connections_stuck_in_startup_make_room_oldest_first(self):
        stuck = [self.idle_connection('127.0.0.4') for _ in range(3)]
        fx.wait_until(lambda: self.metric('dbwarden_relay_sessions_active') == 3, 10,
                      'three connections accepted')
        before = self.metric('dbwarden_relay_connections_evicted_total')
        fresh = self.ready_session('127.0.0.4')  # evicts stuck[0]
        err = read_fatal(stuck[0])
        self.assertIsNotNone(err)
        self.assertEqual(err['C'], '53300')
        self.assertIn('to admit a new one', err['M'])
        self.assertEqual(self.metric('dbwarden_relay_connections_evicted_total'), before + 1)
        self.assertEqual(fresh.simple_query('SELECT 1')[-1][0], b'Z')
        # The younger stuck connections are still open: the relay still answers them.
        stuck[1].send(startup_packet(user='postgres', database='postgres'))
        self.assertEqual(stuck[1].read_message()[0], b'R')
        self.relay.wait_for(lambda e: 'to admit a new one' in
                            (e.get('error', {}).get('message') or ''), kind='protocol_violation')

    def test_the_total_limit_holds_across_sources(self):
        for source in ('127.0.0.5', '127.0.0.6'):
            for _ in range(3):
                self.ready_session(source)
        before = self.metric('dbwarden_relay_connections_refused_total', '{limit="total"}')
        out = subprocess.run([PSQL, '-X', '-At', '-h', self.relay.listen()[0], '-p',
                              str(self.relay.port()), '-U', 'postgres', '-d', 'postgres', '-c',
                              'SELECT 1'], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('too many clients already', out.stderr)
        self.assertIn('relay.max_connections (6)', out.stderr)
        self.assertEqual(
            self.metric('dbwarden_relay_connections_refused_total', '{limit="total"}'),
            before + 1)
        self.held.pop().close()  # one session ends: a slot is free again
        fx.wait_until(lambda: self.metric('dbwarden_relay_sessions_active') == 5, 10,
                      'the session to end')
        out = subprocess.run([PSQL, '-X', '-At', '-h', self.relay.listen()[0], '-p',
                              str(self.relay.port()), '-U', 'postgres', '-d', 'postgres', '-c',
                              'SELECT 1'], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)


class ApiConnectionLimitTest(unittest.TestCase):
    """The API's defaults (256 in all, 64 per source): idle connections, however many, make
    room for a working one."""

    def test_300_idle_connections_do_not_keep_healthz_out(self):
        idle = []
        try:
            # 300 idle connections from five hosts (60 each, under the per-source limit): the
            # total limit evicts; then 300 more from this host: the per-source limit evicts.
            for i in range(300):
                s = socket.create_connection((fx.LOOPBACK, relay.api_port), timeout=5,
                                             source_address=(f'127.0.0.{2 + i % 5}', 0))
                idle.append(s)
            for _ in range(300):
                idle.append(socket.create_connection((fx.LOOPBACK, relay.api_port), timeout=5))
            fx.wait_until(lambda: metric('dbwarden_api_connections_evicted_total') >= 300, 20,
                          'idle API connections to be evicted')
            failures = []
            for i in range(50):
                try:
                    status, _, body = fx.api_request(relay.api_port, '/healthz', token=None)
                    if status != 200:
                        failures.append(f'{i}: {status} {body[:80]!r}')
                except OSError as exc:
                    failures.append(f'{i}: {exc}')
            self.assertEqual(failures, [])
            open_now = metric('dbwarden_api_connections')
            self.assertLessEqual(open_now, 256)
        finally:
            for s in idle:
                s.close()
        self.assertEqual(
            metric('dbwarden_api_connection_limit{scope="per_source"}'), 64)


if __name__ == '__main__':
    unittest.main()
