"""Runtime effect limits through the relay (issue 16): an AI agent's statement on a prod target
runs under the default pack's row budget (max_rows 100: counted by the server's per-transaction
row counters, so writable CTEs and triggers count) and a read budget (tightened here to 50 rows /
1 MB so results stay small). Real clients: psql, psycopg2 (autocommit and in a transaction),
pgjdbc (tests/drivers/jdbc/LimitsCheck.java) and pgbench -M prepared; a raw frontend for the bytes
on the wire. Asserts what the client gets (the error, the transaction status afterwards, rows
received), what the server kept (row counts from a direct connection) and the audit record.

The same module covers the catalog's classification of called functions: an agent's call of a
user-defined VOLATILE or SECURITY DEFINER function or procedure carries the risk user_function
(denied here by a site rule; the default pack sends it to approval).

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_runtime_limits.py -v
"""

import io
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PSQL = str(fx.PG_BIN / 'psql')
PGBENCH = str(fx.PG_BIN / 'pgbench')
JDBC_JAR = Path('/usr/share/java/postgresql.jar')
JAVA_PROGRAM = REPO / 'tests' / 'drivers' / 'jdbc' / 'LimitsCheck.java'
DB = 'postgres'

SEED = """
DROP TABLE IF EXISTS items, scratch, trig_src CASCADE;
CREATE TABLE items(id int PRIMARY KEY, v text);
INSERT INTO items SELECT g, 'x' FROM generate_series(1, 1000) g;
CREATE TABLE scratch(id int);
CREATE TABLE trig_src(id int);
CREATE OR REPLACE FUNCTION purge_items() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM items WHERE id > 700; RETURN NEW; END$$;
CREATE TRIGGER purge AFTER INSERT ON trig_src FOR EACH ROW EXECUTE FUNCTION purge_items();
"""

cluster = relay = None


def setUpModule():
    global cluster, relay
    cluster = fx.module_cluster()
    # Created before the relay reads the catalog (it re-reads after DDL it relays, or a minute).
    cluster.psql("""
CREATE TABLE counter(n int); INSERT INTO counter VALUES (0);
CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'UPDATE counter SET n = n + 1 RETURNING n';
CREATE FUNCTION \"Shout\"(t text) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT upper(t)';
CREATE FUNCTION stable_fn() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';
CREATE FUNCTION owner_fn() RETURNS int LANGUAGE sql STABLE SECURITY DEFINER AS 'SELECT 2';
CREATE PROCEDURE reset_counter() LANGUAGE sql AS 'UPDATE counter SET n = 0';
""")
    relay = fx.guardrails_relay(cluster, rules=(
        '  - id: test-read-budget\n'
        '    match: {env: [prod], principal: {kind: agent}}\n'
        '    action: limit\n'
        '    limits: {max_read_rows: 50, max_read_bytes: 1000000}\n'
        '  - id: test-user-function\n'
        '    priority: 10\n'
        '    match: {env: [prod], principal: {kind: agent}, '
        'statement: {risks: [user_function]}}\n'
        '    action: deny\n'))


def count(sql='SELECT count(*) FROM items'):
    return int(cluster.query_value(sql))


def agent(app='ai-test', autocommit=True):
    return fx.psycopg2_connect(relay.port(), dbname=DB, application_name=app,
                               autocommit=autocommit)


run = fx.sql_outcome


class Base(unittest.TestCase):
    def setUp(self):
        cluster.psql(SEED)


