"""The statement gate through the relay, proven against a real PostgreSQL 15: FunctionCall
(fastpath) messages judged as calls of their function, SQL-level names (prepared statements and
cursors the relay did or did not see), replication connections, startup options and parameters
judged as the SETs they are, settings that change how the server reads text
(standard_conforming_strings, client_encoding), and the coverage matrix's refusals of messages that
are not valid in their phase. Every case asserts wire bytes, table contents and audit events.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_gate_protocol.py -v
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

REPO = Path(__file__).resolve().parents[2]
GUARDRAILS = REPO / 'policy' / 'packs' / 'guardrails.yaml'
PII_PACK = REPO / 'policy' / 'packs' / 'pii.yaml'
PSQL = str(fx.PG_BIN / 'psql')

DB = 'gatedb'
# Agents are named by application_name; every db user but `masked` reads clear values, so the pii
# pack's masking applies to `masked` only.
SITE_POLICY = """version: 1
principals:
  agents:
    - application_name: ["ai-*"]
  groups:
    pii-readers: [{db_user: [app, postgres, pwuser]}]
"""
ALLOW_REPLICATION = """version: 1
rules:
  - id: allow-replication
    match:
      statement: {commands: [REPLICATION]}
    action: allow
"""
# The planted secrets: no byte string of them may reach the masked principal.
SECRET_FRAGMENT = b'SECRET'
PASSWORD_HASHES = {1: 'hash-SECRET-1234', 2: 'hash-SECRET-5678'}

cluster = None
relay = None
workdir = None


def setUpModule():
    global cluster, relay, workdir
    fx.require_postgres()
    fx.dbwarden_bin()
    workdir = Path(tempfile.mkdtemp(prefix='dbwarden-gate-'))
    unittest.addModuleCleanup(lambda: subprocess.run(['rm', '-rf', str(workdir)]))
    (workdir / 'site.yaml').write_text(SITE_POLICY)
    (workdir / 'allow-replication.yaml').write_text(ALLOW_REPLICATION)
    # pwuser must answer a SCRAM exchange (the coverage matrix's authentication phase); everyone
    # else is trusted. Logical replication connections match `all` like any database.
    cluster = fx.PgCluster(hba_lines=[f'host all pwuser {fx.LOOPBACK}/32 scram-sha-256',
                                      f'host all all {fx.LOOPBACK}/32 trust'])
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_user('masked')
    cluster.create_user('pwuser', password='pw-s3cret')
    cluster.create_db(DB, owner='app')
    rows = ', '.join(f"({i}, 'Customer {i}', '{h}')" for i, h in PASSWORD_HASHES.items())
    cluster.psql(f"""
        CREATE TABLE customers (id int PRIMARY KEY, name text, password_hash text);
        INSERT INTO customers VALUES {rows};
        GRANT SELECT ON customers TO masked;
        CREATE TABLE t_hidden (id int);
        INSERT INTO t_hidden VALUES (1), (2), (3);
        -- Opens a cursor the relay never sees declared: its name comes from the function body.
        CREATE FUNCTION open_hidden() RETURNS refcursor LANGUAGE plpgsql AS $$
        DECLARE c refcursor := 'hidden';
        BEGIN
          OPEN c FOR SELECT id FROM t_hidden;
          RETURN c;
        END $$;
    """, dbname=DB, user='app')
    upstream = f'{fx.LOOPBACK}:{cluster.port}'
    relay = fx.Relay([{'name': 'prod', 'env': 'prod', 'upstream': upstream},
                      {'name': 'dev', 'env': 'dev', 'upstream': upstream}],
                     extra={'policy': {'files': [str(GUARDRAILS), str(PII_PACK),
                                                 str(workdir / 'site.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


# ---------------------------------------------------------------------------------------------
# A raw frontend with every message the gate judges or tracks, built on the fixture's RawPg
# (socket, framing, authentication).


class WireClient(fx.RawPg):
    """Frontend messages by hand and backend messages as (type byte, body) lists."""

    @classmethod
    def connect(cls, port, user='app', database=DB, **params):
        """A session past ReadyForQuery (trust auth); fails the test otherwise."""
        client = cls(fx.LOOPBACK, port)
        status, fields = client.startup(user, database, **params)
        if status != 'ready':
            client.close()
            raise AssertionError(f'startup failed: {status} {fields}')
        return client

    @classmethod
    def open(cls, port):
        return cls(fx.LOOPBACK, port)

    # -- frontend messages (bytes; send() or send_all() them)

    @staticmethod
    def cstr(value):
        return (value.encode() if isinstance(value, str) else value) + b'\0'

    @classmethod
    def query_msg(cls, sql):
        return fx.frame(b'Q', cls.cstr(sql))

    @classmethod
    def parse_msg(cls, name, sql, param_oids=()):
        return fx.frame(b'P', cls.cstr(name) + cls.cstr(sql) +
                        struct.pack('!h', len(param_oids)) +
                        b''.join(struct.pack('!I', o) for o in param_oids))

    @classmethod
    def bind_msg(cls, portal, statement, params=(), result_formats=(0,)):
        body = cls.cstr(portal) + cls.cstr(statement) + struct.pack('!h', 0)
        body += struct.pack('!h', len(params))
        for p in params:
            body += struct.pack('!i', -1) if p is None else struct.pack('!i', len(p)) + p
        body += struct.pack('!h', len(result_formats))
        body += b''.join(struct.pack('!h', f) for f in result_formats)
        return fx.frame(b'B', body)

    @classmethod
    def describe_msg(cls, kind, name):
        return fx.frame(b'D', kind.encode() + cls.cstr(name))

    @classmethod
    def execute_msg(cls, portal='', max_rows=0):
        return fx.frame(b'E', cls.cstr(portal) + struct.pack('!i', max_rows))

    @staticmethod
    def sync_msg():
        return fx.frame(b'S')

    @staticmethod
    def function_call_msg(oid, args, result_format=0):
        """FunctionCall: every argument in text format (one format code for all)."""
        body = struct.pack('!Ihh', oid, 1, 0) + struct.pack('!h', len(args))
        for a in args:
            body += struct.pack('!i', -1) if a is None else struct.pack('!i', len(a)) + a
        body += struct.pack('!h', result_format)
        return fx.frame(b'F', body)

    # -- round trips

    def read_until_ready(self):
        """Backend messages up to and including ReadyForQuery; fails on EOF before it."""
        out = []
        while True:
            msg = self.read_message()
            if msg is None:
                raise AssertionError(f'connection closed before ReadyForQuery; got {out}')
            out.append(msg)
            if msg[0] == b'Z':
                return out

    def query(self, sql):
        self.send(self.query_msg(sql))
        return self.read_until_ready()

    def function_call(self, oid, args):
        self.send(self.function_call_msg(oid, args))
        return self.read_until_ready()

    # -- decoding

    @staticmethod
    def types(msgs):
        return [t for t, _ in msgs]

    @staticmethod
    def errors(msgs):
        return [fx.error_fields(body) for t, body in msgs if t == b'E']

    @staticmethod
    def data_row(body):
        (n,), pos, values = struct.unpack_from('!h', body), 2, []
        for _ in range(n):
            (length,) = struct.unpack_from('!i', body, pos)
            pos += 4
            if length < 0:
                values.append(None)
            else:
                values.append(body[pos:pos + length])
                pos += length
        return values

    @classmethod
    def rows(cls, msgs):
        return [cls.data_row(body) for t, body in msgs if t == b'D']

    @staticmethod
    def row_description(body):
        (n,), pos, names = struct.unpack_from('!h', body), 2, []
        for _ in range(n):
            end = body.index(b'\0', pos)
            names.append(body[pos:end].decode())
            pos = end + 1 + 18  # table OID, attnum, type OID, size, typmod, format
        return names

    @staticmethod
    def function_result(body):
        (length,) = struct.unpack_from('!i', body)
        return None if length < 0 else body[4:4 + length]


# ---------------------------------------------------------------------------------------------
# Helpers


def seed(table, n=3):
    cluster.psql(f'DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int); '
                 f'INSERT INTO {table} SELECT generate_series(1, {n})', dbname=DB, user='app')


def count(table):
    return int(cluster.query_value(f'SELECT count(*) FROM {table}', dbname=DB))


def function_oid(signature):
    return int(cluster.query_value(f"SELECT '{signature}'::regprocedure::oid", dbname=DB))


def by_app(app, *more):
    """An audit predicate: the principal's application_name is `app` and every `more` holds."""
    return lambda e: fx.principal(e).get('application_name') == app and all(p(e) for p in more)


