"""Real clients (psql, pgbench, psycopg2, libpq binary results) through the dbwarden relay give the
same results as a direct connection, and the relay audits what they did.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_clients.py -v
"""

import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PSQL = str(fx.PG_BIN / 'psql')
PGBENCH = str(fx.PG_BIN / 'pgbench')
HERE = Path(__file__).resolve().parent

cluster = None
relay = None
workdir = None


def setUpModule():
    global cluster, relay, workdir
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()  # fail early, with the path, when the binary is missing
    workdir = tempfile.TemporaryDirectory(prefix='dbwarden-clients-')
    unittest.addModuleCleanup(workdir.cleanup)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.create_db('benchdb', owner='app')
    cluster.psql("""
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                            tags text[], created timestamptz);
        INSERT INTO items SELECT g, 'item ' || g || ' ✓ ü', g * 1.25, ARRAY['t' || g, 'x y'],
                                 '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour'
                          FROM generate_series(1, 100) AS g;
        CREATE INDEX items_name_idx ON items (name);
        CREATE VIEW items_view AS SELECT id, name FROM items;
        CREATE TABLE items_in (id int, name text, price numeric(10,2));
        CREATE TABLE audit_three (id int);
        INSERT INTO audit_three VALUES (1), (2), (3);
    """, dbname='appdb', user='app')
    relay = fx.Relay([{'name': 'appdb', 'env': 'test',
                       'upstream': f'{fx.LOOPBACK}:{cluster.port}'}])
    unittest.addModuleCleanup(relay.close)
    relay.start()


def tearDownModule():
    if relay is not None and relay.running():
        relay.stop()  # asserts exit 0 after SIGTERM


