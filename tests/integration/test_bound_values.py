"""Prepared statements judged with their values (issue 16): an AI agent on a prod target with
the default pack prepares `DELETE ... WHERE id > $1`. Judged at its worst the bound may be
-2147483648, so it used to be refused whatever the values; now the Parse (or SQL PREPARE) is let
through as deferred and every Bind (or EXECUTE) is judged with the values it supplies: a selective
value runs, a whole-domain one is refused with 42501 before anything is bound. Real clients:
pgjdbc (tests/drivers/jdbc/LimitsCheck.java's `bound` steps, binary int4 parameters and a named
server-side statement), pgbench -M prepared (text parameters of unspecified type), psycopg2 for SQL
PREPARE/EXECUTE, and a raw frontend for the bytes on the wire. Also covered: statements that run
a prepared statement inside another (EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS EXECUTE) and
EXECUTE arguments with effects of their own.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_bound_values.py -v
"""

import json
from contextlib import closing
import os
import shutil
import struct
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402
from test_gate_protocol import WireClient  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PGBENCH = str(fx.PG_BIN / 'pgbench')
JDBC_JAR = Path('/usr/share/java/postgresql.jar')
JAVA_PROGRAM = REPO / 'tests' / 'drivers' / 'jdbc' / 'LimitsCheck.java'
DB = 'postgres'
DELETE = 'DELETE FROM items WHERE id > $1'

SEED = """
DROP TABLE IF EXISTS items, copy_of CASCADE;
CREATE TABLE items(id int PRIMARY KEY, v text);
INSERT INTO items SELECT g, 'x' FROM generate_series(1, 1000) g;
"""

cluster = relay = None


def setUpModule():
    global cluster, relay
    cluster = fx.module_cluster()
    relay = fx.guardrails_relay(cluster)


def count(sql='SELECT count(*) FROM items'):
    return int(cluster.query_value(sql))


def wire(app='ai-wire'):
    return WireClient.connect(relay.port(), user='postgres', database=DB, application_name=app)


def bind_binary_int4(portal, statement, value):
    """A Bind with one int4 parameter in binary format (as pgjdbc sends setInt)."""
    body = (WireClient.cstr(portal) + WireClient.cstr(statement) + struct.pack('!hh', 1, 1) +
            struct.pack('!h', 1) + struct.pack('!i', 4) + struct.pack('!i', value) +
            struct.pack('!h', 0))
    return fx.frame(b'B', body)


def outcome(msgs):
    """The CommandComplete tag, or the SQLSTATE and message of the ErrorResponse."""
    for kind, payload in msgs:
        if kind == b'E':
            f = fx.error_fields(payload)
            return f.get('C'), f.get('M', '')
        if kind == b'C':
            return 'ok', payload.rstrip(b'\0').decode()
    return None, ''


run = fx.sql_outcome


def agent():
    return fx.psycopg2_connect(relay.port(), dbname=DB, application_name='ai-psycopg2')


class Base(unittest.TestCase):
    def setUp(self):
        cluster.psql(SEED)


