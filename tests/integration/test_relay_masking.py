"""Result masking through the relay with the shipped pii pack: psql, psycopg2 and libpq (binary
results) see masked values for plain selects, aliases, joins, views, SELECT *, expressions, JSON,
COPY TO STDOUT and a unique-violation error; a pii-readers principal sees clear values; values
that only look like PII are left alone; audit events count what was masked, never the values.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_masking.py -v
"""

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PII_PACK = REPO / 'policy' / 'packs' / 'pii.yaml'
PSQL = str(fx.PG_BIN / 'psql')

GROUPS = """version: 1
principals:
  groups:
    pii-readers: [{db_user: [lead]}]
"""

EMAIL = 'alice.smith@example.com'
CARD = '4111 1111 1111 1111'
SSN = '123-45-6789'
PHONE = '+1 415 555 0100'
AWS = 'AKIAIOSFODNN7EXAMPLE'
UUID = '123e4567-e89b-12d3-a456-426614174000'
BAD_LUHN = '4111111111111112'

cluster = None
relay = None
workdir = None


def setUpModule():
    global cluster, relay, workdir
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    workdir = Path(tempfile.mkdtemp(prefix='dbwarden-masking-'))
    unittest.addModuleCleanup(lambda: subprocess.run(['rm', '-rf', str(workdir)]))
    (workdir / 'groups.yaml').write_text(GROUPS)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    for user in ('app', 'lead'):
        cluster.create_user(user)
    cluster.create_db('shop', owner='app')
    cluster.psql(f"""
        CREATE TABLE customers (id int PRIMARY KEY, name text, email text UNIQUE, card text,
                                ssn text, phone text, notes text, api_key text, profile jsonb,
                                cc_number bigint);
        INSERT INTO customers VALUES
          (1, 'Alice', '{EMAIL}', '{CARD}', '{SSN}', '{PHONE}',
           'uuid {UUID} on 2024-01-15, ref {BAD_LUHN}, qty 42', '{AWS}',
           '{{"contact": "{EMAIL}", "tier": "gold"}}', 4111111111111111),
          (2, 'Bob', 'bob@example.org', '5500 0000 0000 0004', '234-56-7890', '+44 20 7946 0958',
           'call me at bob@example.org', NULL, NULL, NULL);
        ALTER TABLE customers ADD COLUMN password_hash text;
        UPDATE customers SET password_hash = '$2b$12$' || md5(id::text);
        CREATE TABLE orders (id int, customer_id int, total numeric);
        INSERT INTO orders VALUES (10, 1, 99.5), (11, 2, 12);
        CREATE VIEW contacts AS SELECT id, email AS contact FROM customers;
        GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO lead;
    """, dbname='shop', user='app')
    # The tables tests/drivers' scripted sessions expect (they also delete from them), one
    # database per driver.
    for db in ('drivers_jdbc', 'drivers_node'):
        cluster.create_db(db, owner='app')
        cluster.psql("""
            CREATE TABLE customers (id int PRIMARY KEY, email text);
            INSERT INTO customers SELECT g, 'c' || g || '@example.com'
              FROM generate_series(1, 50) g;
            CREATE TABLE scratch (id int);
        """, dbname=db, user='app')
    upstream = f'{fx.LOOPBACK}:{cluster.port}'
    relay = fx.Relay([{'name': 'shop', 'env': 'prod', 'upstream': upstream},
                      # A catalog login the server refuses: columns from tables are withheld.
                      {'name': 'shop-nocatalog', 'env': 'prod', 'upstream': upstream,
                       'catalog': {'user': 'no_such_role'}}],
                     extra={'policy': {'files': [str(PII_PACK), str(workdir / 'groups.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def connect(user='app', target='shop'):
    import psycopg2
    conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(target), user=user, dbname='shop',
                            connect_timeout=10)
    conn.autocommit = True
    return conn


def rows(sql, user='app', target='shop'):
    conn = connect(user, target)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def psql(sql, user='app'):
    res = fx.run([PSQL, '-X', '-A', '-t', '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U', user,
                  '-d', 'shop', '-v', 'ON_ERROR_STOP=0', '-c', sql], check=False)
    return res.stdout, res.stderr


class MaskingTest(unittest.TestCase):
    def test_plain_select_masks_columns_by_rule(self):
        (email, card, ssn, phone, name), = rows(
            'SELECT email, card, ssn, phone, name FROM customers WHERE id = 1')
        self.assertEqual(email, '****@example.com')
        self.assertEqual(card, '****1111')
        self.assertEqual(ssn, '****6789')
        self.assertEqual(phone, '****0100')
        self.assertEqual(name, 'Alice')

    def test_alias_join_star_view_expression_json(self):
        self.assertEqual(rows('SELECT email AS e FROM customers WHERE id = 1'),
                         [('****@example.com',)])
        self.assertEqual(rows('SELECT o.total, c.email FROM orders o JOIN customers c '
                              'ON c.id = o.customer_id WHERE o.id = 10')[0][1], '****@example.com')
        star = rows('SELECT * FROM customers WHERE id = 1')[0]
        self.assertNotIn(EMAIL, [str(v) for v in star])
        self.assertEqual(star[1], 'Alice')
        self.assertEqual(star[7], '[redacted]')  # api_key: a secrets column
        self.assertIsNone(star[9])  # cc_number bigint: a typed client must still parse the row
        # A view renames the column: the detectors still find the address.
        self.assertEqual(rows('SELECT contact FROM contacts WHERE id = 1'),
                         [('****@example.com',)])
        self.assertEqual(rows('SELECT lower(email) FROM customers WHERE id = 1'),
                         [('****@example.com',)])
        profile = rows('SELECT profile FROM customers WHERE id = 1')[0][0]
        self.assertEqual(profile, {'contact': '****@example.com', 'tier': 'gold'})
        # Inside longer text, in place.
        self.assertEqual(rows('SELECT notes FROM customers WHERE id = 2'),
                         [('call me at ****@example.org',)])

    def test_look_alikes_are_not_masked(self):
        (notes,), = rows('SELECT notes FROM customers WHERE id = 1')
        self.assertEqual(notes, f'uuid {UUID} on 2024-01-15, ref {BAD_LUHN}, qty 42')
        self.assertEqual(rows("SELECT '2024-01-15'::text, 'v1.2.3', '12345'"),
                         [('2024-01-15', 'v1.2.3', '12345')])

    def test_exempt_principal_sees_clear_values(self):
        self.assertEqual(rows('SELECT email, card FROM customers WHERE id = 1', user='lead'),
                         [(EMAIL, CARD)])

    def test_psql_and_copy_to_stdout(self):
        out, err = psql('SELECT email FROM customers ORDER BY id')
        self.assertEqual(out.split(), ['****@example.com', '****@example.org'], err)
        out, err = psql('COPY customers (id, email, notes) TO STDOUT')
        self.assertNotIn(EMAIL, out, err)
        self.assertNotIn('bob@example.org', out)
        self.assertIn('****@example.com', out)
        out, err = psql('COPY customers TO STDOUT')
        self.assertNotIn(EMAIL, out, err)
        self.assertNotIn(AWS, out)
        self.assertIn('Alice', out)

    def test_copy_output_is_masked_in_the_statement_whatever_its_shape(self):
        # COPY table TO runs as COPY (SELECT ... masked ...) TO: the column list, a query's
        # output, CSV, other delimiters, quotes and a header line all carry masked values, field
        # for field. password_hash has a column rule and content no detector knows.
        out, err = psql('COPY customers (password_hash, id) TO STDOUT')
        self.assertEqual(out.splitlines(), ['[redacted]\t1', '[redacted]\t2'], err)
        out, err = psql('COPY (SELECT password_hash, id FROM customers ORDER BY id) TO STDOUT')
        self.assertEqual(out.splitlines(), ['[redacted]\t1', '[redacted]\t2'], err)
        out, err = psql('COPY customers (id, password_hash, email) TO STDOUT (FORMAT csv)')
        self.assertEqual(sorted(out.splitlines()),
                         ['1,[redacted],****@example.com', '2,[redacted],****@example.org'], err)
        out, err = psql("COPY customers (id, email) TO STDOUT (FORMAT csv, HEADER 'OFF')")
        self.assertEqual(sorted(out.splitlines()), ['1,****@example.com', '2,****@example.org'],
                         err)
        out, err = psql('COPY customers (id, email) TO STDOUT (FORMAT csv, HEADER)')
        self.assertEqual(out.splitlines()[0], 'id,email', err)
        out, err = psql("COPY customers (id, email, password_hash) TO STDOUT (DELIMITER '|')")
        self.assertIn('1|****@example.com|[redacted]', out.splitlines(), err)
        out, err = psql("COPY customers TO STDOUT WITH CSV DELIMITER ';' QUOTE '\"'")
        self.assertNotIn(EMAIL, out, err)
        self.assertNotIn(AWS, out)
        self.assertNotIn('$2b$12$', out)
        self.assertIn('Alice', out)
        # The plain text format is still masked field by field.
        out, err = psql('COPY customers (id, email) TO STDOUT')
        self.assertIn('1\t****@example.com', out.splitlines(), err)

    def test_notify_payload_and_system_columns(self):
        conn = connect()
        try:
            with conn.cursor() as cur:
                cur.execute('LISTEN contacts')
                cur.execute(f"NOTIFY contacts, 'new contact {EMAIL}'")
                cur.execute('SELECT 1')
                conn.poll()
                self.assertEqual([n.payload for n in conn.notifies],
                                 ['new contact ****@example.com'])
                # System columns (xmin) are not user data: resolved, not withheld.
                cur.execute('SELECT xmin, email FROM customers WHERE id = 1')
                xmin, email = cur.fetchone()
                self.assertIsNotNone(xmin)
                self.assertEqual(email, '****@example.com')
        finally:
            conn.close()

    def test_notice_message_is_masked(self):
        # RAISE NOTICE with row data: NoticeResponse fields pass through the detectors too.
        out, err = psql(f"DO $$BEGIN RAISE NOTICE 'contact %', '{EMAIL}'; END$$")
        self.assertIn('NOTICE:  contact ****@example.com', err, out)
        self.assertNotIn(EMAIL, err)

    def test_unique_violation_detail_is_masked(self):
        out, err = psql(f"INSERT INTO customers (id, email) VALUES (3, '{EMAIL}')")
        self.assertIn('duplicate key value', err)
        self.assertNotIn(EMAIL, err)
        self.assertIn('****@example.com', err)

    def test_libpq_binary_results(self):
        lib = ctypes.CDLL(ctypes.util.find_library('pq') or 'libpq.so.5')
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQexecParams.restype = ctypes.c_void_p
        lib.PQexecParams.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_int]
        for name in ('PQgetvalue',):
            getattr(lib, name).restype = ctypes.POINTER(ctypes.c_char)
        lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetlength.argtypes = lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                               ctypes.c_int]
        lib.PQresultStatus.argtypes = lib.PQntuples.argtypes = [ctypes.c_void_p]
        lib.PQclear.argtypes = lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        conn = lib.PQconnectdb(f'host={fx.LOOPBACK} port={relay.port()} user=app dbname=shop'
                               .encode())
        self.assertEqual(lib.PQstatus(conn), 0)
        try:
            res = lib.PQexecParams(conn, b'SELECT id, email, cc_number, profile FROM customers '
                                         b'WHERE id = 1', 0, None, None, None, None, 1)
            self.assertEqual(lib.PQresultStatus(res), 2)  # PGRES_TUPLES_OK
            self.assertEqual(lib.PQntuples(res), 1)

            def value(col):
                if lib.PQgetisnull(res, 0, col):
                    return None
                return lib.PQgetvalue(res, 0, col)[:lib.PQgetlength(res, 0, col)]
            self.assertEqual(value(0), (1).to_bytes(4, 'big'))  # int4, untouched
            self.assertEqual(value(1), b'****@example.com')     # text: masked as text
            self.assertIsNone(value(2))                         # bigint with a rule: NULL
            jsonb = value(3)
            self.assertEqual(jsonb[:1], b'\x01')                # jsonb version byte kept
            self.assertNotIn(EMAIL.encode(), jsonb)
            self.assertIn(b'****@example.com', jsonb)
            lib.PQclear(res)
        finally:
            lib.PQfinish(conn)

    def test_catalog_follows_ddl(self):
        conn = connect()
        try:
            with conn.cursor() as cur:
                # DDL through the relay: the next statement re-reads the catalog.
                cur.execute("CREATE TABLE leads (id int, email text)")
                cur.execute("INSERT INTO leads VALUES (1, 'x.y@example.net')")
                cur.execute('SELECT email FROM leads')
                self.assertEqual(cur.fetchall(), [('****@example.net',)])
                # A table created behind the relay's back: the statement that names it makes
                # the relay read the catalog again before judging it, so it is masked by
                # reference at once.
                cluster.psql("CREATE TABLE prospects (id int, email text, note text); "
                             "INSERT INTO prospects VALUES (1, 'p@example.com', 'hello')",
                             dbname='shop', user='app')
                cur.execute('SELECT email, note FROM prospects')
                self.assertEqual(cur.fetchall(), [('****@example.com', 'hello')])
                cur.execute('SELECT email, note FROM prospects')
                self.assertEqual(cur.fetchall(), [('****@example.com', 'hello')])
        finally:
            conn.close()
        prospects = fx.wait_until(lambda: relay.events(
            'statement', lambda e: 'prospects' in e.get('statement', {}).get('sql', '')
            and 'masking' in e), 20, 'prospects events')
        self.assertEqual([e['masking']['rewritten'] for e in prospects],
                         [['public.prospects.email']] * 2, prospects)

    def test_unreadable_catalog_fails_closed(self):
        # Without a catalog masked columns cannot be told apart: statements that read a relation
        # or call a function are refused; what drivers send at connect still runs, and the
        # detectors still mask expressions.
        import psycopg2
        with self.assertRaises(psycopg2.Error) as ctx:
            rows("SELECT name, email FROM customers WHERE id = 1", target='shop-nocatalog')
        self.assertIn('could not be read', str(ctx.exception))
        self.assertEqual(rows("SELECT 'x@example.com'", target='shop-nocatalog'),
                         [('****@example.com',)])

    def test_audit_counts_masking_without_values(self):
        rows("SELECT email, card FROM customers WHERE name = 'Alice'")

        def masked(e):
            return ('masking' in e and "name = $1" in e.get('statement', {}).get('sql', '')
                    and 'card' in e.get('statement', {}).get('sql', ''))
        events = fx.wait_until(lambda: relay.events('statement', masked), 20, 'masked event')
        m = events[-1]['masking']
        # Read through masking by reference: the statement ran rewritten, masked in SQL.
        self.assertIn('public.customers.email', m['rewritten'])
        self.assertEqual(m['detectors'].get('payment_card'), 1)  # no column rule for "card"
        self.assertEqual(m['withheld'], 0)
        for e in relay.events():
            self.assertNotIn(EMAIL, str(e))
            self.assertNotIn('4111 1111', str(e))


class DriverMaskingTest(unittest.TestCase):
    """pgjdbc and node-postgres run prepared statements: a statement described once at prepare
    time and executed many times (pgjdbc switches to a server-side statement, and binary
    transfer, after five executions) must be masked on every execution."""

    @classmethod
    def setUpClass(cls):
        import test_drivers as td
        td.require_driver_tools()
        cls.td = td

    def run_driver(self, cmd, label):
        env = {'PATH': self.td.TOOL_PATH, 'LC_ALL': 'C.UTF-8', 'TZ': 'UTC',
               'HOME': os.environ.get('HOME', '/tmp')}
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                              timeout=240, stdin=subprocess.DEVNULL)
        steps = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
        selects = [st for st in steps if st['step'] == 'select']
        self.assertEqual(len(selects), 10, f'{label}: {proc.stdout[-3000:]}\n{proc.stderr[-2000:]}')
        for st in selects:
            self.assertTrue(st['ok'], st)
            self.assertEqual(st['email'], '****@example.com', st)

    def test_jdbc_prepared_statements_are_masked(self):
        self.run_driver([self.td.JAVA, '-cp', self.td.JDBC_JAR, self.td.JAVA_PROGRAM, fx.LOOPBACK,
                         relay.port(), 'drivers_jdbc', 'app', 'jdbc-masking'], 'DriverCheck.java')

    def test_node_prepared_statements_are_masked(self):
        self.run_driver([self.td.NODE, self.td.NODE_PROGRAM, fx.LOOPBACK, relay.port(),
                         'drivers_node', 'app', 'node-masking'], 'check.js')


class HashAndResultColumnsTest(unittest.TestCase):
    def test_hash_is_keyed_stable_and_result_columns_cover_expressions(self):
        # `hash` under the generated key file: the same value hashes alike across sessions and
        # restarts (joins on masked output work); `result_columns` masks an expression by name.
        policy = workdir / 'hashing.yaml'
        policy.write_text('version: 1\nmasking:\n  - id: hashed\n    columns: ["*.email"]\n'
                          '    result_columns: ["secret_*"]\n    function: hash\n')
        own = fx.Relay([{'name': 'shop', 'env': 'prod',
                         'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                       extra={'policy': {'files': [str(policy)]}})
        self.addCleanup(own.close)
        own.start()

        def one(sql):
            import psycopg2
            conn = psycopg2.connect(host=fx.LOOPBACK, port=own.port(), user='app', dbname='shop',
                                    connect_timeout=10)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchone()[0]
            finally:
                conn.close()

        first = one('SELECT email FROM customers WHERE id = 1')
        self.assertRegex(first, r'^h:[0-9a-f]{24}$')
        self.assertEqual(one('SELECT email AS e FROM customers WHERE id = 1'), first)
        self.assertNotEqual(one('SELECT email FROM customers WHERE id = 2'), first)
        expr = one(f"SELECT '{EMAIL}'::text AS secret_contact")
        self.assertEqual(expr, first, 'the same value hashes alike from a column or an expression')
        self.assertEqual(one("SELECT 'plain'::text AS other"), 'plain')
        key = Path(own.state_dir) / 'masking-hash.key'
        self.assertEqual(key.stat().st_mode & 0o777, 0o600)
        self.assertEqual(key.stat().st_size, 32)
        own.stop()
        own.start()
        self.assertEqual(one('SELECT email FROM customers WHERE id = 1'), first,
                         'the hash changed across a restart')


if __name__ == '__main__':
    unittest.main()
