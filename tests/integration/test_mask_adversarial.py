"""Masking that holds against an adversarial reader: the attempts of
tests/testdata/sql/mask_attacks.py (expressions over masked columns, whole-row references,
aggregates, set operations, subqueries, views, copies into tables, COPY, functions, DO blocks,
dynamic SQL, statistics, DML with RETURNING, errors, search_path steering, boolean oracles) sent
through the relay as the masked principal `agent` with psycopg2 (all of them), psql, pgjdbc and
node-postgres (named prepared statements, binary results), and a raw wire client (binary result
formats, FunctionCall). None may bring back a fragment of a planted value; oracle pairs (a true
and a false guess) must get the same answer; unmasked columns come back unchanged.

Run: cd tests/integration && DBWARDEN_BIN=../../build/default/agent/dbwarden \
         /usr/bin/python3 -m unittest -v test_mask_adversarial
"""

import base64
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'testdata' / 'sql'))

import mask_attacks as ma  # noqa: E402

POLICY = """version: 1
masking:
  - id: vault-hash
    match: {principal: {db_user: [agent]}}
    columns: ["customers.password_hash"]
    function: hash
  - id: vault-null
    match: {principal: {db_user: [agent]}}
    columns: ["customers.api_key"]
    function: "null"
  - id: vault-partial
    match: {principal: {db_user: [agent]}}
    columns: ["customers.email"]
    function: partial
  - id: vault-redact
    match: {principal: {db_user: [agent]}}
    columns: ["customers.ssn", "customers.card", "customers.profile", "customers.tags"]
    detectors: [email, payment_card]
    function: redact
"""

FRAGMENTS = ma.fragments() + ma.hexes()
P = ma.PLANTED