class WireTest(Base):
    def extended(self, c, sql, params, types=(), name=''):
        c.send(WireClient.parse_msg(name, sql, types) + WireClient.bind_msg('', name, params) +
               WireClient.execute_msg('') + WireClient.sync_msg())
        return c.read_until_ready()

    def test_text_values_decide(self):
        with wire() as c:
            self.assertEqual(outcome(self.extended(c, DELETE, [b'995'])), ('ok', 'DELETE 5'))
            code, message = outcome(self.extended(c, DELETE, [b'-2147483648']))
            self.assertEqual(code, '42501', message)
            self.assertIn('prod-no-where-agent', message)
            # A string value where a number is compared is judged as written: not a bound.
            self.assertEqual(outcome(self.extended(c, DELETE, [b' 1']))[0], '42501')
            # NULL matches no row, but a comparison with NULL restricts nothing either: refused
            # as not selective (docs/sql-analysis.md).
            self.assertEqual(outcome(self.extended(c, DELETE, [None]))[0], '42501')
            # The session goes on.
            self.assertEqual(c.simple_query('SELECT 1')[-1][0], b'Z')
        self.assertEqual(count(), 995)

    def test_binary_int4_and_a_named_statement(self):
        with wire() as c:
            c.send(WireClient.parse_msg('del', DELETE, [23]) + WireClient.sync_msg())
            self.assertEqual(c.read_until_ready()[0][0], b'1')
            # id > 2147483647 matches nothing; id > -5 is a real bound that happens to match
            # every row here, which the row budget (max_rows 100) stops.
            for value, expected in ((990, ('ok', 'DELETE 10')), (-2147483648, '42501'),
                                    (2147483647, ('ok', 'DELETE 0')), (-5, '54000'),
                                    (985, ('ok', 'DELETE 5'))):
                c.send(bind_binary_int4('', 'del', value) + WireClient.execute_msg('') +
                       WireClient.sync_msg())
                got = outcome(c.read_until_ready())
                if isinstance(expected, str):
                    self.assertEqual(got[0], expected, (value, got))
                else:
                    self.assertEqual(got, expected, value)
        self.assertEqual(count(), 985)

    def test_a_refused_bind_ends_the_batch_as_an_error_would(self):
        # One implicit transaction up to Sync: the refused Bind's error rolls back the first
        # DELETE too, exactly as a real error there would.
        with wire() as c:
            c.send(WireClient.parse_msg('', DELETE) + WireClient.bind_msg('', '', [b'995']) +
                   WireClient.execute_msg('') + WireClient.bind_msg('', '', [b'-2147483648']) +
                   WireClient.execute_msg('') + WireClient.sync_msg())
            msgs = c.read_until_ready()
        kinds = [m[0] for m in msgs]
        self.assertEqual(kinds, [b'1', b'2', b'C', b'E', b'Z'], msgs)
        self.assertEqual(fx.error_fields(msgs[3][1])['C'], '42501')
        self.assertEqual(msgs[-1][1], b'I')
        self.assertEqual(count(), 1000)

    def test_in_a_transaction_block(self):
        with wire() as c:
            c.simple_query('BEGIN')
            self.assertEqual(outcome(self.extended(c, DELETE, [b'999'])), ('ok', 'DELETE 1'))
            msgs = self.extended(c, DELETE, [b'-2147483648'])
            self.assertEqual(outcome(msgs)[0], '42501')
            self.assertEqual(msgs[-1][1], b'E')  # the client's transaction failed, as documented
            c.simple_query('ROLLBACK')
        self.assertEqual(count(), 1000)

    def test_limit_and_pattern_values(self):
        with wire() as c:
            c.send(WireClient.parse_msg('', 'SELECT id FROM items LIMIT $1') +
                   WireClient.bind_msg('', '', [b'3']) + WireClient.execute_msg('') +
                   WireClient.sync_msg())
            msgs = c.read_until_ready()
            self.assertEqual([m[0] for m in msgs].count(b'D'), 3, msgs)
            code, message = outcome(self.extended(c, 'SELECT id FROM items LIMIT $1', [None]))
            self.assertEqual(code, '42501', message)
            self.assertIn('prod-unbounded-select-agent', message)
            self.assertEqual(outcome(self.extended(c, 'DELETE FROM items WHERE v LIKE $1',
                                                   [b'zz%'])), ('ok', 'DELETE 0'))
            self.assertEqual(outcome(self.extended(c, 'DELETE FROM items WHERE v LIKE $1',
                                                   [b'%']))[0], '42501')
        self.assertEqual(count(), 1000)

    def test_audit_records_the_bound_judgement(self):
        with wire('ai-audit-bind') as c:
            self.extended(c, DELETE, [b'998'])
            self.extended(c, DELETE, [b'-2147483648'])
        events = relay.wait_for(
            lambda e: (e.get('principal') or {}).get('application_name') == 'ai-audit-bind',
            kind='statement', count=2)
        ran = [e for e in events if e['result'].get('command_tag') == 'DELETE 2']
        refused = [e for e in events if e['result'].get('sqlstate') == '42501']
        self.assertEqual(len(ran), 1, events)
        self.assertEqual(len(refused), 1, events)
        self.assertEqual(ran[0]['decision']['action'], 'allow')
        self.assertEqual(refused[0]['decision']['action'], 'deny')
        for e in ran + refused:
            self.assertEqual(e['statement']['sql'], DELETE)
            self.assertEqual(e['statement']['protocol'], 'extended')
            self.assertNotIn('2147483648', json.dumps(e))
        self.assertIn('no_where', refused[0]['statement']['risks'])
        self.assertNotIn('no_where', ran[0]['statement']['risks'])
        self.assertGreaterEqual(fx.metric(relay.api_port, 'dbwarden_decisions_deferred_total'),
                                2)

    def test_an_execute_without_a_judged_bind_is_refused(self):
        # Bind and Execute of a deferred statement while the server skips to Sync: nothing runs,
        # and the session keeps working.
        with wire() as c:
            c.send(WireClient.parse_msg('', 'SELECT 1/0') + WireClient.bind_msg('', '') +
                   WireClient.execute_msg('') + WireClient.parse_msg('d2', DELETE) +
                   WireClient.bind_msg('', 'd2', [b'-2147483648']) + WireClient.execute_msg('') +
                   WireClient.sync_msg())
            msgs = c.read_until_ready()
            self.assertEqual([m[0] for m in msgs].count(b'E'), 1, msgs)
            self.assertEqual(c.simple_query('SELECT 1')[-1][0], b'Z')
        self.assertEqual(count(), 1000)


