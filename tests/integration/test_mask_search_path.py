"""Masking by reference resolves unqualified names with the session's own search_path.

`public.accounts` has a masked column; `scratch.accounts` is a different table of the same name
(another shape, clear test values). Which one `accounts` names depends on the search_path: the
value at connect (role and database defaults, startup options), SET / SET LOCAL / RESET /
DISCARD ALL, transactions that commit or roll back, set_config, and routines that may change it
out of sight. Through the relay as the masked principal `agent` (psycopg2 and psql), an
expression over `accounts.email` must come back masked whenever the server reads
public.accounts, and clear (unchanged) when it reads scratch.accounts. Where the relay cannot
know the value it refuses or masks; it never returns a planted value.

Run: cd tests/integration && DBWARDEN_BIN=../../build/default/agent/dbwarden \
         /usr/bin/python3 -m unittest -v test_mask_search_path
"""

import os
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

POLICY = """version: 1
masking:
  - id: accounts-email
    match: {principal: {db_user: [agent, agent_scratch]}}
    columns: ["public.accounts.email"]
    function: redact
"""

PLANTED = 'planted.secret.4417@vault.test'
SCRATCH = 'scratch-value-1@example.test'
# An expression, so the result layer (which masks by result column) cannot be what hides it.
PROBE = "SELECT email || '' AS e FROM accounts ORDER BY 1"

cluster = None
relay = None