class WriteBudgetSimpleTest(Base):
    def test_psycopg2_autocommit(self):
        conn = agent('ai-auto')
        self.addCleanup(conn.close)
        self.assertEqual(run(conn, 'DELETE FROM items WHERE id <= 5'), ('ok', 'DELETE 5'))
        self.assertEqual(count(), 995)
        code, msg = run(conn, 'DELETE FROM items WHERE id <= 500')
        self.assertEqual(code, '54000', msg)
        self.assertIn('changed 495 rows, more than the limit of 100 set by rule '
                      'prod-write-budget-agent', msg)
        self.assertEqual(count(), 995, 'the stopped DELETE was rolled back')
        self.assertEqual(conn.get_transaction_status(), 0)  # idle: autocommit
        # The session goes on; the event records what it would have changed.
        self.assertEqual(run(conn, 'SELECT 1'), ('ok', 'SELECT 1'))
        ev = relay.wait_for(lambda e: (e.get('result') or {}).get('sqlstate') == '54000' and
                            'changed 495 rows' in (e.get('result') or {}).get('message', ''),
                            kind='statement')[0]
        self.assertEqual(ev['decision']['limits']['max_rows'], 100)

    def test_writes_the_analysis_cannot_see(self):
        conn = agent('ai-hidden')
        self.addCleanup(conn.close)
        # A writable CTE whose tag says SELECT, and a trigger that deletes 300 rows for a one-row
        # INSERT: the server's counters see both.
        code, msg = run(conn, 'WITH d AS (DELETE FROM items WHERE id > 400 RETURNING 1) '
                              'SELECT count(*) FROM d')
        self.assertEqual(code, '54000', msg)
        code, msg = run(conn, 'INSERT INTO trig_src VALUES (1)')
        self.assertEqual(code, '54000', msg)
        self.assertIn('changed 301 rows', msg)
        self.assertEqual(count(), 1000)
        self.assertEqual(count('SELECT count(*) FROM trig_src'), 0)

    def test_psycopg2_in_a_transaction(self):
        import psycopg2
        conn = agent('ai-tx', autocommit=False)
        self.addCleanup(conn.close)
        self.assertEqual(run(conn, 'INSERT INTO scratch VALUES (1)'), ('ok', 'INSERT 0 1'))
        code, msg = run(conn, 'UPDATE items SET v = $$y$$ WHERE id > 100')
        self.assertEqual(code, '54000', msg)
        # Aborted like any failed statement: the client must roll back.
        self.assertEqual(conn.get_transaction_status(),
                         psycopg2.extensions.TRANSACTION_STATUS_INERROR)
        self.assertEqual(run(conn, 'INSERT INTO scratch VALUES (2)')[0], '25P02')
        conn.rollback()
        self.assertEqual(count('SELECT count(*) FROM scratch'), 0)
        self.assertEqual(count("SELECT count(*) FROM items WHERE v = 'y'"), 0)
        # Within the budget, a transaction commits as usual, and the counts are per statement.
        for lo in (1, 51, 101):
            self.assertEqual(run(conn, f'DELETE FROM items WHERE id BETWEEN {lo} AND {lo + 49}'),
                             ('ok', 'DELETE 50'))
        conn.commit()
        self.assertEqual(count(), 850)

    def test_psql_script(self):
        script = ('BEGIN;\nINSERT INTO scratch VALUES (1);\nDELETE FROM items WHERE id > 10;\n'
                  'SELECT 1;\nCOMMIT;\nDELETE FROM items WHERE id <= 3;\n')
        proc = subprocess.run([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U',
                               'postgres', '-d', DB, '-f', '-'], input=script, text=True,
                              capture_output=True, timeout=60,
                              env=dict(os.environ, PGAPPNAME='ai-psql'))
        self.assertIn('changed 990 rows, more than the limit of 100', proc.stderr)
        self.assertIn('current transaction is aborted', proc.stderr)
        self.assertIn('ROLLBACK', proc.stdout)  # COMMIT of an aborted transaction
        self.assertIn('DELETE 3', proc.stdout)
        self.assertEqual(count(), 997)
        self.assertEqual(count('SELECT count(*) FROM scratch'), 0)

    def test_what_cannot_be_counted_is_refused(self):
        conn = agent('ai-refused')
        self.addCleanup(conn.close)
        code, msg = run(conn, 'BEGIN; DELETE FROM items WHERE id = 1; COMMIT')
        self.assertEqual(code, '42501', msg)
        self.assertIn('transaction control', msg)
        import psycopg2
        with self.assertRaises(psycopg2.Error) as cm:
            conn.cursor().copy_expert('COPY scratch FROM STDIN', io.StringIO('1\n'))
        self.assertEqual(cm.exception.pgcode, '42501')
        self.assertEqual(count(), 1000)
        self.assertEqual(count('SELECT count(*) FROM scratch'), 0)

    def test_humans_and_reads_are_not_wrapped(self):
        before = fx.metric(relay.api_port, 'dbwarden_limit_wrapped_total')
        human = agent('sre-console')
        self.addCleanup(human.close)
        self.assertEqual(run(human, 'DELETE FROM items WHERE id <= 500'), ('ok', 'DELETE 500'))
        bot = agent('ai-reader')
        self.addCleanup(bot.close)
        self.assertEqual(run(bot, 'SELECT v FROM items WHERE id = 900'), ('ok', 'SELECT 1'))
        self.assertEqual(fx.metric(relay.api_port, 'dbwarden_limit_wrapped_total'), before)
        self.assertEqual(run(bot, 'UPDATE items SET v = v WHERE id = 900'), ('ok', 'UPDATE 1'))
        self.assertEqual(fx.metric(relay.api_port, 'dbwarden_limit_wrapped_total'), before + 1)