def protocol_is(protocol):
    return lambda e: (e.get('statement') or {}).get('protocol') == protocol


def commands_are(*commands):
    return lambda e: (e.get('statement') or {}).get('commands') == list(commands)


def message_of(fields):
    return fields.get('M', '') + ' ' + fields.get('D', '')


def psql_through(target, app, sql, **env):
    return subprocess.run([PSQL, '-X', '-A', '-t', '-h', fx.LOOPBACK, '-p',
                           str(relay.port(target)), '-U', 'app', '-d', DB, '-c', sql],
                          capture_output=True, text=True, timeout=60,
                          env=dict(fx.CLIENT_ENV, PGAPPNAME=app, **env))


class GateTestCase(unittest.TestCase):
    def client(self, target, app, user='app', **params):
        c = WireClient.connect(relay.port(target), user=user, application_name=app, **params)
        self.addCleanup(c.close)
        return c

    def assert_refused(self, msgs, *fragments, sqlstate='42501'):
        """One ErrorResponse then ReadyForQuery, the error naming every fragment."""
        self.assertEqual(WireClient.types(msgs)[-1], b'Z', msgs)
        errors = WireClient.errors(msgs)
        self.assertEqual(len(errors), 1, msgs)
        self.assertEqual(errors[0].get('C'), sqlstate, errors[0])
        for f in fragments:
            self.assertIn(f, message_of(errors[0]))
        return errors[0]

    def assert_one(self, msgs, value):
        """A result of exactly one row with one value."""
        self.assertEqual(WireClient.errors(msgs), [])
        self.assertEqual(WireClient.rows(msgs), [[value]], msgs)

    def assert_no_secret(self, msgs):
        for t, body in msgs:
            self.assertNotIn(SECRET_FRAGMENT, body, f'{t!r} carried a planted value: {body!r}')