def setUpModule():
    global cluster, relay
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    work = Path(tempfile.mkdtemp(prefix='dbwarden-maskpath-'))
    unittest.addModuleCleanup(lambda: subprocess.run(['rm', '-rf', str(work)]))
    (work / 'policy.yaml').write_text(POLICY)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    for user in ('owner', 'agent', 'agent_scratch'):
        cluster.create_user(user)
    cluster.create_db('vault', owner='owner')
    cluster.psql(f"""
        CREATE TABLE accounts (id int PRIMARY KEY, email text);
        INSERT INTO accounts VALUES (1, '{PLANTED}');
        CREATE SCHEMA scratch;
        CREATE TABLE scratch.accounts (id int, email text, extra int);
        INSERT INTO scratch.accounts VALUES (1, '{SCRATCH}', 7);
        GRANT USAGE ON SCHEMA scratch TO PUBLIC;
        GRANT SELECT ON ALL TABLES IN SCHEMA public, scratch TO PUBLIC;
    """, dbname='vault', user='owner')
    # A role whose default search_path puts scratch first.
    cluster.psql('ALTER ROLE agent_scratch IN DATABASE vault SET search_path = scratch, public',
                 dbname='vault')
    relay = fx.Relay([{'name': 'vault', 'env': 'prod',
                       'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                     extra={'policy': {'files': [str(work / 'policy.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def connect(user='agent', options=None, autocommit=True):
    import psycopg2
    kw = {'options': options} if options else {}
    conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(), user=user, dbname='vault',
                            connect_timeout=10, **kw)
    conn.autocommit = autocommit
    return conn


def probe(cur):
    """('rows', [...]) or ('error', sqlstate, message)."""
    import psycopg2
    try:
        cur.execute(PROBE)
        return ('rows', [r[0] for r in cur.fetchall()])
    except psycopg2.Error as e:
        return ('error', e.pgcode, str(e))


class SearchPathTest(unittest.TestCase):
    def assertMasked(self, out):
        self.assertNotIn(PLANTED, repr(out))
        self.assertEqual(out[0], 'rows', out)
        self.assertEqual(out[1], ['[redacted]'])

    def assertScratch(self, out):
        self.assertEqual(out, ('rows', [SCRATCH]))

    def assertNoLeak(self, out):
        # Refused or masked, never the planted value.
        self.assertNotIn(PLANTED, repr(out))
        if out[0] == 'error':
            self.assertEqual(out[1], '42501', out)
        else:
            self.assertIn(out[1], (['[redacted]'], [SCRATCH]), out)

    def test_the_value_at_connect_decides(self):
        conn = connect()
        try:
            self.assertMasked(probe(conn.cursor()))
        finally:
            conn.close()
        # The role's default (ALTER ROLE ... SET) puts scratch first: its table is read clear.
        conn = connect('agent_scratch')
        try:
            self.assertScratch(probe(conn.cursor()))
            cur = conn.cursor()
            cur.execute('SELECT email FROM public.accounts')
            self.assertEqual(cur.fetchall(), [('[redacted]',)])
        finally:
            conn.close()
        # Startup options.
        conn = connect(options='-c search_path=scratch')
        try:
            self.assertScratch(probe(conn.cursor()))
        finally:
            conn.close()
        conn = connect('agent_scratch', options='-c search_path=public,scratch')
        try:
            self.assertMasked(probe(conn.cursor()))
        finally:
            conn.close()

    def test_set_and_reset(self):
        conn = connect()
        try:
            cur = conn.cursor()
            for sql, expect in [
                ('SET search_path = scratch, public', self.assertScratch),
                ('SET search_path TO public', self.assertMasked),
                ('SET SCHEMA \'scratch\'', self.assertScratch),
                ('RESET search_path', self.assertMasked),
                ('SET SESSION search_path = "scratch"', self.assertScratch),
                ('SET search_path TO DEFAULT', self.assertMasked),
                ('SET search_path = scratch', self.assertScratch),
                ('DISCARD ALL', self.assertMasked),
                ('SET search_path = scratch', self.assertScratch),
                ('RESET ALL', self.assertMasked),
                ('SET search_path = "$user", public', self.assertMasked),
                # The name spelt with Unicode escapes is still search_path.
                ('SET U&"search\\005fpath" = scratch', self.assertScratch),
                ('SET search_path = public', self.assertMasked),
                # pg_catalog is searched first unless placed; nothing of it is named accounts.
                ('SET search_path = pg_catalog, scratch', self.assertScratch),
            ]:
                with self.subTest(sql=sql):
                    cur.execute(sql)
                    expect(probe(cur))
        finally:
            conn.close()

    def test_transactions(self):
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute('BEGIN')
            cur.execute('SET search_path = scratch')
            self.assertScratch(probe(cur))
            cur.execute('ROLLBACK')
            self.assertMasked(probe(cur))  # the rollback undid the SET
            cur.execute('BEGIN')
            cur.execute('SET LOCAL search_path = scratch')
            self.assertScratch(probe(cur))
            cur.execute('COMMIT')
            self.assertMasked(probe(cur))  # SET LOCAL ends with the transaction
            cur.execute('BEGIN')
            cur.execute('SET search_path = scratch')
            cur.execute('COMMIT')
            self.assertScratch(probe(cur))  # committed
            cur.execute('SET search_path = public')
            # A transaction that fails: COMMIT rolls it back.
            cur.execute('BEGIN')
            cur.execute('SET search_path = scratch')
            import psycopg2
            with self.assertRaises(psycopg2.Error):
                cur.execute('SELECT 1/0')
            cur.execute('COMMIT')
            self.assertNoLeak(probe(cur))
            cur.execute('SET search_path = public')
            self.assertMasked(probe(cur))
            # A savepoint rolled back: either value may hold as far as the relay follows.
            cur.execute('BEGIN')
            cur.execute('SAVEPOINT s')
            cur.execute('SET search_path = scratch')
            cur.execute('ROLLBACK TO SAVEPOINT s')
            self.assertNoLeak(probe(cur))
            cur.execute('COMMIT')
            self.assertNoLeak(probe(cur))
            cur.execute('SET search_path = public')
            self.assertMasked(probe(cur))
        finally:
            conn.close()

    def test_psycopg2_transaction_mode(self):
        # psycopg2's default: every statement inside a transaction it opens.
        conn = connect(autocommit=False)
        try:
            cur = conn.cursor()
            cur.execute('SET search_path TO scratch')
            self.assertScratch(probe(cur))
            conn.rollback()
            self.assertMasked(probe(cur))
            cur.execute('SET search_path TO scratch')
            conn.commit()
            self.assertScratch(probe(cur))
            conn.rollback()
        finally:
            conn.close()

    def test_set_in_one_query_string(self):
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute('SET search_path = scratch; ' + PROBE)
            self.assertEqual(cur.fetchall(), [(SCRATCH,)])
            cur.execute('SET search_path = public; ' + PROBE)
            self.assertEqual(cur.fetchall(), [('[redacted]',)])
        finally:
            conn.close()

    def test_values_the_relay_cannot_follow(self):
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute('SET search_path = scratch')
            # set_config, with a computed name too: not followed, so never trusted.
            for sql in ["SELECT set_config('search_path', 'public', false)",
                        "SELECT pg_catalog.set_config('search_' || 'path', 'public', false)",
                        "SELECT set_config('SEARCH_PATH', 'public', false)"]:
                with self.subTest(sql=sql):
                    cur.execute('SET search_path = scratch')
                    cur.execute(sql)
                    self.assertNoLeak(probe(cur))
            # A role change: "$user" names another schema.
            cur.execute('SET search_path = "$user", public')
            cur.execute('SET ROLE agent')
            self.assertNoLeak(probe(cur))
            cur.execute('RESET ROLE')
            cur.execute('SET search_path = public')
            self.assertMasked(probe(cur))
        finally:
            conn.close()
        # A routine that sets it, spelt so the relay cannot see it, run where no statement names
        # it (a trigger).
        cluster.psql("""
            CREATE TABLE agent_log (v int);
            CREATE FUNCTION agent_log_path() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN PERFORM pg_catalog.set_config('search_' || 'path', 'public', false);
                    RETURN NEW; END $$;
            CREATE TRIGGER agent_log_path BEFORE INSERT ON agent_log
              FOR EACH ROW EXECUTE FUNCTION agent_log_path();
            GRANT INSERT ON agent_log TO PUBLIC;
        """, dbname='vault', user='owner')
        try:
            conn = connect()
            try:
                cur = conn.cursor()
                cur.execute('SET search_path = scratch, public')
                cur.execute('INSERT INTO agent_log VALUES (1)')
                # The server's search_path is now public; the relay still follows scratch, and
                # writes the name it judged qualified: scratch's table is read, nothing masked
                # is read unmasked.
                self.assertScratch(probe(cur))
                cur.execute("SELECT e FROM (SELECT email || '' AS e FROM accounts) s")
                self.assertEqual(cur.fetchall(), [(SCRATCH,)])
                cur.execute('SHOW search_path')
                self.assertEqual(cur.fetchall(), [('public',)])
                # A qualified name needs no search_path.
                cur.execute('SELECT email FROM public.accounts')
                self.assertEqual(cur.fetchall(), [('[redacted]',)])
            finally:
                conn.close()
        finally:
            cluster.psql('DROP TABLE agent_log; DROP FUNCTION agent_log_path()',
                         dbname='vault', user='owner')

    def test_set_then_commit_in_one_query_string(self):
        # SET LOCAL ends at the COMMIT inside the string: the read after it is public's.
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute('SET search_path = public')
            out = None
            import psycopg2
            try:
                cur.execute('BEGIN; SET LOCAL search_path = scratch; COMMIT; ' + PROBE)
                out = ('rows', [r[0] for r in cur.fetchall()])
            except psycopg2.Error as e:
                out = ('error', e.pgcode, str(e))
            self.assertNoLeak(out)
        finally:
            conn.close()

    def test_extended_protocol_pipeline(self):
        def parse_bind_execute(sql):
            return (fx.frame(b'P', b'\0' + sql.encode() + b'\0' + struct.pack('!h', 0))
                    + fx.frame(b'B', b'\0\0' + struct.pack('!hhh', 0, 0, 0))
                    + fx.frame(b'D', b'P\0')
                    + fx.frame(b'E', b'\0' + struct.pack('!i', 0)))

        def rows(messages):
            out = []
            for kind, payload in messages:
                if kind == b'D':
                    n = struct.unpack('!i', payload[2:6])[0]
                    out.append(payload[6:6 + n].decode())
                if kind == b'E':
                    out.append(('error', fx.error_fields(payload).get('C')))
            return out

        def exchange(c, data):
            c.send(data)
            got = []
            while True:
                msg = c.read_message()
                got.append(msg)
                if msg[0] == b'Z':
                    return got

        with fx.RawPg(fx.LOOPBACK, relay.port()) as c:
            self.assertEqual(c.startup('agent', 'vault')[0], 'ready')
            # Each its own batch: exact.
            exchange(c, parse_bind_execute('SET search_path = scratch') + fx.frame(b'S'))
            self.assertEqual(rows(exchange(c, parse_bind_execute(PROBE) + fx.frame(b'S'))),
                             [SCRATCH])
            # SET and read in one pipeline: the read is judged before the SET has run, so
            # either value may hold: refused (the shapes differ), never clear.
            got = rows(exchange(c, parse_bind_execute('SET search_path = public')
                                + parse_bind_execute(PROBE) + fx.frame(b'S')))
            self.assertNotIn(PLANTED, repr(got))
            self.assertEqual(got, [('error', '42501')])
            # Answered now: exact again.
            self.assertEqual(rows(exchange(c, parse_bind_execute(PROBE) + fx.frame(b'S'))),
                             ['[redacted]'])

    def test_psql(self):
        script = ('SET search_path = scratch;\n' + PROBE + ';\n'
                  'BEGIN;\nSET LOCAL search_path = public;\n' + PROBE + ';\nCOMMIT;\n'
                  + PROBE + ';\n')
        out = subprocess.run(
            [str(fx.PG_BIN / 'psql'), '-X', '-A', '-t', '-h', fx.LOOPBACK, '-p', str(relay.port()),
             '-U', 'agent', '-d', 'vault', '-v', 'ON_ERROR_STOP=1'],
            input=script, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [line for line in out.stdout.splitlines() if line and line != 'SET'
                 and line not in ('BEGIN', 'COMMIT')]
        self.assertEqual(lines, [SCRATCH, '[redacted]', SCRATCH])
        self.assertNotIn(PLANTED, out.stdout + out.stderr)


if __name__ == '__main__':
    unittest.main()