def psql(port, *args, appname='dbwarden-it', user='app', db='appdb', timeout=120, text=True):
    env = dict(fx.CLIENT_ENV, PGAPPNAME=appname)
    cmd = [PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(port), '-U', user, '-d', db] + list(args)
    return subprocess.run(cmd, capture_output=True, text=text, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def connect(port, appname='dbwarden-it', dbname='appdb', **kw):
    import psycopg2
    return psycopg2.connect(host=fx.LOOPBACK, port=port, user='app', dbname=dbname,
                            application_name=appname, connect_timeout=10, **kw)


class DirectVsRelay:
    """Mixin: run the same psql invocation directly and through the relay, compare everything."""

    def assert_same_psql(self, *args, text=True):
        direct = psql(cluster.port, *args, text=text)
        via = psql(relay.port(), *args, text=text)
        self.assertEqual(direct.returncode, via.returncode,
                         f'exit code differs for {args}: direct {direct.returncode}, relay '
                         f'{via.returncode}\nrelay stderr: {via.stderr[-2000:]}\n{relay.diag()}')
        if text:
            for stream in ('stdout', 'stderr'):
                a, b = getattr(direct, stream), getattr(via, stream)
                self.assertEqual(a, b, f'{stream} differs for {args}:\n{fx.short_diff(a, b)}')
        else:
            self.assertEqual(len(direct.stdout), len(via.stdout), f'stdout length differs {args}')
            self.assertEqual(direct.stdout, via.stdout, f'stdout bytes differ for {args}')
            self.assertEqual(direct.stderr, via.stderr)
        return direct


class PsqlTest(DirectVsRelay, unittest.TestCase):

    def test_describe_commands_match_direct(self):
        for cmd in (r'\d', r'\dt', r'\d items', r'\d+ items', r'\dv', r'\du', r'\l'):
            with self.subTest(cmd=cmd):
                out = self.assert_same_psql('-c', cmd)
                self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('items_view', psql(relay.port(), '-c', r'\d').stdout)

    def test_query_output_identical_to_direct(self):
        script = Path(workdir.name) / 'compare.sql'
        script.write_text(r"""\set VERBOSITY verbose
SELECT 1 AS one, 2147483647 AS maxint, (-42)::int8 AS neg, 0::int2 AS zero;
SELECT 'héllo wörld ✓ 日本語 🐘'::text AS unicode, ''::text AS empty, NULL::text AS nul,
       E'tab\there\nnewline' AS ctrl;
SELECT 12345.678900::numeric AS n, 'NaN'::numeric AS nan, 1e-30::numeric AS tiny,
       (-1)::numeric(20,10) AS neg, 3.14::float8 AS f8, 'Infinity'::float4 AS inf;
SELECT '\x00ff10deadbeef'::bytea AS b, ''::bytea AS empty_b, NULL::bytea AS null_b;
SELECT '2024-02-29 13:14:15.123456'::timestamp AS ts,
       '2024-02-29 13:14:15+02'::timestamptz AS tstz, 'infinity'::timestamp AS inf,
       '1999-12-31'::date AS d, '1 day 02:03:04'::interval AS iv;
SELECT ARRAY[1, 2, NULL, 4] AS ints, ARRAY['a', 'b c', '{"}', NULL] AS texts,
       '{{1,2},{3,4}}'::int[] AS md, '{}'::int[] AS empty_arr;
SELECT '{"a": [1, 2.5, null, "x"], "b": {"c": true}}'::json AS j,
       '{"z": 1, "a": "ü"}'::jsonb AS jb;
SELECT * FROM items ORDER BY id LIMIT 5;
SELECT g, md5(g::text) AS h FROM generate_series(1, 50000) AS g;
SELECT 1/0;
SELECT * FROM no_such_table;
DO $$BEGIN RAISE NOTICE 'hello from notice %', 42; END$$;
DO $$BEGIN RAISE WARNING 'a warning with ü'; END$$;
BEGIN;
SELECT 1/0;
SELECT 'in failed transaction';
ROLLBACK;
SELECT 'after errors' AS still_ok;
\x on
SELECT * FROM items WHERE id <= 3 ORDER BY id;
""")
        out = self.assert_same_psql('-f', str(script))
        self.assertIn('50000', out.stdout)
        self.assertIn('22012', out.stderr)
        self.assertIn('hello from notice 42', out.stderr)
        self.assertEqual(out.stdout.count('\n'), len(out.stdout.splitlines()))

    def test_copy_to_stdout_matches_direct(self):
        for sql in ('COPY items TO STDOUT',
                    'COPY (SELECT * FROM items ORDER BY id DESC) TO STDOUT '
                    'WITH (FORMAT csv, HEADER)',
                    'COPY (SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 20000) g) '
                    'TO STDOUT'):
            with self.subTest(sql=sql):
                out = self.assert_same_psql('-c', sql)
                self.assertEqual(out.returncode, 0, out.stderr)
        with self.subTest(sql='binary COPY'):
            out = self.assert_same_psql('-c', 'COPY items TO STDOUT (FORMAT binary)', text=False)
            self.assertTrue(out.stdout.startswith(b'PGCOPY\n\xff\r\n\0'), out.stdout[:20])

    def test_backslash_copy_from_file(self):
        cluster.psql('TRUNCATE items_in', dbname='appdb')
        rows = []
        for i in range(1, 2001):
            name = r'\N' if i % 97 == 0 else f'row {i} ✓ tab\\there'
            rows.append(f'{i}\t{name}\t{i * 0.25:.2f}\n')
        data = ''.join(rows)
        path = Path(workdir.name) / 'items_in.tsv'
        path.write_text(data)
        out = psql(relay.port(), '-v', 'ON_ERROR_STOP=1', '-c', f"\\copy items_in FROM '{path}'")
        self.assertEqual(out.returncode, 0, f'{out.stderr}\n{relay.diag()}')
        self.assertEqual(out.stdout.strip(), 'COPY 2000')
        back = fx.run([PSQL, '-X', '-h', cluster.socket_dir, '-p', cluster.port, '-U', 'app',
                       '-d', 'appdb', '-c', 'COPY (SELECT * FROM items_in ORDER BY id) TO STDOUT'],
                      env=fx.CLIENT_ENV).stdout
        self.assertEqual(back, data)


class PgbenchTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.env = dict(fx.CLIENT_ENV)
        init = cls.pgbench('-i', '-s', '1', '-q')
        if init.returncode != 0:
            raise AssertionError(f'pgbench -i through the relay failed ({init.returncode}):\n'
                                 f'{init.stderr[-3000:]}\n{relay.diag()}')

    @classmethod
    def pgbench(cls, *args, timeout=300):
        cmd = [PGBENCH, '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U', 'app'] + list(args) + \
            ['benchdb']
        return subprocess.run(cmd, capture_output=True, text=True, env=cls.env, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def assert_run(self, out, expected_tx):
        self.assertEqual(out.returncode, 0, f'pgbench failed:\n{out.stdout[-2000:]}\n'
                                            f'{out.stderr[-3000:]}\n{relay.diag()}')
        m = re.search(r'number of transactions actually processed: (\d+)/(\d+)', out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (expected_tx, expected_tx),
                         out.stdout)
        failed = re.search(r'number of failed transactions: (\d+)', out.stdout)
        if failed:
            self.assertEqual(int(failed.group(1)), 0, out.stdout)

    def test_select_only_all_protocol_modes(self):
        for mode in ('simple', 'extended', 'prepared'):
            with self.subTest(mode=mode):
                out = self.pgbench('-n', '-c4', '-j2', '-t', '200', '-S', '-M', mode)
                self.assert_run(out, 800)

    def test_tpcb_extended(self):
        before = int(cluster.psql('SELECT count(*) FROM pgbench_history', dbname='benchdb'))
        out = self.pgbench('-n', '-c4', '-j2', '-t', '100', '-M', 'extended')
        self.assert_run(out, 400)
        after = int(cluster.psql('SELECT count(*) FROM pgbench_history', dbname='benchdb'))
        self.assertEqual(after - before, 400)


class Psycopg2Test(unittest.TestCase):

    def setUp(self):
        import psycopg2
        self.psycopg2 = psycopg2
        self.conn = connect(relay.port(), appname='psycopg2-it')
        self.addCleanup(self.conn.close)

    def test_named_cursor_fetchmany(self):
        import hashlib
        with self.conn.cursor(name='big_cursor') as cur:
            cur.execute('SELECT g, md5(g::text) FROM generate_series(1, 10000) AS g ORDER BY g')
            got, batches = [], 0
            while True:
                batch = cur.fetchmany(777)
                if not batch:
                    break
                batches += 1
                got.extend(batch)
        self.conn.commit()
        self.assertEqual(batches, 13)
        self.assertEqual(len(got), 10000)
        self.assertEqual(got[0], (1, hashlib.md5(b'1').hexdigest()))
        self.assertEqual(got[-1], (10000, hashlib.md5(b'10000').hexdigest()))
        self.assertEqual([r[0] for r in got], list(range(1, 10001)))

    def test_executemany_roundtrip(self):
        cur = self.conn.cursor()
        cur.execute('CREATE TEMP TABLE em (id int, name text, blob bytea, note text)')
        rows = [(i, f'name {i} ✓ \'quote\' "dq"', bytes([i % 256, 0, 255]),
                 None if i % 3 == 0 else f'n{i}') for i in range(500)]
        cur.executemany('INSERT INTO em VALUES (%s, %s, %s, %s)', rows)
        self.assertEqual(cur.rowcount, 500)
        cur.execute('SELECT id, name, blob, note FROM em ORDER BY id')
        back = [(a, b, bytes(c), d) for a, b, c, d in cur.fetchall()]
        self.assertEqual(back, rows)
        self.conn.rollback()

    def test_copy_expert_to_and_from(self):
        cur = self.conn.cursor()
        buf = io.StringIO()
        cur.copy_expert('COPY (SELECT * FROM items ORDER BY id) TO STDOUT WITH (FORMAT csv, '
                        'HEADER)', buf)
        direct = psql(cluster.port, '-c', 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT WITH '
                      '(FORMAT csv, HEADER)')
        self.assertEqual(buf.getvalue(), direct.stdout)
        cur.execute('CREATE TEMP TABLE cp (id int, t text)')
        data = ''.join(f'{i}\tcopy row {i} ü\n' for i in range(5000))
        cur.copy_expert('COPY cp FROM STDIN', io.StringIO(data))
        cur.execute('SELECT count(*), sum(id), min(t), max(t) FROM cp')
        self.assertEqual(cur.fetchone(), (5000, sum(range(5000)), 'copy row 0 ü',
                                          'copy row 999 ü'))
        out = io.StringIO()
        cur.copy_expert('COPY (SELECT * FROM cp ORDER BY id) TO STDOUT', out)
        self.assertEqual(out.getvalue(), data)
        self.conn.rollback()

    def test_statement_error_keeps_session_usable(self):
        errors = self.psycopg2.errors
        cur = self.conn.cursor()
        with self.assertRaises(errors.DivisionByZero) as ctx:
            cur.execute('SELECT 1/0')
        self.assertEqual(ctx.exception.pgcode, '22012')
        with self.assertRaises(errors.InFailedSqlTransaction):
            cur.execute('SELECT 1')
        self.conn.rollback()
        cur.execute('SELECT 2')
        self.assertEqual(cur.fetchone(), (2,))
        self.conn.rollback()
        self.conn.autocommit = True
        with self.assertRaises(errors.UndefinedTable):
            cur.execute('SELECT * FROM no_such_table')
        cur.execute("SELECT 'ok', %s::int", (7,))
        self.assertEqual(cur.fetchone(), ('ok', 7))

    def test_cancel_hits_the_right_backend(self):
        errors = self.psycopg2.errors
        victim = connect(relay.port(), appname='cancel-victim')
        bystander = connect(relay.port(), appname='cancel-bystander')
        self.addCleanup(victim.close)
        self.addCleanup(bystander.close)
        victim.autocommit = bystander.autocommit = True
        results = {}

        def sleeper(name, conn):
            try:
                conn.cursor().execute('SELECT pg_sleep(30)')
                results[name] = ('ok', time.monotonic())
            except Exception as exc:  # noqa: BLE001 - inspected below
                results[name] = (exc, time.monotonic())

        threads = {name: threading.Thread(target=sleeper, args=(name, conn), daemon=True)
                   for name, conn in (('victim', victim), ('bystander', bystander))}
        for t in threads.values():
            t.start()
        active = ("application_name = '{}' AND state = 'active' "
                  "AND query = 'SELECT pg_sleep(30)'")
        victim_pid = fx.wait_until(lambda: cluster.backend_pids(active.format('cancel-victim')),
                                   15, 'victim query to be active')[0]
        fx.wait_until(lambda: cluster.backend_pids(active.format('cancel-bystander')), 15,
                      'bystander query to be active')
        t0 = time.monotonic()
        victim.cancel()
        threads['victim'].join(10)
        self.assertFalse(threads['victim'].is_alive(),
                         f'cancel through the relay did not interrupt the query\n{relay.diag()}')
        exc, t_done = results['victim']
        self.assertIsInstance(exc, errors.QueryCanceled, f'{exc!r}')
        self.assertEqual(exc.pgcode, '57014')
        self.assertLess(t_done - t0, 5.0)
        # The other session's query must still be running: the cancel reached the right backend.
        self.assertEqual(len(cluster.backend_pids(active.format('cancel-bystander'))), 1,
                         'the bystander query is no longer active: cancel hit the wrong backend')
        self.assertNotIn('bystander', results)
        cur = victim.cursor()
        cur.execute('SELECT pg_backend_pid()')
        self.assertEqual(cur.fetchone()[0], victim_pid)
        bystander.cancel()
        threads['bystander'].join(10)
        self.assertIsInstance(results['bystander'][0], errors.QueryCanceled)
        bystander.cursor().execute('SELECT 1')


class LibpqBinaryTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        fx.require_tools('cc')
        cls.exe = os.path.join(workdir.name, 'pq_binary_dump')
        fx.run(['cc', '-O0', '-Wall', '-o', cls.exe, HERE / 'pq_binary_dump.c',
                '-I/usr/include/postgresql', '-lpq'], timeout=120)

    def dump(self, port):
        conninfo = (f'host={fx.LOOPBACK} port={port} user=app dbname=appdb '
                    'application_name=pq-binary-dump')
        return fx.run([self.exe, conninfo], check=False, env=fx.CLIENT_ENV, timeout=60)

    def test_binary_results_identical(self):
        direct = self.dump(cluster.port)
        self.assertEqual(direct.returncode, 0, direct.stderr)
        via = self.dump(relay.port())
        self.assertEqual(via.returncode, 0, f'{via.stderr}\n{relay.diag()}')
        self.assertEqual(direct.stdout, via.stdout, fx.short_diff(direct.stdout, via.stdout))
        self.assertIn('sqlstate 22012', via.stdout)
        self.assertIn('row 0 col 0 len=5 0001feff61', via.stdout)


RFC3339_UTC = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$')


class AuditTest(unittest.TestCase):
    """Own relay (target orders/prod), so the log holds exactly the sessions made here."""

    MARKER = 'SELECT current_database() AS audit_marker_simple'
    MISSING = 'SELECT * FROM audit_no_such_table'
    THREE = 'SELECT * FROM audit_three'

    @classmethod
    def setUpClass(cls):
        cls.relay = fx.Relay([{'name': 'orders', 'env': 'prod',
                               'upstream': f'{fx.LOOPBACK}:{cluster.port}'}])
        cls.addClassCleanup(cls.relay.close)
        cls.relay.start()
        port = cls.relay.port()
        env = dict(fx.CLIENT_ENV, PGAPPNAME='audit-psql')
        # Popen so the pid of the very client process is known.
        cls.psql_proc = subprocess.Popen(
            [PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(port), '-U', 'app', '-d', 'appdb',
             '-c', cls.MARKER, '-c', cls.MISSING, '-c', cls.THREE],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            stdin=subprocess.DEVNULL)
        cls.psql_out, cls.psql_err = cls.psql_proc.communicate(timeout=60)
        script = Path(workdir.name) / 'audit_bench.sql'
        script.write_text(cls.THREE + ';\n')
        cls.bench = {}
        for mode in ('extended', 'prepared'):
            cls.bench[mode] = subprocess.run(
                [PGBENCH, '-n', '-c1', '-t', '3', '-M', mode, '-f', str(script),
                 '-h', fx.LOOPBACK, '-p', str(port), '-U', 'app', 'appdb'],
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                env=dict(fx.CLIENT_ENV, PGAPPNAME=f'audit-pgbench-{mode}'))
        conn = connect(port, appname='audit-psycopg2')
        try:
            conn.cursor().execute(cls.THREE)
        finally:
            conn.close()

    def statements(self, sql, appname, count=1):
        return self.relay.wait_for(
            lambda e: (e.get('statement') or {}).get('sql') == sql
            and fx.principal(e).get('application_name') == appname,
            kind='statement', count=count, what=f'statement event {sql!r} from {appname}')

    def test_clients_ran(self):
        self.assertEqual(self.psql_proc.returncode, 0, self.psql_err)
        self.assertIn('audit_no_such_table', self.psql_err)
        for mode, out in self.bench.items():
            self.assertEqual(out.returncode, 0, f'{mode}: {out.stderr}')

    def test_psql_statement_event(self):
        ev = self.statements(self.MARKER, 'audit-psql')[0]
        self.assertEqual(ev['source'], 'relay')
        self.assertEqual(ev['target'], 'orders')
        self.assertEqual(ev['env'], 'prod')
        self.assertIsInstance(ev['seq'], int)
        self.assertRegex(ev['ts'], RFC3339_UTC)
        self.assertIsInstance(ev['session_id'], str)
        self.assertTrue(ev['session_id'])
        p = ev['principal']
        self.assertEqual((p['db_user'], p['database'], p['application_name']),
                         ('app', 'appdb', 'audit-psql'))
        self.assertRegex(p['client_addr'], r'^127\.0\.0\.1:\d+$')
        self.assertNotIn('cert_subject', p)
        self.assertEqual(ev['statement']['protocol'], 'simple')
        self.assertEqual(ev['result']['command_tag'], 'SELECT 1')
        self.assertEqual(ev['result']['rows'], 1)
        self.assertIsInstance(ev['result']['duration_us'], int)
        self.assertGreaterEqual(ev['result']['duration_us'], 0)
        proc = ev.get('process')
        self.assertIsNotNone(proc, f'no process block for a loopback client: {ev}')
        self.assertEqual(proc['pid'], self.psql_proc.pid, ev)
        self.assertEqual(proc['uid'], os.getuid())
        self.assertTrue(proc['exe'].endswith('psql'), proc)
        self.assertEqual(proc['comm'], 'psql')
        self.assertIn('cgroup', proc)

    def test_error_and_rows(self):
        err = self.statements(self.MISSING, 'audit-psql')[0]
        self.assertEqual(err['result'].get('sqlstate'), '42P01', err)
        self.assertNotIn('command_tag', err['result'])
        three = self.statements(self.THREE, 'audit-psql')[0]
        self.assertEqual(three['result']['command_tag'], 'SELECT 3')
        self.assertEqual(three['result']['rows'], 3)
        ids = {e['session_id'] for e in (err, three)}
        self.assertEqual(len(ids), 1, 'one psql run is one session')
        psy = self.statements(self.THREE, 'audit-psycopg2')[0]
        self.assertEqual(psy['statement']['protocol'], 'simple')
        self.assertEqual(psy['result']['command_tag'], 'SELECT 3')

    def test_extended_protocol_statements(self):
        # pgbench sends the script line as written, semicolon included.
        ext = self.statements(self.THREE + ';', 'audit-pgbench-extended', count=3)
        for ev in ext:
            self.assertEqual(ev['statement']['protocol'], 'extended', ev)
            self.assertEqual(ev['result']['command_tag'], 'SELECT 3', ev)
            self.assertFalse(ev['statement'].get('name'), 'unnamed statement expected')
        prep = self.statements(self.THREE + ';', 'audit-pgbench-prepared', count=1)
        for ev in prep:
            self.assertEqual(ev['statement']['protocol'], 'extended', ev)
            self.assertTrue(ev['statement'].get('name'), f'prepared statement has no name: {ev}')
        executions = self.relay.events('statement', lambda e: fx.principal(e).get(
            'application_name') == 'audit-pgbench-prepared')
        self.assertGreaterEqual(len(executions), 3, 'each execution of a prepared statement is '
                                                    'audited')

    def test_session_start_end_pairs(self):
        def paired():
            starts = {e['session_id']: e for e in self.relay.events('session_start')}
            ends = {e['session_id']: e for e in self.relay.events('session_end')}
            return (starts, ends) if starts and set(starts) == set(ends) else None
        try:
            starts, ends = fx.wait_until(paired, 15, 'every session_start to have a session_end')
        except TimeoutError:
            starts = {e['session_id'] for e in self.relay.events('session_start')}
            ends = {e['session_id'] for e in self.relay.events('session_end')}
            self.fail(f'{len(starts)} session_start and {len(ends)} session_end events; '
                      f'start-only {starts - ends}, end-only {ends - starts}\n{self.relay.diag()}')
        apps = {fx.principal(e).get('application_name') for e in starts.values()}
        self.assertTrue({'audit-psql', 'audit-psycopg2', 'audit-pgbench-extended',
                         'audit-pgbench-prepared'} <= apps, apps)
        self.assertEqual(len(starts), len(self.relay.events('session_start')),
                         'session ids are unique')
        for sid, start in starts.items():
            self.assertLess(start['seq'], ends[sid]['seq'])
            self.assertEqual(start['target'], ends[sid]['target'])
        psql_start = next(e for e in starts.values()
                          if fx.principal(e).get('application_name') == 'audit-psql')
        self.assertEqual(psql_start['process']['pid'], self.psql_proc.pid)
        for ev in self.relay.events('statement'):
            self.assertIn(ev['session_id'], starts, f'statement without session_start: {ev}')

    def test_seq_strictly_increasing(self):
        self.statements(self.THREE, 'audit-psycopg2')
        seqs = [e['seq'] for e in self.relay.events()]
        self.assertEqual(seqs, sorted(set(seqs)), 'seq must strictly increase line by line')
        self.assertEqual(self.relay.events()[0]['kind'], 'agent_start')
        kinds = {'agent_start', 'agent_stop', 'policy_load', 'session_start', 'decision', 'statement',
                 'session_end', 'protocol_violation', 'upstream_error'}
        for ev in self.relay.events():
            self.assertIn(ev['kind'], kinds, ev)
            # Agent lifecycle events are not from the relay path; accept either source there.
            allowed = (('relay', 'agent') if ev['kind'].startswith('agent_')
                       or ev['kind'] == 'policy_load' else ('relay',))
            self.assertIn(ev['source'], allowed, ev)


if __name__ == '__main__':
    unittest.main()