class DryRunTest(unittest.TestCase):
    def test_evaluate_with_values_over_http(self):
        # POST /v1/policy/evaluate judges the statement with `params` as the relay judges a Bind.
        def decide(params):
            body = {'sql': DELETE, 'principal': {'kind': 'agent'}}
            if params is not None:
                body['params'] = params
            status, _, reply = fx.api_request(relay.api_port, '/v1/policy/evaluate',
                                              method='POST', body=json.dumps(body).encode())
            self.assertEqual(status, 200, reply)
            return json.loads(reply)
        self.assertEqual(decide(None)['action'], 'deny')
        ran = decide(['995'])
        self.assertEqual(ran['action'], 'allow')
        self.assertEqual(ran['statements'][0]['normalized'], DELETE)
        self.assertEqual(decide([-2147483648])['action'], 'deny')


class SqlPrepareTest(Base):
    def test_execute_judged_with_its_arguments(self):
        with closing(agent()) as conn:
            self.assertEqual(run(conn, 'PREPARE d(int) AS DELETE FROM items WHERE id > $1'),
                             ('ok', 'PREPARE'))
            self.assertEqual(run(conn, 'EXECUTE d(995)'), ('ok', 'DELETE 5'))
            for args in ('-2147483648', '(SELECT min(id) - 1 FROM items)', '0 - 5',
                         "'-1'", 'NULL::int + 0'):
                code, message = run(conn, f'EXECUTE d({args})')
                self.assertEqual(code, '42501', (args, message))
            # Inside EXPLAIN ANALYZE the statement runs too.
            code, message = run(conn, 'EXPLAIN ANALYZE EXECUTE d(-2147483648)')
            self.assertEqual(code, '42501', message)
            self.assertEqual(run(conn, 'EXPLAIN ANALYZE EXECUTE d(990)')[0], 'ok')
        self.assertEqual(count(), 990)

    def test_a_prepare_refused_for_other_reasons_stays_refused(self):
        with closing(agent()) as conn:
            code, message = run(conn, 'PREPARE t(int) AS DELETE FROM items')
            self.assertEqual(code, '42501', message)
            code, message = run(conn, 'PREPARE u(int) AS UPDATE items SET v = $1::text')
            self.assertEqual(code, '42501', message)

    def test_arguments_are_judged_for_their_own_effects(self):
        # EXECUTE evaluates its arguments: a role change there is one, whatever p does.
        with closing(agent()) as conn:
            self.assertEqual(run(conn, 'PREPARE echo(text) AS SELECT $1')[0], 'ok')
            code, message = run(conn, "EXECUTE echo(set_config('role', 'postgres', false))")
            self.assertEqual(code, '42501', message)
            code, message = run(conn,
                                "EXPLAIN EXECUTE echo(set_config('role', 'postgres', false))")
            self.assertEqual(code, '42501', message)
            self.assertEqual(run(conn, "EXECUTE echo('hello')"), ('ok', 'SELECT 1'))

    def test_explain_analyze_execute_runs_under_the_row_budget(self):
        # The prepared UPDATE is selective by its text; run through EXPLAIN ANALYZE it used to
        # escape the row budget, which attaches to statements that write.
        with closing(agent()) as conn:
            self.assertEqual(run(conn, "PREPARE touch(int) AS UPDATE items SET v = 'e' "
                                       "WHERE id > $1")[0], 'ok')
            code, message = run(conn, 'EXPLAIN ANALYZE EXECUTE touch(10)')
            self.assertEqual(code, '54000', message)
            self.assertEqual(run(conn, 'EXPLAIN ANALYZE EXECUTE touch(995)')[0], 'ok')
        self.assertEqual(count("SELECT count(*) FROM items WHERE v = 'e'"), 5)

    def test_create_table_as_execute_carries_what_it_runs(self):
        with closing(agent()) as conn:
            self.assertEqual(run(conn, 'PREPARE everything AS SELECT * FROM items')[0], '42501')
            self.assertEqual(run(conn, "PREPARE echo2(text) AS SELECT $1 AS v")[0], 'ok')
            code, message = run(conn, "CREATE TABLE copy_of AS EXECUTE echo2("
                                      "set_config('role', 'postgres', false))")
            self.assertEqual(code, '42501', message)
            self.assertIn('prod-privilege-agent', message)