# ---------------------------------------------------------------------------------------------
# 1. FunctionCall (libpq's PQfn, the fastpath protocol)


class FastpathTest(GateTestCase):
    def test_human_on_dev_calls_a_function(self):
        # pg_catalog.upper cannot answer a FunctionCall on PostgreSQL 15 (fastpath calls carry no
        # collation: the server's own 42P22 "could not determine which collation to use"), so the
        # forwarded result is shown with reverse(text); upper is shown forwarded, not refused.
        c = self.client('dev', 'fp-human-dev')
        msgs = c.function_call(function_oid('pg_catalog.reverse(text)'), [b'abc'])
        self.assertEqual(WireClient.types(msgs), [b'V', b'Z'], msgs)
        self.assertEqual(WireClient.function_result(msgs[0][1]), b'cba')
        msgs = c.function_call(function_oid('pg_catalog.upper(text)'), [b'abc'])
        self.assert_refused(msgs, 'collation', sqlstate='42P22')
        self.assertNotIn('dbwarden', message_of(WireClient.errors(msgs)[0]))
        evs = relay.wait_for(by_app('fp-human-dev', protocol_is('fastpath')), kind='statement',
                             count=2)
        for ev, fn in zip(evs, ('pg_catalog.reverse', 'pg_catalog.upper')):
            self.assertEqual(ev['statement']['commands'], ['FASTPATH'])
            self.assertIn(fn, ev['statement']['sql'])
            self.assertEqual(ev['decision']['action'], 'allow')
            self.assertFalse(ev['decision']['enforced'])
        self.assertEqual(evs[1]['result']['sqlstate'], '42P22')

    def test_fastpath_event_names_the_function(self):
        oid = function_oid('pg_catalog.upper(text)')
        c = self.client('dev', 'fp-human-dev-fn')
        msgs = c.function_call(oid, [b'xyz'])
        self.assertEqual(WireClient.types(msgs), [b'E', b'Z'], msgs)  # the server's 42P22
        ev = relay.wait_for(by_app('fp-human-dev-fn', protocol_is('fastpath')),
                            kind='statement')[0]
        self.assertIn('pg_catalog.upper', ev['statement']['sql'])
        self.assertIn(str(oid), ev['statement']['sql'])
        self.assertEqual(ev['statement'].get('functions'), ['pg_catalog.upper'], ev['statement'])

    def test_agent_on_prod_is_refused_and_session_goes_on(self):
        c = self.client('prod', 'ai-fastpath')
        msgs = c.function_call(function_oid('pg_catalog.upper(text)'), [b'abc'])
        self.assertEqual(WireClient.types(msgs), [b'E', b'Z'], msgs)
        self.assert_refused(msgs, 'prod-fastpath-agent')
        self.assert_one(c.query('SELECT 1'), b'1')
        ev = relay.wait_for(by_app('ai-fastpath', protocol_is('fastpath')), kind='statement')[0]
        self.assertEqual(ev['statement']['commands'], ['FASTPATH'])
        self.assertEqual(ev['decision']['action'], 'deny')
        self.assertEqual(ev['decision']['rules'], ['prod-fastpath-agent'])
        self.assertTrue(ev['decision']['enforced'])

    def test_server_file_function_refused_for_human_on_prod(self):
        c = self.client('prod', 'fp-human-prod')
        msgs = c.function_call(function_oid('pg_catalog.pg_read_file(text)'), [b'/etc/hostname'])
        self.assert_refused(msgs, 'prod-server-file-access')
        self.assertNotIn(b'V', WireClient.types(msgs))
        self.assert_one(c.query('SELECT 2'), b'2')
        ev = relay.wait_for(by_app('fp-human-prod', protocol_is('fastpath')), kind='statement')[0]
        self.assertIn('prod-server-file-access', ev['decision']['rules'])
        self.assertTrue(ev['decision']['enforced'])

    def test_unknown_oid_is_refused(self):
        for target in ('dev', 'prod'):
            with self.subTest(target=target):
                app = f'fp-unknown-{target}'
                c = self.client(target, app)
                msgs = c.function_call(3999999999, [b'abc'])
                self.assert_refused(msgs, 'dbwarden-gate', "not in the database's catalog")
                self.assert_one(c.query('SELECT 3'), b'3')
                ev = relay.wait_for(by_app(app, protocol_is('fastpath')), kind='statement')[0]
                self.assertEqual(ev['decision']['rules'], ['dbwarden-gate'])
                self.assertTrue(ev['decision']['enforced'])

    def test_masked_principal_cannot_use_fastpath(self):
        c = self.client('dev', 'fp-masked', user='masked')
        msgs = c.function_call(function_oid('pg_catalog.upper(text)'), [b'abc'])
        self.assert_refused(msgs, 'dbwarden-gate', 'masking')
        self.assertNotIn(b'V', WireClient.types(msgs))
        self.assert_one(c.query('SELECT 4'), b'4')