cluster = None
relay = None


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def setUpModule():
    global cluster, relay
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    work = Path(tempfile.mkdtemp(prefix='dbwarden-maskadv-'))
    unittest.addModuleCleanup(lambda: subprocess.run(['rm', '-rf', str(work)]))
    (work / 'policy.yaml').write_text(POLICY)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    for user in ('owner', 'agent'):
        cluster.create_user(user)
    cluster.create_db('vault', owner='owner')
    row1 = ', '.join(sql_literal(P[c]) for c in
                     ('email', 'ssn', 'card', 'password_hash', 'api_key', 'profile', 'tags'))
    cluster.psql(f"""
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, ssn text,
                                card text, password_hash text, api_key text, profile jsonb,
                                tags text[], note text);
        INSERT INTO customers VALUES
          (1, 'Alice Clear', {row1}, 'public note one'),
          (2, 'Bob Clear', 'bob@other.test', 'ssn-two', 'card-two', 'hash-two', 'key-two',
           '{{"secret": "two"}}', '{{two}}', 'public note two');
        CREATE TABLE customers_2024 () INHERITS (customers);
        INSERT INTO customers_2024 VALUES (3, 'Carol Clear', {row1}, 'public note three');
        CREATE TABLE orders (id int, customer_id int, note text);
        INSERT INTO orders VALUES (10, 1, 'order note one'), (11, 2, 'order note two');
        CREATE VIEW v_customers AS SELECT * FROM ONLY customers;
        CREATE VIEW v_customers_nested AS SELECT * FROM v_customers WHERE id > 0;
        CREATE MATERIALIZED VIEW mv_customers AS SELECT * FROM ONLY customers;
        CREATE FUNCTION leaky_sql() RETURNS text LANGUAGE sql
          AS 'SELECT password_hash FROM customers WHERE id = 1';
        CREATE FUNCTION leaky_rows() RETURNS SETOF customers LANGUAGE sql
          AS 'SELECT * FROM customers';
        CREATE FUNCTION leaky_dynamic(col text) RETURNS text LANGUAGE plpgsql AS $$
          DECLARE v text;
          BEGIN EXECUTE format('SELECT %I FROM customers LIMIT 1', col) INTO v; RETURN v; END$$;
        CREATE FUNCTION leaky_plpgsql() RETURNS text LANGUAGE plpgsql AS $$
          BEGIN RETURN (SELECT api_key FROM customers LIMIT 1); END$$;
        CREATE FUNCTION harmless_wrapper() RETURNS text LANGUAGE sql AS 'SELECT leaky_sql()';
        ANALYZE customers;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO agent;
    """, dbname='vault', user='owner')
    # SQL functions over each masked column, in every form a body and a result can take
    # (mask_attacks.SQL_FUNCTIONS): expanded through their bodies for the masked principal.
    for c in ma.MASKED:
        cluster.psql(f"""
            CREATE FUNCTION get_{c}(i int) RETURNS text LANGUAGE sql
              AS $$SELECT {c}::text FROM customers WHERE id = i$$;
            CREATE FUNCTION get_{c}_atomic(i int) RETURNS text LANGUAGE sql
              BEGIN ATOMIC SELECT {c}::text FROM customers WHERE id = i; END;
            CREATE FUNCTION ret_{c}(i int) RETURNS text LANGUAGE sql
              RETURN (SELECT {c}::text FROM customers WHERE id = i);
            CREATE FUNCTION rows_{c}() RETURNS TABLE(cid int, v text) LANGUAGE sql
              AS 'SELECT id, {c}::text FROM customers';
            CREATE FUNCTION pair_{c}(i int, OUT a int, OUT b text) LANGUAGE sql STRICT
              AS 'SELECT id, {c}::text FROM customers WHERE id = $1';
            CREATE FUNCTION cfg_{c}() RETURNS text LANGUAGE sql SET search_path = public
              AS 'SELECT {c}::text FROM customers ORDER BY id LIMIT 1';
            CREATE FUNCTION wrap_{c}(i int) RETURNS text LANGUAGE sql AS 'SELECT get_{c}(i)';
            CREATE FUNCTION has_prefix_{c}(p text) RETURNS boolean LANGUAGE sql
              AS $$SELECT EXISTS (SELECT 1 FROM customers WHERE {c} LIKE p || '%')$$;
            CREATE FUNCTION count_{c}(p text) RETURNS bigint LANGUAGE sql
              AS 'SELECT count(*) FROM customers WHERE {c} LIKE $1';
            CREATE FUNCTION definer_{c}() RETURNS text LANGUAGE sql SECURITY DEFINER
              AS 'SELECT {c}::text FROM customers LIMIT 1';
            CREATE FUNCTION dflt_{c}(i int, j int DEFAULT 0) RETURNS text LANGUAGE sql
              AS 'SELECT {c}::text FROM customers WHERE id = i + j';
            CREATE FUNCTION poly_{c}(i anyelement) RETURNS text LANGUAGE sql
              AS 'SELECT {c}::text FROM customers WHERE id = i::text::int';
        """, dbname='vault', user='owner')
    cluster.psql('''
        CREATE FUNCTION rec_ssn(n int) RETURNS text LANGUAGE sql AS
          'SELECT CASE WHEN n <= 0 THEN (SELECT ssn FROM customers LIMIT 1) ELSE rec_ssn(n - 1) END';
        CREATE FUNCTION whole_row(i int) RETURNS customers LANGUAGE sql
          AS 'SELECT * FROM customers WHERE id = i';
        CREATE FUNCTION srf_text() RETURNS SETOF text LANGUAGE sql AS 'SELECT ssn FROM customers';
        CREATE FUNCTION cte_ssn() RETURNS text LANGUAGE sql
          AS 'WITH c AS (SELECT ssn FROM customers) SELECT ssn FROM c LIMIT 1';
        CREATE FUNCTION eq_ssn(s text) RETURNS bigint LANGUAGE sql
          AS 'SELECT count(*) FROM customers WHERE ssn = s';
        CREATE FUNCTION shadow(ssn text) RETURNS text LANGUAGE sql
          AS 'SELECT ssn FROM customers WHERE id = 1';
        CREATE FUNCTION qual_arg2(ssn text) RETURNS text LANGUAGE sql
          AS 'SELECT qual_arg2.ssn || (SELECT max(c.ssn) FROM customers c)';
    ''', dbname='vault', user='owner')
    cluster.psql('CREATE SCHEMA agent_space AUTHORIZATION agent', dbname='vault')
    # The agent's own objects, for steering: a function and an operator that would see their
    # arguments, and functions named like pg_catalog's that a search_path could put first.
    cluster.psql("""
        CREATE FUNCTION agent_space.echo(text) RETURNS text LANGUAGE sql AS 'SELECT $1';
        CREATE FUNCTION agent_space.eq3(text, text) RETURNS boolean LANGUAGE sql
          AS 'SELECT $1 = $2';
        CREATE OPERATOR agent_space.=== (LEFTARG = text, RIGHTARG = text,
                                         FUNCTION = agent_space.eq3);
        CREATE FUNCTION agent_space.concat(text, text) RETURNS text LANGUAGE sql
          AS 'SELECT $1 || $2';
        CREATE FUNCTION agent_space.upper(text) RETURNS text LANGUAGE sql AS 'SELECT $1';
        CREATE FUNCTION agent_space."right"(text, int) RETURNS text LANGUAGE sql
          AS 'SELECT $1';
    """, dbname='vault', user='agent')
    relay = fx.Relay([{'name': 'vault', 'env': 'prod',
                       'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                     extra={'policy': {'files': [str(work / 'policy.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def leaked(text):
    return sorted({f for f in FRAGMENTS if f in text})


def connect(user='agent'):
    import psycopg2
    return psycopg2.connect(host=fx.LOOPBACK, port=relay.port(), user=user, dbname='vault',
                            connect_timeout=10)


class Runner:
    """psycopg2, one connection, each attempt in a transaction rolled back."""

    def __init__(self, user='agent'):
        self.user = user
        self.conn = connect(user)

    def close(self):
        self.conn.close()

    def run(self, attempt):
        """(everything the client saw as text, an outcome to compare oracle pairs by)."""
        import io
        import psycopg2
        sql = attempt['sql'] if isinstance(attempt, dict) else attempt
        seen, outcome = [], None
        if self.conn.closed:
            self.conn = connect(self.user)
        self.conn.notices.clear()
        cur = self.conn.cursor()
        try:
            if isinstance(attempt, dict) and attempt.get('copy'):
                buf = io.StringIO()
                cur.copy_expert(sql, buf)
                seen.append(buf.getvalue())
                outcome = ('copy', buf.getvalue())
            else:
                cur.execute(sql)
                rows = cur.fetchall() if cur.description else []
                seen.append(repr(rows))
                outcome = ('rows', rows, cur.rowcount)
        except psycopg2.Error as e:
            d = e.diag
            seen += [str(e), str(d.message_detail), str(d.message_hint), str(d.context),
                     str(d.internal_query), str(d.column_name), str(d.table_name),
                     str(d.datatype_name), str(d.constraint_name)]
            outcome = ('error', e.pgcode)
        except Exception as e:  # noqa: BLE001 - e.g. the relay ended the session
            seen.append(repr(e))
            outcome = ('failure', type(e).__name__)
        seen += list(self.conn.notices)
        seen += [n.payload for n in self.conn.notifies]
        self.conn.notifies.clear()
        try:
            if not self.conn.closed:
                seen.append(str(self.conn.get_parameter_status('application_name')))
                self.conn.rollback()
                cur.execute('RESET ALL')
                self.conn.commit()
        except Exception:  # noqa: BLE001
            self.conn.close()
        return '\n'.join(seen), outcome


class AdversarialMaskingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.attempts = ma.attempts()

    def test_corpus_size_and_classes(self):
        self.assertGreaterEqual(len(self.attempts), 300)
        self.assertGreaterEqual(len({a['class'] for a in self.attempts}), 10)

    def test_no_planted_fragment_comes_back_through_psycopg2(self):
        runner = Runner()
        try:
            failures = []
            for a in self.attempts:
                text, _ = runner.run(a)
                if leaked(text):
                    failures.append((a['id'], a['sql'], leaked(text)[:3], text[:300]))
            self.assertEqual(failures, [], f'{len(failures)} attempts leaked')
        finally:
            runner.close()

    def test_oracle_pairs_answer_alike(self):
        runner = Runner()
        try:
            differ = []
            for a in (a for a in self.attempts if a['class'] == 'oracle'):
                _, yes = runner.run(a['sql'])
                _, no = runner.run(a['pair'])
                if yes != no:
                    differ.append((a['sql'], yes, no))
            self.assertEqual(differ, [])
            # The oracle is real: the owner, unmasked, tells the guesses apart.
            owner = Runner('owner')
            try:
                a = next(a for a in self.attempts if a['class'] == 'oracle')
                self.assertNotEqual(owner.run(a['sql'])[1], owner.run(a['pair'])[1])
            finally:
                owner.close()
        finally:
            runner.close()

    def test_unmasked_columns_come_back_unchanged(self):
        runner = Runner()
        try:
            _, out = runner.run('SELECT id, name, note FROM customers ORDER BY id')
            self.assertEqual(out[1], [(1, 'Alice Clear', 'public note one'),
                                      (2, 'Bob Clear', 'public note two'),
                                      (3, 'Carol Clear', 'public note three')])
            _, out = runner.run('SELECT o.note, c.name FROM orders o JOIN customers c '
                                'ON c.id = o.customer_id ORDER BY o.id')
            self.assertEqual(out[1], [('order note one', 'Alice Clear'),
                                      ('order note two', 'Bob Clear')])
            _, out = runner.run('SELECT * FROM ONLY customers WHERE id = 1')
            (row,) = out[1]
            self.assertEqual(row[0:2], (1, 'Alice Clear'))
            self.assertEqual(row[2], '****@hidden-domain.test')
            self.assertEqual(row[3:5], ('[redacted]', '[redacted]'))
            self.assertRegex(row[5], r'^h:[0-9a-f]{24}$')
            self.assertIsNone(row[6])
            self.assertEqual(row[7], '[redacted]')
            self.assertIsNone(row[8])
            self.assertEqual(row[9], 'public note one')
            # The hash is stable: it joins, and it is the one the result layer computes.
            _, out = runner.run('SELECT a.password_hash = b.password_hash, a.password_hash '
                                'FROM customers a JOIN customers_2024 b ON a.ssn = b.ssn '
                                'WHERE a.id = 1')
            self.assertEqual(out[1][0][0], True)
            self.assertEqual(out[1][0][1], row[5])
            # The owner, unmasked, reads the clear values through the relay.
            owner = Runner('owner')
            try:
                _, out = owner.run('SELECT password_hash FROM customers WHERE id = 1')
                self.assertEqual(out[1], [(P['password_hash'],)])
            finally:
                owner.close()
        finally:
            runner.close()

    def test_sql_functions_are_expanded_with_masked_values(self):
        runner = Runner()
        try:
            # The same masked values as the table read directly, unmasked columns unchanged.
            _, direct = runner.run('SELECT * FROM customers ORDER BY id')
            _, through = runner.run('SELECT * FROM leaky_rows() ORDER BY id')
            self.assertEqual(direct[0], 'rows')
            self.assertEqual(through[1], direct[1])
            _, out = runner.run('SELECT id, name, note FROM leaky_rows() WHERE id = 1')
            self.assertEqual(out[1], [(1, 'Alice Clear', 'public note one')])
            _, hashed = runner.run('SELECT password_hash FROM customers WHERE id = 1')
            for sql in ('SELECT leaky_sql()', 'SELECT harmless_wrapper()',
                        'SELECT get_password_hash(1)', 'SELECT get_password_hash_atomic(1)',
                        'SELECT ret_password_hash(1)', 'SELECT wrap_password_hash(1)',
                        'SELECT (pair_password_hash(1)).b',
                        'SELECT v FROM rows_password_hash() WHERE cid = 1'):
                with self.subTest(sql=sql):
                    _, out = runner.run(sql)
                    self.assertEqual(out[1], hashed[1], out)
            _, out = runner.run('SELECT get_ssn(1), get_api_key(1), get_email(1)')
            self.assertEqual(out[1], [('[redacted]', None, '****@hidden-domain.test')])
            # A strict function of NULL is NULL; an argument from the outer row.
            _, out = runner.run('SELECT pair_ssn(NULL) IS NULL, '
                                '(SELECT count(*) FROM customers c WHERE get_ssn(c.id) IS NULL)')
            self.assertEqual(out[1], [(True, 0)])
            _, out = runner.run('SELECT * FROM pair_card(2)')
            self.assertEqual(out[1], [(2, '[redacted]')])
            # What cannot be expanded is refused, naming the rule.
            for sql in ('SELECT rows_ssn()', 'SELECT definer_ssn()',
                        'SELECT * FROM rows_ssn() WITH ORDINALITY', 'SELECT get_ssn(i => 1)'):
                with self.subTest(sql=sql):
                    text, out = runner.run(sql)
                    self.assertEqual(out, ('error', '42501'), text)
                    self.assertIn('vault-', text)
        finally:
            runner.close()
        # The owner, unmasked, calls the same functions as written.
        owner = Runner('owner')
        try:
            _, out = owner.run('SELECT get_password_hash(1)')
            self.assertEqual(out[1], [(P['password_hash'],)])
        finally:
            owner.close()

    def test_refusals_name_the_rule_and_are_audited(self):
        runner = Runner()
        try:
            text, out = runner.run('SELECT leaky_plpgsql()')
            self.assertEqual(out, ('error', '42501'))
            self.assertIn('masking: calls public.leaky_plpgsql', text)
            self.assertIn('vault-null', text)
        finally:
            runner.close()
        ev = fx.wait_until(lambda: relay.events(
            'statement', lambda e: 'leaky_plpgsql' in e.get('statement', {}).get('sql', '')
            and e.get('decision', {}).get('action') == 'deny'), 20, 'refusal event')
        self.assertIn('vault-null', ev[-1]['decision']['rules'])
        rewritten = fx.wait_until(lambda: relay.events(
            'statement', lambda e: 'rewritten' in e.get('masking', {})), 20, 'rewritten event')
        self.assertTrue(any('public.customers.password_hash' in e['masking']['rewritten']
                            for e in rewritten))
        for e in relay.events():
            self.assertEqual(leaked(str(e)), [], e)

    def test_redefinitions_are_not_trusted_before_the_catalog_sees_them(self):
        import psycopg2
        body = 'SELECT password_hash FROM customers WHERE id = 1'
        conn = connect()
        try:
            cur = conn.cursor()
            # In one query string.
            with self.assertRaises(psycopg2.Error) as ctx:
                cur.execute('CREATE OR REPLACE FUNCTION agent_space.echo(text) RETURNS text '
                            f'LANGUAGE sql AS $${body}$$; SELECT agent_space.echo(\'x\')')
            self.assertEqual(leaked(str(ctx.exception)), [])
            conn.rollback()
            # In an open transaction: the catalog cannot see uncommitted definitions.
            cur.execute('CREATE OR REPLACE FUNCTION agent_space.echo(text) RETURNS text '
                        f'LANGUAGE sql AS $${body}$$')
            with self.assertRaises(psycopg2.Error) as ctx:
                cur.execute("SELECT agent_space.echo('x')")
            self.assertIn('schema change', str(ctx.exception))
            conn.rollback()
            # Committed: the catalog is read again and the new body is expanded, masked.
            conn.autocommit = True
            cur.execute('CREATE FUNCTION agent_space.peek() RETURNS text '
                        f'LANGUAGE sql AS $${body}$$')
            cur.execute('SELECT agent_space.peek()')
            self.assertRegex(cur.fetchone()[0], r'^h:[0-9a-f]{24}$')
            cur.execute('CREATE VIEW agent_space.peek_view AS '
                        'SELECT id, password_hash, ssn FROM public.customers')
            cur.execute('SELECT password_hash, ssn FROM agent_space.peek_view WHERE id = 1')
            row = cur.fetchone()
            self.assertRegex(row[0], r'^h:[0-9a-f]{24}$')
            self.assertEqual(row[1], '[redacted]')
        finally:
            conn.close()

    def test_redefinition_through_another_worker_is_seen(self):
        # The relay runs two workers, each with its own catalog; connections alternate between
        # them. A view over an unmasked table, read (and so cached) by every session, is
        # redefined over a masked column by one of them: the others must not trust the cached
        # definition.
        conns = [connect() for _ in range(3)]
        try:
            for c in conns:
                c.autocommit = True
            conns[0].cursor().execute(
                'CREATE VIEW agent_space.flip AS SELECT id, note AS v FROM public.orders')
            for c in conns[1:]:
                cur = c.cursor()
                cur.execute('SELECT v FROM agent_space.flip ORDER BY id')
                self.assertEqual(cur.fetchall(), [('order note one',), ('order note two',)])
            conns[0].cursor().execute(
                'CREATE OR REPLACE VIEW agent_space.flip AS '
                'SELECT id, ssn AS v FROM public.customers')
            for c in conns[1:]:
                cur = c.cursor()
                cur.execute('SELECT v FROM agent_space.flip WHERE id = 1')
                self.assertEqual(cur.fetchall(), [('[redacted]',)])
        finally:
            for c in conns:
                c.close()

    def test_pipelined_redefinition_is_not_trusted(self):
        # Parse/Bind/Execute of a redefinition and of a call, in one batch before any answer.
        body = 'SELECT api_key FROM customers WHERE id = 1'
        batch = b''
        for sql in ('CREATE OR REPLACE FUNCTION agent_space.echo(text) RETURNS text LANGUAGE sql '
                    f'AS $${body}$$', "SELECT agent_space.echo('x')"):
            batch += (parse_msg(sql) + bind_msg([0]) +
                      fx.frame(b'E', b'\0' + struct.pack('!i', 0)))
        with fx.RawPg(fx.LOOPBACK, relay.port()) as c:
            c.startup('agent', 'vault')
            c.messages.clear()
            c.send(batch + fx.frame(b'S'))
            while c.read_message()[0] != b'Z':
                pass
            out = b''.join(p for _, p in c.messages)
        self.assertEqual(leaked(out.decode('latin1')), [])
        self.assertIn(b'schema change', out)

    def test_application_name_with_personal_data_stays_out_of_the_audit_log(self):
        import psycopg2
        name = 'agent for zorroplantmail@hidden-domain.test'
        conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(), user='agent', dbname='vault',
                                connect_timeout=10, application_name=name)
        try:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute('SELECT 1')
            # Set by a statement: the value the server reports back is masked for the client too.
            cur.execute("SET application_name = 'set by zorroplantmail@hidden-domain.test'")
            # (The policy's detectors redact.)
            self.assertEqual(conn.get_parameter_status('application_name'), 'set by [redacted]')
            cur.execute('SELECT 2')
        finally:
            conn.close()
        events = fx.wait_until(lambda: [
            e for e in relay.events()
            if e.get('principal', {}).get('application_name', '').startswith(
                ('agent for ', 'set by '))], 20,
            'events of the session')
        kinds = {e['kind'] for e in events}
        self.assertIn('session_start', kinds)
        self.assertIn('statement', kinds)
        for e in relay.events():
            self.assertNotIn('zorroplantmail', str(e))

    def test_psql(self):
        chosen = self.attempts[::4]
        failures = []
        for a in chosen:
            res = fx.run([str(fx.PG_BIN / 'psql'), '-X', '-A', '-h', fx.LOOPBACK, '-p',
                          str(relay.port()), '-U', 'agent', '-d', 'vault', '-c',
                          'BEGIN', '-c', a['sql'], '-c', 'ROLLBACK'], check=False)
            text = res.stdout + res.stderr
            if leaked(text):
                failures.append((a['id'], a['sql'], leaked(text)[:3]))
        self.assertEqual(failures, [])
        self.assertGreater(len(chosen), 100)


class DriverAdversarialTest(unittest.TestCase):
    """pgjdbc (named server-side statements, binary transfer) and node-postgres (named
    extended-protocol queries, half of them asking for binary results)."""

    @classmethod
    def setUpClass(cls):
        import test_drivers as td
        td.require_driver_tools()
        cls.td = td
        attempts = [a for a in ma.attempts() if not a.get('copy')]
        cls.chosen = attempts[::3]
        cls.file = Path(tempfile.mkdtemp(prefix='dbwarden-maskdrv-')) / 'attempts.b64'
        cls.file.write_text(''.join(base64.b64encode(a['sql'].encode()).decode() + '\n'
                                    for a in cls.chosen))

    def check(self, cmd, label):
        res = fx.run(cmd, check=False, timeout=600,
                     env={'PATH': self.td.TOOL_PATH, 'LC_ALL': 'C.UTF-8', 'TZ': 'UTC'})
        lines = res.stdout.splitlines()
        self.assertEqual(len(lines), len(self.chosen), f'{label}: {res.stderr[-2000:]}')
        failures = []
        for a, line in zip(self.chosen, lines):
            text = base64.b64decode(line).decode('utf-8', 'replace')
            if leaked(text):
                failures.append((a['id'], a['sql'], leaked(text)[:3]))
        self.assertEqual(failures, [], label)
        return [base64.b64decode(line).decode('utf-8', 'replace') for line in lines]

    def test_pgjdbc(self):
        outs = self.check([self.td.JAVA, '-cp', str(self.td.JDBC_JAR),
                           str(REPO / 'tests' / 'drivers' / 'jdbc' / 'QueryRunner.java'),
                           fx.LOOPBACK, str(relay.port()), 'vault', 'agent', str(self.file)],
                          'pgjdbc')
        # Something ran: not every attempt is an error.
        self.assertGreater(sum(1 for o in outs if not o.startswith('ERROR')), len(outs) // 3)

    def test_node_postgres(self):
        outs = self.check([self.td.NODE, str(self.td.NODE_DIR / 'run_queries.js'), fx.LOOPBACK,
                           str(relay.port()), 'vault', 'agent', str(self.file)],
                          'node-postgres')
        self.assertGreater(sum(1 for o in outs if not o.startswith('ERROR')), len(outs) // 3)


def parse_msg(sql, name=b''):
    body = name + b'\0' + sql.encode() + b'\0' + struct.pack('!h', 0)
    return fx.frame(b'P', body)


def bind_msg(result_formats, portal=b'', stmt=b''):
    body = portal + b'\0' + stmt + b'\0' + struct.pack('!hh', 0, 0)
    body += struct.pack('!h', len(result_formats)) + b''.join(
        struct.pack('!h', f) for f in result_formats)
    return fx.frame(b'B', body)


class WireAdversarialTest(unittest.TestCase):
    """A raw client: binary result formats for arrays, records, bytea, jsonb and text, and a
    FunctionCall message."""

    def run_extended(self, sql, formats):
        with fx.RawPg(fx.LOOPBACK, relay.port()) as c:
            c.startup('agent', 'vault')
            c.messages.clear()
            c.send(parse_msg(sql) + bind_msg(formats) + fx.frame(b'D', b'P\0') +
                   fx.frame(b'E', b'\0' + struct.pack('!i', 0)) + fx.frame(b'S'))
            while True:
                t, payload = c.read_message()
                if t == b'Z':
                    break
            return b''.join(p for _, p in c.messages)

    def test_binary_results_carry_no_planted_value(self):
        for sql in ['SELECT ARRAY[password_hash, api_key, ssn] FROM customers',
                    'SELECT ROW(password_hash, card) FROM customers',
                    "SELECT convert_to(password_hash || ssn, 'UTF8') FROM customers",
                    'SELECT c FROM customers c', 'SELECT profile, tags FROM customers',
                    'SELECT to_tsvector(card) FROM customers',
                    "SELECT int4range(1, 2), ARRAY[ROW(ssn)] FROM customers"]:
            for formats in ([1], [0]):
                out = self.run_extended(sql, formats).decode('latin1')
                self.assertEqual(leaked(out), [], (sql, formats))

    def test_binary_result_of_text_passes_masked(self):
        out = self.run_extended('SELECT name, ssn FROM customers WHERE id = 1', [1])
        self.assertIn(b'Alice Clear', out)
        self.assertIn(b'[redacted]', out)

    def test_function_call_is_refused(self):
        with fx.RawPg(fx.LOOPBACK, relay.port()) as c:
            c.startup('agent', 'vault')
            c.messages.clear()
            # FunctionCall of textout (OID 47) on nothing in particular: refused while masking.
            c.send(fx.frame(b'F', struct.pack('!ihhih', 47, 0, 1, -1, 0)))
            out = b''
            while True:
                try:
                    t, payload = c.read_message()
                except Exception:  # noqa: BLE001 - the relay may end the session
                    break
                out += payload
                if t in (b'Z', None):
                    break
            self.assertTrue(re.search(rb'refus|not allowed|masking', out), out)


if __name__ == '__main__':
    unittest.main()