class ClientTest(Base):
    def test_pgbench_prepared(self):
        script = Path(cluster.datadir).parent / 'bound.sql'
        script.write_text("\\set lo random(990, 999)\n"
                          "UPDATE items SET v = 'pb' WHERE id > :lo;\n")
        whole = Path(cluster.datadir).parent / 'whole.sql'
        whole.write_text("\\set lo -2147483648\n"
                         "UPDATE items SET v = 'all' WHERE id > :lo;\n")
        env = dict(os.environ, PGAPPNAME='ai-pgbench', PGUSER='postgres')
        base = [PGBENCH, '-n', '-M', 'prepared', '-h', fx.LOOPBACK, '-p', str(relay.port())]
        p = subprocess.run(base + ['-f', str(script), '-t', '50', DB], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('number of transactions actually processed: 50/50', p.stdout)
        p = subprocess.run(base + ['-f', str(whole), '-t', '1', DB], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('prod-no-where-agent', p.stderr)
        self.assertEqual(count("SELECT count(*) FROM items WHERE v = 'all'"), 0)
        self.assertGreater(count("SELECT count(*) FROM items WHERE v = 'pb'"), 0)

    def test_jdbc(self):
        java = shutil.which('java')
        if java is None or not JDBC_JAR.exists():
            self.fail('java and /usr/share/java/postgresql.jar are needed (scripts/install-deps)')
        p = subprocess.run([java, '-cp', str(JDBC_JAR), str(JAVA_PROGRAM), fx.LOOPBACK,
                            str(relay.port()), DB, 'postgres', 'ai-jdbc', 'bound'],
                           capture_output=True,
                           text=True, timeout=240)
        steps = [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{')]
        by = {}
        for s in steps:
            by.setdefault(s['step'], []).append(s)
        self.assertIn('done', by, p.stdout + p.stderr)
        self.assertEqual([s['rows'] for s in by['delete_small']], [1] * 8, by['delete_small'])
        self.assertEqual(by['delete_whole'][0]['sqlstate'], '42501', by['delete_whole'])
        self.assertEqual(by['delete_after'][0]['rows'], 1, by['delete_after'])
        self.assertEqual(by['select_limit'][0]['rows'], 7, by['select_limit'])
        self.assertEqual(by['select_range'][0]['rows'], 4, by['select_range'])
        self.assertEqual(by['select_whole'][0]['sqlstate'], '42501', by['select_whole'])
        self.assertEqual(by['like_pattern'][0]['rows'], 0, by['like_pattern'])
        self.assertEqual(by['like_everything'][0]['sqlstate'], '42501', by['like_everything'])
        self.assertEqual(count(), 1000 - 9)


if __name__ == '__main__':
    unittest.main()