# ---------------------------------------------------------------------------------------------
# 2. SQL-level names: prepared statements and cursors


class SqlNamesTest(GateTestCase):
    def test_statement_prepared_behind_the_relays_back(self):
        # PostgreSQL 15 lets PL/pgSQL's EXECUTE run PREPARE (checked with psql directly): the
        # prepared statement exists on the server, but the relay only saw a DO block.
        seed('t_sneaky')
        c = self.client('dev', 'sneaky-human')
        msgs = c.query("DO $$ BEGIN EXECUTE 'PREPARE sneaky AS DELETE FROM t_sneaky'; END $$")
        self.assertEqual(WireClient.errors(msgs), [])
        # The server has it: this is not a refusal of a name that does not exist.
        self.assert_one(c.query("SELECT count(*) FROM pg_prepared_statements "
                                "WHERE name = 'sneaky'"), b'1')
        msgs = c.query('EXECUTE sneaky')
        self.assert_refused(msgs, 'dbwarden-gate', 'did not see prepared')
        self.assertEqual(count('t_sneaky'), 3)
        ev = relay.wait_for(by_app('sneaky-human', commands_are('EXECUTE')), kind='statement')[0]
        self.assertEqual(ev['decision']['rules'], ['dbwarden-gate'])
        self.assertTrue(ev['decision']['enforced'])

    def test_execute_is_judged_as_what_it_runs(self):
        seed('t_prep')
        c = self.client('prod', 'ai-prepare')
        self.assertEqual(WireClient.errors(c.query('PREPARE p AS SELECT 1')), [])
        self.assert_one(c.query('EXECUTE p'), b'1')
        ev = relay.wait_for(by_app('ai-prepare', commands_are('EXECUTE')), kind='statement')[0]
        self.assertEqual(ev['decision']['action'], 'allow')
        self.assertFalse(ev['decision']['enforced'])
        # A refused PREPARE defines nothing; EXECUTE of that name is a name the gate did not see.
        self.assert_refused(c.query('PREPARE w AS DELETE FROM t_prep'), 'prod-no-where-agent')
        self.assert_refused(c.query('EXECUTE w'), 'dbwarden-gate', 'did not see prepared')
        self.assertEqual(count('t_prep'), 3)
        self.assert_one(c.query("SELECT count(*) FROM pg_prepared_statements WHERE name = 'w'"),
                        b'0')

    def test_redefined_statement_does_not_reuse_a_stale_description(self):
        c = self.client('dev', 'masked-stale', user='masked')
        c.send(c.parse_msg('s1', 'SELECT id::text, name FROM customers WHERE id = 1') +
               c.describe_msg('S', 's1') + c.sync_msg())
        msgs = c.read_until_ready()
        self.assertEqual(WireClient.types(msgs), [b'1', b't', b'T', b'Z'], msgs)
        self.assertEqual(WireClient.row_description(msgs[2][1]), ['id', 'name'])
        msgs = c.query('DEALLOCATE s1; PREPARE s1 AS SELECT id::text, password_hash '
                       'FROM customers WHERE id = 1')
        self.assertEqual(WireClient.errors(msgs), [])
        # Bind and Execute without a Describe: the relay must not mask by the old description.
        c.send(c.bind_msg('', 's1') + c.execute_msg() + c.sync_msg())
        msgs = c.read_until_ready()
        self.assert_no_secret(msgs)
        # It ran (one row of two columns); what the relay could not tie to a description is
        # withheld.
        self.assertEqual([len(r) for r in WireClient.rows(msgs)], [2], msgs)

    def test_binary_cursor_is_masked(self):
        c = self.client('dev', 'masked-cursor', user='masked')
        self.assertEqual(WireClient.errors(c.query('BEGIN')), [])
        msgs = c.query('DECLARE c BINARY CURSOR FOR SELECT password_hash FROM customers')
        self.assertEqual(WireClient.errors(msgs), [])
        msgs = c.query('FETCH ALL c')
        self.assert_no_secret(msgs)
        self.assertEqual(len(WireClient.rows(msgs)), len(PASSWORD_HASHES), msgs)  # it ran
        c.query('ROLLBACK')

    def test_fetch_from_a_cursor_the_relay_never_saw_declared(self):
        c = self.client('prod', 'hidden-fetch')
        self.assertEqual(WireClient.errors(c.query('BEGIN')), [])
        self.assert_one(c.query('SELECT open_hidden()'), b'hidden')
        msgs = c.query('FETCH ALL FROM hidden')
        self.assert_refused(msgs, 'dbwarden-gate', 'did not see declared')
        self.assertEqual(WireClient.rows(msgs), [])
        c.query('ROLLBACK')
        self.assert_one(c.query('SELECT 5'), b'5')
        ev = relay.wait_for(by_app('hidden-fetch', commands_are('FETCH')), kind='statement')[0]
        self.assertEqual(ev['decision']['rules'], ['dbwarden-gate'])


