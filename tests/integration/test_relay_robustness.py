"""The dbwarden relay under stress and failure: 300 concurrent sessions, clients killed mid-query,
upstream restarts, malformed bytes from the client and from the server, a client that stops
reading a 1 GB result (relay memory stays flat), an unreachable upstream, SIGTERM with open sessions, and
an audit log that cannot commit (its file system full): statements are refused, not run.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_robustness.py -v
"""

import os
import re
import signal
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

cluster = None
relay = None
dead_port = None


def setUpModule():
    global cluster, relay, dead_port
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    # client_connection_check_interval lets a backend notice a closed client socket while it runs
    # a query (PostgreSQL >= 14); without it, even a direct client killed during pg_sleep(60)
    # leaves its backend running for the full minute. With it, the relay must close (or cancel)
    # the upstream leg when its client goes away.
    cluster = fx.PgCluster(conf={'client_connection_check_interval': '500ms'})
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    dead_port = fx.free_port()  # nothing listens here
    relay = fx.Relay([
        {'name': 'main', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'},
        {'name': 'dead', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{dead_port}'},
    ], workers=2)
    unittest.addModuleCleanup(relay.close)
    relay.start()


def tearDownModule():
    if relay is not None and relay.running():
        relay.stop()


def connect(port=None, appname='robustness-it', **kw):
    import psycopg2
    conn = psycopg2.connect(host=fx.LOOPBACK, port=port or relay.port('main'), user='app',
                            dbname='appdb', application_name=appname, connect_timeout=10, **kw)
    conn.autocommit = True
    return conn


def call_with_timeout(fn, timeout):
    """Runs fn() in a daemon thread. Returns ('ok', value), ('raised', exc) or ('hung', None)."""
    box = {}

    def target():
        try:
            box['r'] = ('ok', fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box['r'] = ('raised', exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    return box.get('r', ('hung', None))


def assert_new_session_works(test, timeout=20):
    def probe():
        conn = connect(appname='probe-after')
        try:
            cur = conn.cursor()
            cur.execute('SELECT 40 + 2')
            return cur.fetchone()[0] == 42
        finally:
            conn.close()
    try:
        fx.wait_until(probe, timeout, 'a new session through the relay to work')
    except TimeoutError as exc:
        test.fail(f'{exc}\n{relay.diag()}')


def session_ids_for(appname, rel=None):
    rel = rel or relay
    return {e['session_id'] for e in rel.events('session_start')
            if fx.principal(e).get('application_name') == appname}


class ConcurrencyTest(unittest.TestCase):
    N = 300

    def test_300_concurrent_sessions(self):
        n = self.N
        barrier = threading.Barrier(n + 1, timeout=120)
        errors, pids, conns = [], {}, []
        lock = threading.Lock()

        def worker(i):
            conn = None
            try:
                conn = connect(appname='conc300')
                with lock:
                    conns.append(conn)
                barrier.wait()  # all n sessions are open
                cur = conn.cursor()
                cur.execute('SELECT pg_backend_pid(), %s', (i,))
                pid, echoed = cur.fetchone()
                if echoed != i:
                    raise AssertionError(f'session {i} got the result of session {echoed}')
                with lock:
                    pids[i] = pid
                barrier.wait()  # every session has its own answer, all still open
                barrier.wait()  # the main thread has counted the backends
            except threading.BrokenBarrierError:
                pass
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                with lock:
                    errors.append((i, repr(exc)))
                barrier.abort()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            barrier.wait()
            barrier.wait()
            open_backends = cluster.backend_pids("application_name = 'conc300'")
            barrier.wait()
        except threading.BrokenBarrierError:
            open_backends = None
        for t in threads:
            t.join(60)
        for c in conns:
            c.close()
        self.assertEqual(errors[:5], [], f'{len(errors)} sessions failed, first ones shown\n'
                                         f'{relay.diag()}')
        self.assertIsNotNone(open_backends, 'the sessions never were all open at once')
        self.assertEqual(len(pids), n)
        self.assertEqual(len(set(pids.values())), n, 'each session has its own backend')
        self.assertEqual(sorted(open_backends), sorted(pids.values()))


class ClientKilledTest(unittest.TestCase):
    """psql running pg_sleep(60) is SIGKILLed; the relay must drop the upstream leg."""

    @classmethod
    def setUpClass(cls):
        env = dict(fx.CLIENT_ENV, PGAPPNAME='killed-client')
        cls.proc = subprocess.Popen(
            [PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(relay.port('main')), '-U', 'app',
             '-d', 'appdb', '-c', 'SELECT pg_sleep(60)'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=env)
        cls.addClassCleanup(lambda: cls.proc.poll() is None and cls.proc.kill())
        cls.backend = fx.wait_until(
            lambda: cluster.backend_pids("application_name = 'killed-client' AND state = "
                                         "'active' AND query = 'SELECT pg_sleep(60)'"),
            15, 'the pg_sleep(60) backend')[0]
        cls.proc.send_signal(signal.SIGKILL)
        cls.proc.wait(10)
        cls.killed_at = time.monotonic()

    def test_upstream_backend_goes_away(self):
        try:
            fx.wait_until(lambda: self.backend not in cluster.backend_pids('true'), 10,
                          f'backend {self.backend} to leave pg_stat_activity')
        except TimeoutError as exc:
            self.fail(f'{exc}: the relay kept the upstream connection of a dead client\n'
                      f'{relay.diag()}')

    def test_session_end_written(self):
        starts = relay.wait_for(
            lambda e: fx.principal(e).get('application_name') == 'killed-client',
            kind='session_start', what='session_start of the killed client')
        ids = {e['session_id'] for e in starts}
        relay.wait_for(lambda e: e['session_id'] in ids, kind='session_end', timeout=15,
                       what='session_end for the killed client')

    def test_new_sessions_work(self):
        assert_new_session_works(self)


def upstream_errors():
    text = fx.api_request(relay.api_port, '/metrics')[2].decode()
    m = re.search(r'^dbwarden_relay_upstream_errors_total (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


class UpstreamRestartTest(unittest.TestCase):

    def test_open_session_fails_cleanly_and_new_sessions_work(self):
        import psycopg2
        conn = connect(appname='restart-victim')
        self.addCleanup(conn.close)
        cur = conn.cursor()
        cur.execute('SELECT 1')
        self.assertEqual(cur.fetchone(), (1,))
        errors_before = upstream_errors()
        cluster.restart('fast')
        status, value = call_with_timeout(lambda: cur.execute('SELECT 1'), 20)
        self.assertNotEqual(status, 'hung', 'the next query after an upstream restart hung for '
                                            f'20s\n{relay.diag()}')
        self.assertEqual(status, 'raised', 'the query succeeded on a connection whose upstream '
                                           'backend was terminated')
        self.assertIsInstance(value, psycopg2.OperationalError, repr(value))
        # The dropped upstream session is counted as an upstream error.
        fx.wait_until(lambda: upstream_errors() > errors_before, 10,
                      'dbwarden_relay_upstream_errors_total to count the dropped session')
        assert_new_session_works(self)


class MalformedBytesTest(unittest.TestCase):
    """Garbage after a good startup ends that session with FATAL 08P01; others carry on."""

    @classmethod
    def setUpClass(cls):
        cls.healthy = connect(appname='healthy-neighbour')
        cls.addClassCleanup(cls.healthy.close)
        cur = cls.healthy.cursor()
        cur.execute('SELECT pg_backend_pid()')
        cls.healthy_pid = cur.fetchone()[0]

    def garbage_session(self, appname, garbage):
        with fx.RawPg(fx.LOOPBACK, relay.port('main'), timeout=10) as raw:
            status, fields = raw.startup('app', 'appdb', application_name=appname)
            self.assertEqual(status, 'ready', f'startup failed: {fields}\n{relay.diag()}')
            raw.send(garbage)
            try:
                messages, how = raw.read_until_eof()
            except socket.timeout:
                self.fail('the relay neither answered the malformed frame nor closed the '
                          f'connection within 10s; got {raw.messages[-3:]}\n{relay.diag()}')
        errors = [fx.error_fields(p) for t, p in messages if t == b'E']
        self.assertTrue(errors, f'no ErrorResponse before close ({how}); got {messages}')
        err = errors[-1]
        self.assertEqual(err.get('S'), 'FATAL', err)
        self.assertEqual(err.get('C'), '08P01', err)
        self.assertEqual(messages[-1][0], b'E', f'ErrorResponse must be the last message: '
                                                f'{messages}')
        return err

    def assert_violation_audited(self, appname):
        ids = session_ids_for(appname)
        relay.wait_for(
            lambda e: (e.get('error') or {}).get('sqlstate') == '08P01'
            and (e['session_id'] in ids or fx.principal(e).get('application_name') == appname),
            kind='protocol_violation', what=f'protocol_violation for {appname}')

    def assert_healthy_neighbour(self):
        cur = self.healthy.cursor()
        cur.execute('SELECT pg_backend_pid(), 1 + 1')
        self.assertEqual(cur.fetchone(), (self.healthy_pid, 2))

    def test_query_frame_with_length_2(self):
        self.garbage_session('garbage-q-len2', b'Q' + struct.pack('!I', 2))
        self.assert_violation_audited('garbage-q-len2')
        self.assert_healthy_neighbour()

    def test_unknown_frame_type(self):
        self.garbage_session('garbage-type-01',
                             b'\x01' + struct.pack('!I', 8) + b'\xde\xad\xbe\xef')
        self.assert_violation_audited('garbage-type-01')
        self.assert_healthy_neighbour()

    def test_oversized_declared_length(self):
        # A 2 GiB Query must be refused from its header, not buffered (PostgreSQL itself caps
        # messages at 1 GiB).
        self.garbage_session('garbage-huge', b'Q' + struct.pack('!I', 0x7fffffff) + b'SELECT')
        self.assert_violation_audited('garbage-huge')
        self.assert_healthy_neighbour()


class UpstreamUnreachableTest(unittest.TestCase):

    def test_psql_fails_fast_with_message(self):
        t0 = time.monotonic()
        out = subprocess.run(
            [PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(relay.port('dead')), '-U', 'app',
             '-d', 'appdb', '-c', 'SELECT 1'],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            env=dict(fx.CLIENT_ENV, PGAPPNAME='dead-psql'))
        elapsed = time.monotonic() - t0
        self.assertNotEqual(out.returncode, 0)
        self.assertLess(elapsed, 10, 'psql waited too long for an unreachable upstream')
        self.assertIn('FATAL', out.stderr, f'psql did not get an ErrorResponse from the relay: '
                                           f'{out.stderr!r}\n{relay.diag()}')

    def test_raw_client_gets_08006(self):
        with fx.RawPg(fx.LOOPBACK, relay.port('dead'), timeout=10) as raw:
            try:
                status, fields = raw.startup('app', 'appdb', application_name='dead-raw')
            except socket.timeout:
                self.fail(f'no answer within 10s for an unreachable upstream\n{relay.diag()}')
            self.assertEqual(status, 'error', f'expected an ErrorResponse, got {status} '
                                              f'{raw.messages}')
            self.assertEqual(fields.get('S'), 'FATAL', fields)
            self.assertEqual(fields.get('C'), '08006', fields)
            self.assertTrue(fields.get('M'), 'the error has a message')
            self.assertIsNone(raw.read_message(), 'the relay closes after the FATAL')

    def test_upstream_error_audited(self):
        with fx.RawPg(fx.LOOPBACK, relay.port('dead'), timeout=10) as raw:
            raw.startup('app', 'appdb', application_name='dead-audit')
        relay.wait_for(lambda e: e.get('target') == 'dead', kind='upstream_error',
                       what='upstream_error event for target dead')


class ShutdownTest(unittest.TestCase):

    def test_sigterm_with_idle_session_exits_within_grace(self):
        import psycopg2
        grace = 2.0
        own = fx.Relay([{'name': 'main', 'env': 'test',
                         'upstream': f'{fx.LOOPBACK}:{cluster.port}'}], shutdown_grace='2s')
        self.addCleanup(own.close)
        own.start()
        conn = connect(port=own.port(), appname='idle-at-shutdown')
        self.addCleanup(conn.close)
        conn.cursor().execute('SELECT 1')
        elapsed = own.stop(timeout=grace + 10)  # asserts exit code 0
        self.assertLess(elapsed, grace + 3.0, f'took {elapsed:.1f}s to exit')
        status, value = call_with_timeout(lambda: conn.cursor().execute('SELECT 1'), 10)
        self.assertEqual(status, 'raised', f'idle session survived shutdown: {status} {value!r}')
        self.assertIsInstance(value, psycopg2.OperationalError)
        kinds = [e['kind'] for e in own.events()]
        self.assertEqual(kinds[:1], ['agent_start'], kinds)
        self.assertEqual(kinds[-1:], ['agent_stop'], kinds)
        ids = session_ids_for('idle-at-shutdown', own)
        self.assertTrue(ids and all(any(e['session_id'] == i for e in own.events('session_end'))
                                    for i in ids), 'the drained session has a session_end')

    def test_sigterm_without_sessions_exits_promptly(self):
        own = fx.Relay([{'name': 'main', 'env': 'test',
                         'upstream': f'{fx.LOOPBACK}:{cluster.port}'}], shutdown_grace='30s')
        self.addCleanup(own.close)
        own.start()
        elapsed = own.stop(timeout=40)
        self.assertLess(elapsed, 5.0, 'no sessions: SIGTERM should not wait out the grace')


class BackpressureTest(unittest.TestCase):
    def test_client_that_stops_reading_does_not_grow_the_relay(self):
        # A result of ~1 GB for a client that reads nothing: the relay stops reading the server
        # once the client's socket is full, so its memory stays flat (no buffering of the result).
        def rss_kib():
            with open(f'/proc/{relay.proc.pid}/status') as f:
                return int(next(l for l in f if l.startswith('VmRSS:')).split()[1])

        before = rss_kib()
        with fx.RawPg(fx.LOOPBACK, relay.port('main'), timeout=10) as raw:
            status, fields = raw.startup('app', 'appdb', application_name='slow-reader')
            self.assertEqual(status, 'ready', fields)
            sql = b"SELECT g, repeat('x', 1000) FROM generate_series(1, 1000000) g\x00"
            raw.send(b'Q' + struct.pack('!I', len(sql) + 4) + sql)
            peak = before
            for _ in range(30):
                time.sleep(0.1)
                peak = max(peak, rss_kib())
            # The server is still producing: the session is blocked, not finished.
            busy = cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'slow-reader' AND state = 'active'")
            self.assertEqual(busy, '1')
        self.assertLess(peak - before, 64 * 1024,
                        f'relay RSS grew by {(peak - before) // 1024} MiB for a client that '
                        'reads nothing')


class UpstreamGarbageTest(unittest.TestCase):
    """Malformed bytes from the server side end that session with FATAL 08P01 to the client and
    a protocol_violation event, as they do from the client side."""

    def test_invalid_message_from_upstream(self):
        listener = socket.create_server((fx.LOOPBACK, 0))
        self.addCleanup(listener.close)
        listener.settimeout(20)

        def recv_exact(conn, n):
            data = b''
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        def msg(kind, body):
            return kind + struct.pack('!I', len(body) + 4) + body

        def fake_server():
            # A server that completes startup (trust), then answers the first query with a
            # RowDescription whose length field is 2 (shorter than the length field itself).
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                n = struct.unpack('!I', recv_exact(conn, 4))[0]
                recv_exact(conn, n - 4)
                conn.sendall(msg(b'R', struct.pack('!I', 0)) +
                             msg(b'S', b'server_version\x0015.0\x00') +
                             msg(b'K', struct.pack('!II', 4242, 1)) + msg(b'Z', b'I'))
                recv_exact(conn, 1)
                n = struct.unpack('!I', recv_exact(conn, 4))[0]
                recv_exact(conn, n - 4)
                conn.sendall(b'T' + struct.pack('!I', 2))
                time.sleep(5)

        server = threading.Thread(target=fake_server, daemon=True)
        server.start()
        own = fx.Relay([{'name': 'fake', 'env': 'test',
                         'upstream': f'{fx.LOOPBACK}:{listener.getsockname()[1]}'}])
        self.addCleanup(own.close)
        own.start()
        with fx.RawPg(fx.LOOPBACK, own.port(), timeout=10) as raw:
            status, fields = raw.startup('app', 'appdb', application_name='upstream-garbage')
            self.assertEqual(status, 'ready', f'{fields}\n{own.diag()}')
            raw.send(msg(b'Q', b'SELECT 1\x00'))
            messages, how = raw.read_until_eof()
        errors = [fx.error_fields(p) for t, p in messages if t == b'E']
        self.assertTrue(errors, f'no ErrorResponse before close ({how}); got {messages}')
        self.assertEqual(errors[-1].get('S'), 'FATAL', errors[-1])
        self.assertEqual(errors[-1].get('C'), '08P01', errors[-1])
        self.assertIn('invalid message from upstream server', errors[-1].get('M', ''))
        self.assertFalse([m for m in messages if m[0] == b'T'], 'the malformed frame was relayed')
        own.wait_for(lambda e: (e.get('error') or {}).get('sqlstate') == '08P01',
                     kind='protocol_violation', what='protocol_violation from upstream')


class AuditFailureTest(unittest.TestCase):
    def test_full_audit_file_system_refuses_statements_then_recovers(self):
        # audit_before_forward (the prod default): a statement whose decision cannot be written
        # to the audit log is not forwarded. The state directory is a tmpfs, filled until less
        # than the store's reserve (256 MiB) is free, then emptied again.
        if os.geteuid() != 0:
            self.skipTest('mounting a tmpfs needs root')
        own = fx.Relay([{'name': 'prod', 'env': 'prod',
                         'upstream': f'{fx.LOOPBACK}:{cluster.port}'}])
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=400m', 'tmpfs', own.state_dir],
                       check=True)
        self.addCleanup(subprocess.run, ['umount', '-l', own.state_dir], check=False)
        self.addCleanup(own.close)
        own.start()
        cluster.psql('CREATE TABLE IF NOT EXISTS audit_full (v int)', dbname='appdb', user='app')

        def through_relay(sql):
            return subprocess.run([PSQL, '-X', '-v', 'VERBOSITY=verbose', '-h', fx.LOOPBACK,
                                   '-p', str(own.port()), '-U', 'app', '-d', 'appdb', '-c', sql],
                                  capture_output=True, text=True, env=fx.CLIENT_ENV, timeout=60)

        def metric(name):
            text = fx.api_request(own.api_port, '/metrics')[2].decode()
            m = re.search(rf'^{name} (\d+)$', text, re.M)
            self.assertTrue(m, f'{name} missing')
            return int(m.group(1))

        ok = through_relay('INSERT INTO audit_full VALUES (1)')
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(metric('dbwarden_audit_store_write_stopped'), 0)
        filler = os.path.join(own.state_dir, 'filler')

        def fill():
            with open(filler, 'wb') as f:
                while os.statvfs(own.state_dir).f_bavail * os.statvfs(own.state_dir).f_frsize > (
                        128 << 20):
                    f.write(bytes(1 << 20))
                    f.flush()
            time.sleep(0.3)  # past the store's free-space check interval (100 ms)

        fill()
        refused = through_relay('INSERT INTO audit_full VALUES (42)')
        self.assertNotEqual(refused.returncode, 0, refused.stdout + own.diag())
        self.assertIn('58000', refused.stderr)
        self.assertIn('audit log cannot record this statement', refused.stderr)
        self.assertEqual(cluster.psql('SELECT count(*) FROM audit_full WHERE v = 42',
                                      dbname='appdb', user='app'), '0',
                         'the refused INSERT reached the server')
        self.assertGreater(metric('dbwarden_audit_refusals_total'), 0)
        self.assertEqual(metric('dbwarden_audit_store_write_stopped'), 1)
        self.assertIn('MiB free under', own.stderr_text())
        status, _, body = fx.api_request(own.api_port, '/readyz', token=None)
        self.assertEqual(status, 503, body)
        self.assertIn(b'MiB free under', body)

        os.unlink(filler)
        # Ready again as soon as space is back, before anything is written.
        status, _, body = fx.api_request(own.api_port, '/readyz', token=None)
        self.assertEqual(status, 200, body)
        again = through_relay('INSERT INTO audit_full VALUES (43)')
        self.assertEqual(again.returncode, 0, again.stderr + own.diag())
        self.assertEqual(metric('dbwarden_audit_store_write_stopped'), 0)
        self.assertEqual(cluster.psql('SELECT count(*) FROM audit_full WHERE v = 43',
                                      dbname='appdb', user='app'), '1')
        # The refusal itself could not be recorded; everything around it was, chain intact.
        self.assertTrue(own.events('statement', lambda e: e.get('statement', {}).get('sql') ==
                                   'INSERT INTO audit_full VALUES ($1)'))
        # What could not be written while the disk was full is reported with its real cause.
        losses = own.wait_for(lambda e: 'could not write' in (e.get('detail') or ''),
                              kind='audit_loss', what='audit_loss naming the full disk')
        self.assertIn('MiB free under', losses[0]['detail'])
        self.assertFalse(own.events('audit_loss', lambda e: 'queue full' in (e.get('detail') or '')))

        # SIGTERM while the disk is full again: the agent exits (it does not wait forever for
        # writes that cannot happen) and says in its log what it could not write.
        fill()
        through_relay('SELECT 1')  # session events that cannot be written
        took = own.stop(timeout=20)
        self.assertLess(took, 20)
        self.assertIn('could not be written', own.stderr_text())


if __name__ == '__main__':
    unittest.main()