class WriteBudgetExtendedTest(Base):
    def test_pgbench_prepared(self):
        d = Path(cluster.datadir).parent
        ok = d / 'ok.sql'
        ok.write_text('\\set id random(1, 1000)\nBEGIN;\nUPDATE items SET v = v WHERE id = :id;\n'
                      'SELECT v FROM items WHERE id = :id;\nEND;\n')
        big = d / 'big.sql'
        big.write_text('UPDATE items SET v = $$big$$ WHERE id > 0;\n')
        env = dict(os.environ, PGAPPNAME='ai-bench')
        base = [PGBENCH, '-n', '-M', 'prepared', '-h', fx.LOOPBACK, '-p', str(relay.port()),
                '-U', 'postgres']
        p = subprocess.run(base + ['-f', str(ok), '-t', '100', DB], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('number of transactions actually processed: 100/100', p.stdout)
        p = subprocess.run(base + ['-f', str(big), '-t', '2', DB], capture_output=True, text=True,
                           env=env, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('changed 1000 rows, more than the limit of 100', p.stderr)
        self.assertEqual(count("SELECT count(*) FROM items WHERE v = 'big'"), 0)

    def test_jdbc(self):
        java = shutil.which('java')
        if java is None or not JDBC_JAR.exists():
            self.fail('java and /usr/share/java/postgresql.jar are needed (scripts/install-deps)')
        p = subprocess.run([java, '-cp', str(JDBC_JAR), str(JAVA_PROGRAM), fx.LOOPBACK,
                            str(relay.port()), DB, 'postgres', 'ai-jdbc'], capture_output=True,
                           text=True, timeout=240)
        steps = [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{')]
        by = {}
        for s in steps:
            by.setdefault(s['step'], []).append(s)
        self.assertIn('done', by, p.stdout + p.stderr)
        self.assertEqual(by['small_delete'][0]['rows'], 5)
        self.assertEqual(by['big_delete'][0]['sqlstate'], '54000', by['big_delete'])
        self.assertEqual([s['rows'] for s in by['prepared']], [1] * 7, by['prepared'])
        self.assertEqual(by['batch'][0]['rows'], 3, by['batch'])
        self.assertTrue(by['tx_insert'][0]['ok'])
        self.assertEqual(by['tx_big_delete'][0]['sqlstate'], '54000')
        self.assertEqual(by['tx_after'][0]['sqlstate'], '25P02')
        self.assertEqual(by['tx2_small_delete'][0]['rows'], 3)
        self.assertTrue(by['tx2_commit'][0]['ok'])
        self.assertEqual(by['read_fetch'][0]['sqlstate'], '54000', by['read_fetch'])
        self.assertLessEqual(by['read_fetch_received'][0]['rows'], 50)
        self.assertEqual(by['read_small'][0]['rows'], 10)
        self.assertEqual(count(), 1000 - 5 - 3)
        self.assertEqual(count('SELECT count(*) FROM scratch'), 0)
        self.assertEqual(count("SELECT count(*) FROM items WHERE v IN ('jdbc', 'batch')"), 10)

    def test_an_earlier_error_in_the_batch(self):
        # The server skips the wrap with everything else up to Sync; the relay must not wait
        # for answers that never come.
        from test_gate_protocol import WireClient
        with WireClient.connect(relay.port(), user='postgres', database=DB,
                                application_name='ai-wire') as c:
            c.send(WireClient.parse_msg('', 'SELECT 1/0') + WireClient.bind_msg('', '') +
                   WireClient.execute_msg('') +
                   WireClient.parse_msg('', 'DELETE FROM items WHERE id > 0') +
                   WireClient.bind_msg('', '') + WireClient.execute_msg('') + fx.frame(b'S', b''))
            msgs = c.read_until_ready()
        kinds = [m[0] for m in msgs]
        self.assertIn(b'E', kinds)
        self.assertEqual(kinds[-1], b'Z')
        self.assertEqual(count(), 1000)


class ProtocolEdgesTest(Base):
    def test_an_error_in_an_earlier_batch_does_not_lift_the_budget(self):
        # A failing simple Query, then an extended batch with a mass DELETE, in one write: the
        # Query's error ends its own batch only, so the DELETE runs and must be counted.
        from test_gate_protocol import WireClient
        with WireClient.connect(relay.port(), user='postgres', database=DB,
                                application_name='ai-wire') as c:
            c.send(WireClient.query_msg('SELECT 1/0') +
                   WireClient.parse_msg('', 'DELETE FROM items WHERE id > 0') +
                   WireClient.bind_msg('', '') + WireClient.execute_msg('') + fx.frame(b'S', b''))
            first = c.read_until_ready()
            second = c.read_until_ready()
        self.assertEqual(fx.error_fields(dict(first)[b'E']).get('C'), '22012')
        kinds = [m[0] for m in second]
        self.assertEqual(kinds, [b'1', b'2', b'E', b'Z'], kinds)  # no message of the relay's
        self.assertEqual(fx.error_fields(second[2][1]).get('C'), '54000')
        self.assertEqual(count(), 1000)

    def test_a_cut_off_portal_makes_the_server_skip_to_sync(self):
        # Execute with a row limit and Flush: the result is cut off at the read budget and the
        # server, not only the relay, must then skip the batch, a refused statement included.
        from test_gate_protocol import WireClient
        with WireClient.connect(relay.port(), user='postgres', database=DB,
                                application_name='ai-wire') as c:
            c.send(WireClient.query_msg('BEGIN'))
            c.read_until_ready()
            c.send(WireClient.parse_msg('', 'SELECT id FROM items WHERE id > 0') +
                   WireClient.bind_msg('p1', '') + WireClient.execute_msg('p1', 51) +
                   fx.frame(b'H', b''))
            got = []
            while not got or got[-1][0] not in (b'E', b's'):
                got.append(c.read_message())
            kinds = [m[0] for m in got]
            self.assertEqual(kinds.count(b'D'), 50, kinds)
            self.assertEqual(kinds[-1], b'E')
            c.send(WireClient.parse_msg('', 'DELETE FROM items') + WireClient.bind_msg('', '') +
                   WireClient.execute_msg('') + fx.frame(b'S', b''))
            rest = c.read_until_ready()
            self.assertEqual([m[0] for m in rest], [b'Z'])  # skipped to Sync, as after an error
            self.assertEqual(rest[-1][1], b'E')
            c.send(WireClient.query_msg('ROLLBACK'))
            c.read_until_ready()
            self.assertEqual([m[0] for m in c.simple_query('SELECT 1')][-1], b'Z')
        self.assertEqual(count(), 1000)

    def test_copy_to_stdout_counts_against_the_read_budget(self):
        import psycopg2
        conn = agent('ai-copy')
        self.addCleanup(conn.close)
        out = io.StringIO()
        with self.assertRaises(psycopg2.Error) as cm:
            conn.cursor().copy_expert('COPY (SELECT id, v FROM items WHERE id > 0) TO STDOUT', out)
        self.assertEqual(cm.exception.pgcode, '54000')
        self.assertLessEqual(out.getvalue().count('\n'), 50)
        self.assertEqual(run(conn, 'SELECT 1'), ('ok', 'SELECT 1'))

    def test_several_statements_in_one_query_keep_their_results(self):
        conn = agent('ai-multi')
        self.addCleanup(conn.close)
        cur = conn.cursor()
        cur.execute("UPDATE items SET v = 'm' WHERE id = 1; SELECT v FROM items WHERE id = 1")
        self.assertEqual(cur.fetchall(), [('m',)])
        code, msg = run(conn, "UPDATE items SET v = 'n' WHERE id = 2; "
                              "DELETE FROM items WHERE id > 500")
        self.assertEqual(code, '54000', msg)
        self.assertEqual(count("SELECT count(*) FROM items WHERE v = 'n'"), 0)
        self.assertEqual(count(), 1000)


class ReadBudgetTest(Base):
    def test_no_row_past_the_budget_on_the_wire(self):
        from test_gate_protocol import WireClient
        with WireClient.connect(relay.port(), user='postgres', database=DB,
                                application_name='ai-wire') as c:
            msgs = c.simple_query('SELECT id, v FROM items WHERE id > 0')
        kinds = [m[0] for m in msgs]
        self.assertEqual(kinds.count(b'D'), 50, kinds)
        self.assertNotIn(b'C', kinds)  # the completion is replaced by the error
        err = fx.error_fields(msgs[kinds.index(b'E')][1])
        self.assertEqual(err.get('C'), '54000')
        self.assertIn('stopped after 50 rows', err.get('M'))
        self.assertEqual(kinds[-1], b'Z')

    def test_bytes(self):
        conn = agent('ai-bytes')
        self.addCleanup(conn.close)
        code, msg = run(conn, "SELECT g, repeat('x', 300000) FROM generate_series(1, 10) g")
        self.assertEqual(code, '54000', msg)
        self.assertIn('stopped after 3 rows', msg)
        self.assertIn('1000000 bytes', msg)

    def test_a_long_query_is_cancelled(self):
        conn = agent('ai-slow')
        self.addCleanup(conn.close)
        # 100000 rows at 2 ms each: 200 s if nothing stopped it.
        sql = ("SELECT g, repeat('x', 2000) FROM generate_series(1, 100000) g "
               "WHERE g > 0 AND pg_sleep(0.002)::text = ''")
        start = time.monotonic()
        code, msg = run(conn, sql)
        self.assertEqual(code, '54000', msg)
        self.assertLess(time.monotonic() - start, 60, 'the query was not cancelled')
        fx.wait_until(lambda: count("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                    "AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(0.002)%'") == 0, timeout=30,
                      what='the cancelled query to end')
        self.assertEqual(run(conn, 'SELECT 1'), ('ok', 'SELECT 1'))

    def test_psycopg2_in_a_transaction_and_humans(self):
        conn = agent('ai-read-tx', autocommit=False)
        self.addCleanup(conn.close)
        code, msg = run(conn, 'SELECT id FROM items WHERE id > 0')
        self.assertEqual(code, '54000', msg)
        conn.rollback()
        self.assertEqual(run(conn, 'SELECT count(*) FROM items WHERE id > 0'), ('ok', 'SELECT 1'))
        conn.rollback()
        human = agent('sre-console')
        self.addCleanup(human.close)
        self.assertEqual(run(human, 'SELECT id FROM items WHERE id > 0'), ('ok', 'SELECT 1000'))


class CatalogFunctionTest(Base):
    def test_user_functions_by_what_the_catalog_says(self):
        conn = agent('ai-functions')
        self.addCleanup(conn.close)
        for sql in ('SELECT bump()', 'SELECT public.bump()', 'SELECT "Shout"($$a$$)',
                    'SELECT owner_fn()', 'CALL reset_counter()',
                    'SELECT v FROM items WHERE id = bump()',
                    'PREPARE p AS SELECT bump()'):
            code, msg = run(conn, sql)
            self.assertEqual(code, '42501', f'{sql}: {msg}')
            self.assertIn('test-user-function', msg)
        # Built-ins and user functions that are STABLE and run with the caller's rights.
        for sql in ('SELECT stable_fn()', 'SELECT upper($$a$$)',
                    'SELECT count(*) FROM items WHERE id = 1'):
            self.assertEqual(run(conn, sql)[0], 'ok', sql)
        self.assertEqual(count('SELECT n FROM counter'), 0)
        ev = relay.wait_for(lambda e: 'user_function' in json.dumps(e.get('statement') or {}),
                            kind='statement')[0]
        self.assertEqual(ev['decision']['action'], 'deny')
        # People are not held to it by this policy.
        human = agent('sre-console')
        self.addCleanup(human.close)
        self.assertEqual(run(human, 'SELECT bump()'), ('ok', 'SELECT 1'))


if __name__ == '__main__':
    unittest.main()