# ---------------------------------------------------------------------------------------------
# 3. Replication connections


class ReplicationTest(GateTestCase):
    def test_refused_unless_a_rule_allows_it(self):
        with WireClient.open(relay.port('prod')) as c:
            status, fields = c.startup('postgres', DB, replication='database',
                                       application_name='repl-refused')
            self.assertEqual(status, 'error', fields)
            self.assertEqual(fields.get('S'), 'FATAL', fields)
            self.assertIn('replication', fields.get('M', ''))
            self.assertIn('dbwarden-gate', fields.get('M', ''))
        ev = relay.wait_for(by_app('repl-refused', protocol_is('startup')), kind='decision')[0]
        self.assertEqual(ev['statement']['commands'], ['REPLICATION'])
        self.assertTrue(ev['decision']['enforced'])
        self.assertEqual(ev['decision']['rules'], ['dbwarden-gate'])

    def test_passed_to_the_server_when_a_rule_allows_it(self):
        own = fx.Relay([{'name': 'prod', 'env': 'prod',
                         'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                       extra={'policy': {'files': [str(GUARDRAILS),
                                                   str(workdir / 'site.yaml'),
                                                   str(workdir / 'allow-replication.yaml')]}})
        self.addCleanup(own.close)
        own.start()
        with WireClient.open(own.port()) as c:
            status, fields = c.startup('postgres', DB, replication='database',
                                       application_name='repl-allowed')
            for f in WireClient.errors(c.messages) + ([fields] if fields else []):
                self.assertNotIn('dbwarden', f.get('M', ''), f)
            self.assertEqual(status, 'ready', fields)
            c.send(fx.frame(b'X'))
        ev = own.wait_for(by_app('repl-allowed', protocol_is('startup')), kind='decision')[0]
        self.assertEqual(ev['statement']['commands'], ['REPLICATION'])
        self.assertEqual(ev['decision']['rules'], ['allow-replication'])
        self.assertFalse(ev['decision']['enforced'])


# ---------------------------------------------------------------------------------------------
# 4. Startup options and parameters, judged as the SETs they are


class StartupSettingsTest(GateTestCase):
    def assert_startup_refused(self, app, fields):
        self.assertEqual(fields.get('S'), 'FATAL', fields)
        self.assertEqual(fields.get('C'), '42501', fields)
        for f in ('dbwarden', 'role', 'refused', 'prod-privilege-agent'):
            self.assertIn(f, fields.get('M', ''))
        ev = relay.wait_for(by_app(app, protocol_is('startup')), kind='decision')[0]
        self.assertTrue(ev['decision']['enforced'])
        self.assertEqual(ev['decision']['action'], 'deny')
        self.assertIn('prod-privilege-agent', ev['decision']['rules'])

    def test_psql_pgoptions_role_refused(self):
        out = psql_through('prod', 'ai-opt-role', 'SELECT 1', PGOPTIONS='-c role=postgres')
        self.assertNotEqual(out.returncode, 0, out.stdout)
        for f in ('dbwarden', 'role', 'refused'):
            self.assertIn(f, out.stderr)
        self.assertNotIn('1', out.stdout.split())
        ev = relay.wait_for(by_app('ai-opt-role', protocol_is('startup')), kind='decision')[0]
        self.assertTrue(ev['decision']['enforced'])
        self.assertIn('prod-privilege-agent', ev['decision']['rules'])

    def test_raw_role_parameter_refused(self):
        with WireClient.open(relay.port('prod')) as c:
            status, fields = c.startup('app', DB, role='postgres', application_name='ai-param-role')
            self.assertEqual(status, 'error', fields)
        self.assert_startup_refused('ai-param-role', fields)

    def test_upper_case_role_parameter_refused(self):
        with WireClient.open(relay.port('prod')) as c:
            status, fields = c.startup('app', DB, ROLE='postgres', application_name='ai-param-ROLE')
            self.assertEqual(status, 'error', fields)
        self.assert_startup_refused('ai-param-ROLE', fields)

    def test_harmless_option_connects(self):
        out = psql_through('prod', 'ai-opt-path', 'SHOW search_path',
                           PGOPTIONS='-c search_path=public')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), 'public')
        out = psql_through('prod', 'ai-opt-path', 'SELECT 1', PGOPTIONS='-c search_path=public')
        self.assertEqual((out.returncode, out.stdout.strip()), (0, '1'), out.stderr)

    def test_non_setting_switch_is_a_protocol_violation(self):
        with WireClient.open(relay.port('prod')) as c:
            status, fields = c.startup('app', DB, options='-P', application_name='ai-opt-P')
            self.assertEqual(status, 'error', fields)
        self.assertEqual(fields.get('S'), 'FATAL', fields)
        self.assertEqual(fields.get('C'), '08P01', fields)
        self.assertIn('not a -c name=value setting', fields.get('M', ''))
        relay.wait_for(lambda e: (e.get('error') or {}).get('sqlstate') == '08P01'
                       and 'not a -c name=value setting' in (e.get('error') or {}).get(
                           'message', ''), kind='protocol_violation')


# ---------------------------------------------------------------------------------------------
# 5. Settings that change how the server reads text


BACKSLASH_DELETE = b"SELECT 'x\\''; DELETE FROM %s; --'"
SJIS_DELETE = b"SELECT E'\x95\\'; DELETE FROM %s; --'"


class TextReadingTest(GateTestCase):
    def test_standard_conforming_strings_off_then_hidden_delete(self):
        seed('t_scs')
        c = self.client('prod', 'ai-scs')
        msgs = c.query('SET standard_conforming_strings = off')
        self.assertEqual(WireClient.errors(msgs), [])
        c.send(fx.frame(b'Q', BACKSLASH_DELETE % b't_scs' + b'\0'))
        self.assert_refused(c.read_until_ready(), 'prod-no-where-agent')
        self.assertEqual(count('t_scs'), 3)
        self.assert_one(c.query('SELECT 6'), b'6')

    def test_pipelined_setting_change_and_hidden_delete(self):
        seed('t_scs_pipe')
        c = self.client('prod', 'ai-scs-pipe')
        c.send(c.query_msg('SET standard_conforming_strings = off') +
               fx.frame(b'Q', BACKSLASH_DELETE % b't_scs_pipe' + b'\0'))
        first = c.read_until_ready()
        self.assertEqual(WireClient.errors(first), [])
        second = c.read_until_ready()
        errors = WireClient.errors(second)
        self.assertEqual(len(errors), 1, second)
        self.assertEqual(errors[0].get('C'), '42501', errors[0])
        text = message_of(errors[0])
        self.assertTrue('prod-no-where-agent' in text or 'dbwarden-gate' in text, errors[0])
        self.assertEqual(count('t_scs_pipe'), 3)

    def test_sjis_hides_a_delete_from_an_agent(self):
        seed('t_sjis')
        c = self.client('prod', 'ai-sjis', client_encoding='SJIS')
        c.send(fx.frame(b'Q', SJIS_DELETE % b't_sjis' + b'\0'))
        self.assert_refused(c.read_until_ready(), 'prod-no-where-agent')
        self.assertEqual(count('t_sjis'), 3)

    def test_sjis_set_later_hides_a_delete_from_an_agent(self):
        seed('t_sjis_set')
        c = self.client('prod', 'ai-sjis-set')
        self.assertEqual(WireClient.errors(c.query("SET client_encoding TO 'SJIS'")), [])
        c.send(fx.frame(b'Q', SJIS_DELETE % b't_sjis_set' + b'\0'))
        self.assert_refused(c.read_until_ready(), 'prod-no-where-agent')
        self.assertEqual(count('t_sjis_set'), 3)

    def test_sjis_bytes_do_delete_for_a_human_on_dev(self):
        # The server is the oracle: these bytes are a DELETE in SJIS.
        seed('t_sjis_dev')
        c = self.client('dev', 'sjis-human', client_encoding='SJIS')
        c.send(fx.frame(b'Q', SJIS_DELETE % b't_sjis_dev' + b'\0'))
        msgs = c.read_until_ready()
        self.assertEqual(WireClient.errors(msgs), [])
        self.assertEqual(count('t_sjis_dev'), 0)
        ev = relay.wait_for(by_app('sjis-human'), kind='statement')[0]
        self.assertIn('DELETE', ev['statement']['commands'])
        self.assertIn('t_sjis_dev', [t.split('.')[-1] for t in ev['statement']['tables_written']])


# ---------------------------------------------------------------------------------------------
# 6. The coverage matrix


class CoverageMatrixTest(GateTestCase):
    def test_query_during_authentication_is_refused(self):
        with WireClient.open(relay.port('dev')) as c:
            c.send(fx.startup_message('pwuser', DB, application_name='auth-query'))
            kind, body = c.read_message()
            self.assertEqual(kind, b'R')
            self.assertEqual(struct.unpack('!I', body[:4])[0], 10, 'expected AuthenticationSASL')
            c.send(c.query_msg('CREATE TABLE pw_sneak (id int)'))
            msgs, _ = c.read_until_eof()
        errors = WireClient.errors(msgs)
        self.assertEqual(len(errors), 1, msgs)
        self.assertEqual(errors[0].get('S'), 'FATAL', errors[0])
        self.assertEqual(errors[0].get('C'), '08P01', errors[0])
        self.assertIn('dbwarden', errors[0].get('M', ''))
        self.assertNotIn(b'Z', WireClient.types(msgs))
        relay.wait_for(lambda e: (e.get('error') or {}).get('sqlstate') == '08P01'
                       and fx.principal(e).get('db_user') == 'pwuser'
                       and 'authentication' in (e.get('error') or {}).get('message', ''),
                       kind='protocol_violation')
        self.assertEqual(cluster.query_value("SELECT count(*) FROM pg_tables "
                                             "WHERE tablename = 'pw_sneak'", dbname=DB), '0')

    def test_unknown_message_type_after_login(self):
        c = self.client('dev', 'unknown-z')
        c.send(fx.frame(b'z', b'SELECT 1\0'))
        msgs, _ = c.read_until_eof()
        errors = WireClient.errors(msgs)
        self.assertEqual(len(errors), 1, msgs)
        self.assertEqual(errors[0].get('S'), 'FATAL', errors[0])
        self.assertEqual(errors[0].get('C'), '08P01', errors[0])
        self.assertNotIn(b'D', WireClient.types(msgs))
        relay.wait_for(lambda e: (e.get('error') or {}).get('sqlstate') == '08P01'
                       and fx.principal(e).get('application_name') == 'unknown-z',
                       kind='protocol_violation')


if __name__ == '__main__':
    unittest.main()
