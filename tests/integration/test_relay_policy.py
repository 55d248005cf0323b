"""Guardrails through the relay: the default pack's rules deny or demand approval for agents and
humans on a prod target, the same statements pass on staging, the session stays usable, an open
transaction fails as it would on a real error, monitor mode only records, and policy reloads
(SIGHUP and file change) keep the running policy when the new file is broken.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_policy.py -v
"""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / 'policy' / 'packs' / 'guardrails.yaml'
PSQL = str(fx.PG_BIN / 'psql')
PGBENCH = str(fx.PG_BIN / 'pgbench')

AGENTS_POLICY = """version: 1
principals:
  agents:
    - application_name: ["ai-*"]
rules: []
"""

# The on-call approver who answers the default pack's holds in these tests.
ONCALL_TOKEN = 'oncall-token'

cluster = None
relay = None
workdir = None


def setUpModule():
    global cluster, relay, workdir
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    workdir = Path(tempfile.mkdtemp(prefix='dbwarden-policy-'))
    unittest.addModuleCleanup(lambda: subprocess.run(['rm', '-rf', str(workdir)]))
    (workdir / 'agents.yaml').write_text(AGENTS_POLICY)
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user('app')
    cluster.create_db('appdb', owner='app')
    cluster.psql("""
        CREATE TABLE customers (id int PRIMARY KEY, email text);
        INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 50) g;
        CREATE TABLE scratch (id int);
        CREATE TABLE ledger (id int);
    """, dbname='appdb', user='app')
    upstream = f'{fx.LOOPBACK}:{cluster.port}'
    api_port = fx.free_port()
    token = {'name': 'oncall', 'role': 'approver',
             'sha256': hashlib.sha256(ONCALL_TOKEN.encode()).hexdigest()}
    relay = fx.Relay([{'name': 'orders', 'env': 'prod', 'upstream': upstream},
                      {'name': 'orders-staging', 'env': 'staging', 'upstream': upstream}],
                     extra={'policy': {'files': [str(PACK), str(workdir / 'agents.yaml')]},
                            'api': {'listen': f'{fx.LOOPBACK}:{api_port}', 'tokens': [token]}})
    relay.api_port = api_port
    unittest.addModuleCleanup(relay.close)
    relay.start()


def connect(target='orders', app='psql', **kw):
    import psycopg2
    conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(target), user='app', dbname='appdb',
                            application_name=app, connect_timeout=10, **kw)
    conn.autocommit = True
    return conn


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else cur.statusmessage


def count(table):
    return int(cluster.query_value(f'SELECT count(*) FROM {table}', dbname='appdb'))


def deny_held(conn, sql, app):
    """Runs `sql`, which the policy holds for approval, and denies the request over the API once
    the relay has made it. Returns (the client's error, the `requested` approval event)."""
    import psycopg2
    outcome = {}

    def work():
        try:
            outcome['result'] = run(conn, sql)
        except psycopg2.Error as exc:
            outcome['error'] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    requested = relay.wait_for(
        lambda e: e.get('principal', {}).get('application_name') == app
        and e['approval']['step'] == 'requested', kind='approval')[0]
    # Held, not refused: the client is still waiting.
    time.sleep(0.2)
    assert worker.is_alive(), f'{sql!r} was not held: {outcome}'
    status, _, body = fx.api_request(
        relay.api_port, f'/v1/approvals/{requested["approval"]["id"]}/deny', ONCALL_TOKEN, 'POST',
        json.dumps({'comment': 'not in this test'}).encode())
    assert status == 200, (status, body)
    worker.join(30)
    assert not worker.is_alive(), f'{sql!r} still held after the denial'
    assert 'error' in outcome, f'{sql!r} ran although denied: {outcome}'
    return outcome['error'], requested


class DefaultPackTest(unittest.TestCase):
    def test_agent_drop_is_denied_and_session_stays_usable(self):
        import psycopg2
        conn = connect(app='ai-bot')
        with self.assertRaises(psycopg2.Error) as ctx:
            run(conn, 'DROP TABLE customers')
        self.assertEqual(ctx.exception.pgcode, '42501')
        self.assertIn('prod-destructive-agent', str(ctx.exception))
        self.assertIn('not allowed for AI agents', str(ctx.exception))
        self.assertEqual(run(conn, 'SELECT count(*) FROM customers WHERE id < 10'), [(9,)])
        self.assertEqual(count('customers'), 50)
        conn.close()

    def test_agent_mass_delete_denied_but_targeted_delete_runs(self):
        import psycopg2
        conn = connect(app='ai-bot')
        run(conn, 'INSERT INTO scratch VALUES (1), (2), (3)')
        for sql in ('DELETE FROM scratch', 'DELETE FROM scratch WHERE 1 = 1',
                    "DELETE FROM scratch WHERE 'a' = 'a'",
                    'WITH d AS (DELETE FROM scratch RETURNING *) SELECT count(*) FROM d',
                    '/* harmless */ UPDATE scratch SET id = 0 -- everything'):
            with self.subTest(sql=sql):
                with self.assertRaises(psycopg2.Error) as ctx:
                    run(conn, sql)
                self.assertEqual(ctx.exception.pgcode, '42501')
        self.assertEqual(count('scratch'), 3)
        self.assertEqual(run(conn, 'DELETE FROM scratch WHERE id = 2'), 'DELETE 1')
        self.assertEqual(count('scratch'), 2)
        run(conn, 'DELETE FROM scratch WHERE id > 0')
        conn.close()

    def test_agent_unbounded_select_denied_bounded_allowed(self):
        import psycopg2
        conn = connect(app='ai-bot')
        with self.assertRaises(psycopg2.Error) as ctx:
            run(conn, 'SELECT * FROM customers')
        self.assertEqual(ctx.exception.pgcode, '42501')
        self.assertEqual(len(run(conn, 'SELECT * FROM customers LIMIT 5')), 5)
        self.assertEqual(run(conn, 'SELECT count(*) FROM customers'), [(50,)])
        conn.close()

    def test_human_drop_is_held_for_approval(self):
        conn = connect(app='psql')
        notices_before = len(conn.notices)
        error, requested = deny_held(conn, 'DROP TABLE ledger', 'psql')
        self.assertEqual(requested['approval']['rules'], ['prod-destructive-human'])
        self.assertEqual(requested['approval']['mode'], 'hold')
        request_id = requested['approval']['id']
        # The client was told at once why it waits, then refused with the approver's answer.
        notice = ''.join(conn.notices[notices_before:])
        self.assertIn(f'statement held for approval (request {request_id})', notice)
        self.assertIn('prod-destructive-human', notice)
        self.assertEqual(error.pgcode, '42501')
        self.assertIn(f'approval request {request_id} was denied by oncall', str(error))
        # A person's unbounded SELECT is fine.
        self.assertEqual(len(run(conn, 'SELECT * FROM customers')), 50)
        conn.close()
        self.assertEqual(int(cluster.query_value(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'ledger'", dbname='appdb')), 1)

    def test_escape_hatches_denied_for_everyone(self):
        import psycopg2
        for app in ('psql', 'ai-bot'):
            conn = connect(app=app)
            for sql in ("COPY customers TO PROGRAM 'cat > /dev/null'",
                        "SELECT pg_read_file('/etc/passwd')",
                        "SELECT lo_import('/etc/hostname')"):
                with self.subTest(app=app, sql=sql):
                    with self.assertRaises(psycopg2.Error) as ctx:
                        run(conn, sql)
                    self.assertEqual(ctx.exception.pgcode, '42501')
            conn.close()

    def test_same_statements_pass_on_staging(self):
        conn = connect(target='orders-staging', app='ai-bot')
        run(conn, 'CREATE TABLE staging_tmp (id int)')
        run(conn, 'INSERT INTO staging_tmp VALUES (1)')
        self.assertEqual(run(conn, 'DELETE FROM staging_tmp'), 'DELETE 1')
        self.assertEqual(run(conn, 'DROP TABLE staging_tmp'), 'DROP TABLE')
        conn.close()

    def test_denial_inside_a_transaction_aborts_it(self):
        import psycopg2
        conn = connect(app='ai-bot')
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute('INSERT INTO scratch VALUES (100)')
            with self.assertRaises(psycopg2.Error) as ctx:
                cur.execute('DELETE FROM scratch')
            self.assertEqual(ctx.exception.pgcode, '42501')
            # The server's transaction failed too: nothing more runs until ROLLBACK.
            with self.assertRaises(psycopg2.Error) as ctx:
                cur.execute('INSERT INTO scratch VALUES (101)')
            self.assertEqual(ctx.exception.pgcode, '25P02')
        conn.rollback()
        self.assertEqual(count('scratch WHERE id >= 100'), 0)
        conn.autocommit = True
        self.assertEqual(run(conn, 'SELECT 1'), [(1,)])
        conn.close()

    def test_multi_statement_query_takes_the_strictest_decision(self):
        import psycopg2
        conn = connect(app='ai-bot')
        with self.assertRaises(psycopg2.Error) as ctx:
            run(conn, 'INSERT INTO scratch VALUES (7); DROP TABLE scratch')
        self.assertEqual(ctx.exception.pgcode, '42501')
        self.assertEqual(count('scratch WHERE id = 7'), 0)  # nothing of it ran
        conn.close()

    def test_classification_follows_set_application_name_but_agents_stay_agents(self):
        import psycopg2
        # A session that names itself an agent after connecting (as pgjdbc does) gets agent rules.
        conn = connect(app='plain-client')
        run(conn, "SET application_name = 'ai-late'")
        with self.assertRaises(psycopg2.Error) as ctx:
            run(conn, 'DROP TABLE customers')
        self.assertIn('prod-destructive-agent', str(ctx.exception))
        conn.close()
        # An agent that renames itself is still an agent.
        conn = connect(app='ai-renamer')
        run(conn, "SET application_name = 'psql'")
        with self.assertRaises(psycopg2.Error) as ctx:
            run(conn, 'DROP TABLE customers')
        self.assertIn('prod-destructive-agent', str(ctx.exception))
        conn.close()
        self.assertEqual(count('customers'), 50)

    def test_literal_that_looks_like_a_drop_is_not_one(self):
        conn = connect(app='ai-bot')
        self.assertEqual(run(conn, "SELECT 'DROP TABLE customers; DELETE FROM customers' AS t"),
                         [('DROP TABLE customers; DELETE FROM customers',)])
        conn.close()

    def test_psql_agent_denial_message(self):
        env = dict(fx.CLIENT_ENV, PGAPPNAME='ai-psql')
        out = subprocess.run([PSQL, '-X', '-h', fx.LOOPBACK, '-p', str(relay.port('orders')), '-U',
                              'app', '-d', 'appdb', '-c', 'TRUNCATE customers', '-c', 'SELECT 42'],
                             capture_output=True, text=True, env=env, timeout=60)
        self.assertIn('dbwarden', out.stderr)
        self.assertIn('prod-destructive-agent', out.stderr)
        self.assertIn('42', out.stdout)  # the next command ran on the same session
        self.assertEqual(count('customers'), 50)

    def test_pgbench_prepared_agent(self):
        env = dict(fx.CLIENT_ENV, PGAPPNAME='ai-bench')
        script = workdir / 'bad.sql'
        script.write_text('UPDATE customers SET email = email;\n')
        out = subprocess.run([PGBENCH, '-n', '-M', 'prepared', '-t', '3', '-f', str(script), '-h',
                              fx.LOOPBACK, '-p', str(relay.port('orders')), '-U', 'app', 'appdb'],
                             capture_output=True, text=True, env=env, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('dbwarden', out.stderr)
        good = workdir / 'good.sql'
        good.write_text('\\set id random(1, 50)\nSELECT email FROM customers WHERE id = :id;\n')
        out = subprocess.run([PGBENCH, '-n', '-M', 'prepared', '-t', '50', '-c', '2', '-f', str(good),
                              '-h', fx.LOOPBACK, '-p', str(relay.port('orders')), '-U', 'app',
                              'appdb'], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('number of transactions actually processed: 100/100', out.stdout)

    def test_extended_protocol_denied_parse_then_recovery(self):
        """A denied Parse answers ErrorResponse, skips to Sync, and the session works after."""
        with fx.RawPg(fx.LOOPBACK, relay.port('orders')) as raw:
            status, _ = raw.startup('app', 'appdb', application_name='ai-raw')
            self.assertEqual(status, 'ready')

            def msg(t, body):
                return t + struct.pack('!I', len(body) + 4) + body

            def extended(sql):
                raw.send(msg(b'P', b'\0' + sql.encode() + b'\0\0\0') +
                         msg(b'B', b'\0\0\0\0\0\0\0\0') + msg(b'D', b'P\0') +
                         msg(b'E', b'\0\0\0\0\0') + msg(b'S', b''))
                out = []
                while True:
                    m = raw.read_message()
                    self.assertIsNotNone(m, 'connection closed')
                    out.append(m)
                    if m[0] == b'Z':
                        return out
            msgs = extended('DELETE FROM customers')
            types = [m[0] for m in msgs]
            self.assertEqual(types, [b'E', b'Z'])
            fields = fx.error_fields(msgs[0][1])
            self.assertEqual(fields.get('C'), '42501')
            self.assertIn('prod-no-where-agent', fields.get('D', '') + fields.get('M', ''))
            msgs = extended('SELECT count(*) FROM customers')
            self.assertEqual([m[0] for m in msgs], [b'1', b'2', b'T', b'D', b'C', b'Z'])
        self.assertEqual(count('customers'), 50)

    def test_decisions_are_audited_without_literals(self):
        conn = connect(app='ai-audit')
        run(conn, "SELECT email FROM customers WHERE email = 'secret-value@example.com'")
        try:
            run(conn, "DELETE FROM customers WHERE 'x' = 'x'")
        except Exception:  # noqa: BLE001 - denied, as the other tests check
            pass
        conn.close()
        events = relay.wait_for(
            lambda e: e.get('principal', {}).get('application_name') == 'ai-audit',
            kind='statement', count=2)
        allowed = next(e for e in events if 'SELECT' in e['statement']['commands'])
        denied = next(e for e in events if 'DELETE' in e['statement']['commands'])
        self.assertEqual(allowed['decision']['action'], 'allow')
        self.assertNotIn('secret-value', allowed['statement']['sql'])
        self.assertIn('$1', allowed['statement']['sql'])
        self.assertEqual(allowed['principal']['kind'], 'agent')
        self.assertEqual(denied['decision']['action'], 'deny')
        self.assertEqual(denied['decision']['rules'], ['prod-no-where-agent'])
        self.assertTrue(denied['decision']['enforced'])
        self.assertIn('no_where', denied['statement']['risks'])
        self.assertEqual(denied['result']['sqlstate'], '42501')
        self.assertIn('public.customers', denied['statement']['tables_written'] +
                      [t if '.' in t else 'public.' + t for t in denied['statement']['tables_written']])


# One statement per default-pack rule, and what agents and people get for it on prod.
RULE_CASES = [
    # (statement, agent rule, agent action, human rule, human action)
    ('DROP TABLE ledger', 'prod-destructive-agent', 'deny', 'prod-destructive-human', 'approve'),
    ('TRUNCATE ledger', 'prod-destructive-agent', 'deny', 'prod-destructive-human', 'approve'),
    ('UPDATE ledger SET id = 1', 'prod-no-where-agent', 'deny', 'prod-no-where-human', 'approve'),
    ('CREATE INDEX ON ledger (id)', 'prod-schema-change', 'approve', 'prod-schema-change',
     'approve'),
    ('ALTER TABLE ledger ADD COLUMN note text', 'prod-schema-change', 'approve',
     'prod-schema-change', 'approve'),
    ('GRANT SELECT ON ledger TO PUBLIC', 'prod-privilege-agent', 'deny', 'prod-privilege-human',
     'approve'),
    ('CREATE ROLE intruder', 'prod-privilege-agent', 'deny', 'prod-privilege-human', 'approve'),
    ("COPY ledger FROM PROGRAM 'id'", 'prod-copy-program', 'deny', 'prod-copy-program', 'deny'),
    ("SELECT pg_ls_dir('.')", 'prod-server-file-access', 'deny', 'prod-server-file-access',
     'deny'),
    ("SELECT dblink_exec('dbname=x', 'DROP TABLE ledger')", 'prod-external-access', 'deny',
     'prod-external-access', 'deny'),
    ("DO $$BEGIN PERFORM 1; END$$", 'prod-dynamic-sql-agent', 'deny', None, 'allow'),
    ('SELECT * FROM ledger', 'prod-unbounded-select-agent', 'deny', None, 'allow'),
    ('SELEC id FROM ledger', 'prod-unparseable', 'deny', 'prod-unparseable', 'deny'),
]


class AuditBeforeForwardTest(unittest.TestCase):
    def test_decision_is_committed_before_the_statement_runs(self):
        # prod targets default to audit_before_forward: the decision event is written before the
        # statement reaches the server, so it precedes the statement's own event.
        conn = connect(app='abf-prod')
        run(conn, 'INSERT INTO scratch VALUES (555)')
        run(conn, 'DELETE FROM scratch WHERE id = 555')
        conn.close()
        evs = relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'abf-prod'
                             and e['kind'] in ('decision', 'statement'), count=4)
        self.assertEqual([e['kind'] for e in evs], ['decision', 'statement'] * 2)
        self.assertEqual(evs[0]['statement']['commands'], ['INSERT'])
        self.assertLess(evs[0]['seq'], evs[1]['seq'])
        self.assertEqual(evs[0]['decision']['action'], 'allow')
        # staging does not wait for the log (audit_before_forward defaults to prod only).
        conn = connect(target='orders-staging', app='abf-staging')
        run(conn, 'SELECT 1')
        conn.close()
        relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'abf-staging',
                       kind='statement')
        self.assertEqual(relay.events('decision', lambda e: e.get('principal', {}).get(
            'application_name') == 'abf-staging'), [])


class EveryDefaultRuleTest(unittest.TestCase):
    def check(self, app, sql, rule, action):
        import psycopg2
        conn = connect(app=app)
        try:
            if action == 'allow':
                run(conn, sql)
            elif action == 'approve':
                # The default pack holds these; the on-call approver denies them here.
                error, requested = deny_held(conn, sql, app)
                self.assertIn(rule, requested['approval']['rules'])
                self.assertEqual(error.pgcode, '42501', str(error))
                self.assertIn('was denied by oncall', str(error))
            else:
                with self.assertRaises(psycopg2.Error) as ctx:
                    run(conn, sql)
                self.assertEqual(ctx.exception.pgcode, '42501', str(ctx.exception))
                text = str(ctx.exception)
                self.assertIn(rule, text)
                self.assertIn('denied', text)
            # The session is still usable.
            self.assertEqual(run(conn, 'SELECT 1'), [(1,)])
        finally:
            conn.close()
        ev = relay.wait_for(lambda e: e.get('principal', {}).get('application_name') == app,
                            kind='statement', count=2)[0]
        self.assertEqual(ev['decision']['action'], action, ev)
        if rule:
            self.assertIn(rule, ev['decision']['rules'])

    def test_each_rule_for_agents_and_people(self):
        for i, (sql, arule, aaction, hrule, haction) in enumerate(RULE_CASES):
            with self.subTest(sql=sql, who='agent'):
                self.check(f'ai-rule-{i}', sql, arule, aaction)
            with self.subTest(sql=sql, who='human'):
                self.check(f'human-rule-{i}', sql, hrule, haction)
        # Nothing of it happened.
        self.assertEqual(int(cluster.query_value(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'", dbname='appdb')), 0)
        self.assertEqual(int(cluster.query_value(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'ledger'", dbname='appdb')), 0)


class EveryDenyRuleOtherClientsTest(unittest.TestCase):
    """The default pack's agent denials through psql (simple protocol, the session goes on) and
    pgbench -M prepared (extended protocol: the Parse is refused), not only psycopg2."""

    def test_psql(self):
        for i, (sql, rule, action, _, _) in enumerate(RULE_CASES):
            if action != 'deny':
                continue
            with self.subTest(sql=sql):
                out = subprocess.run([PSQL, '-X', '-v', 'VERBOSITY=verbose', '-h', fx.LOOPBACK,
                                      '-p', str(relay.port('orders')), '-U', 'app', '-d', 'appdb',
                                      '-c', sql, '-c', 'SELECT 4040'],
                                     capture_output=True, text=True, timeout=60,
                                     env=dict(fx.CLIENT_ENV, PGAPPNAME=f'ai-psql-rule-{i}'))
                self.assertIn('42501', out.stderr)
                self.assertIn(rule, out.stderr)
                self.assertIn('4040', out.stdout, 'the session did not go on')

    def test_pgbench_prepared(self):
        for i, (sql, rule, action, _, _) in enumerate(RULE_CASES):
            if action != 'deny':
                continue
            with self.subTest(sql=sql):
                script = workdir / f'rule-{i}.sql'
                script.write_text(sql.replace(':', '\\:') + ';\n')
                app = f'ai-bench-rule-{i}'
                out = subprocess.run([PGBENCH, '-n', '-M', 'prepared', '-t', '1', '-f',
                                      str(script), '-h', fx.LOOPBACK, '-p',
                                      str(relay.port('orders')), '-U', 'app', 'appdb'],
                                     capture_output=True, text=True, timeout=60,
                                     env=dict(fx.CLIENT_ENV, PGAPPNAME=app))
                self.assertNotEqual(out.returncode, 0, out.stdout)
                self.assertIn(rule, out.stderr)
                ev = relay.wait_for(lambda e, app=app: e.get('principal', {}).get(
                    'application_name') == app and e.get('decision', {}).get('action') == 'deny',
                    kind='statement')[0]
                self.assertIn(rule, ev['decision']['rules'])
        self.assertEqual(int(cluster.query_value(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'", dbname='appdb')), 0)


class MonitorAndReloadTest(unittest.TestCase):
    def test_monitor_mode_records_but_lets_it_run(self):
        with fx.Relay([{'name': 'orders', 'env': 'prod',
                        'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                      extra={'policy': {'files': [str(PACK), str(workdir / 'agents.yaml')],
                                        'mode': 'monitor'}}) as mon:

            import psycopg2
            conn = psycopg2.connect(host=fx.LOOPBACK, port=mon.port(), user='app', dbname='appdb',
                                    application_name='ai-monitored')
            conn.autocommit = True
            run(conn, 'CREATE TABLE monitored_tmp (id int)')
            run(conn, 'DROP TABLE monitored_tmp')
            conn.close()
            ev = mon.wait_for(lambda e: 'DROP' in e['statement']['commands'], kind='statement')[0]
            self.assertEqual(ev['decision']['action'], 'deny')
            self.assertEqual(ev['decision']['mode'], 'monitor')
            self.assertFalse(ev['decision']['enforced'])
            self.assertEqual(ev['result']['command_tag'], 'DROP TABLE')

    def test_reload_on_sighup_and_file_change_keeps_old_policy_when_broken(self):
        import psycopg2
        policy_file = workdir / 'site.yaml'
        policy_file.write_text('version: 1\nrules: []\n')
        with fx.Relay([{'name': 'orders', 'env': 'prod',
                        'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                      extra={'policy': {'files': [str(policy_file)]}}) as r:

            conn = psycopg2.connect(host=fx.LOOPBACK, port=r.port(), user='app', dbname='appdb')
            conn.autocommit = True
            self.assertEqual(run(conn, 'SELECT count(*) FROM ledger'), [(0,)])
            policy_file.write_text(
                'version: 1\nrules:\n  - id: no-ledger\n    match:\n'
                '      statement: {tables: ["public.ledger"]}\n    action: deny\n'
                '    message: the ledger is closed\n')
            r.signal(signal.SIGHUP)
            r.wait_for(lambda e: 'reloaded (SIGHUP)' in e.get('detail', ''), kind='policy_load')
            with self.assertRaises(psycopg2.Error) as ctx:
                run(conn, 'SELECT count(*) FROM ledger')
            self.assertIn('the ledger is closed', str(ctx.exception))
            # A broken edit, picked up by the file watcher without a signal: rejected, with the
            # file and line, and the running policy stays.
            policy_file.write_text('version: 1\nrules:\n  - id: x\n    action: explode\n')
            ev = r.wait_for(lambda e: 'rejected' in e.get('detail', ''), kind='policy_load',
                            timeout=15)[0]
            self.assertIn(f'{policy_file}:4', ev['error']['message'])
            with self.assertRaises(psycopg2.Error):
                run(conn, 'SELECT count(*) FROM ledger')
            conn.close()


class ProcessIdentityTest(unittest.TestCase):
    def test_agent_by_executable_and_rule_sqlstate(self):
        # Who is an agent can be the client process's executable (verified by the relay from
        # /proc, not claimed by the client); a deny rule's own SQLSTATE reaches the client.
        policy_file = workdir / 'by-exe.yaml'
        policy_file.write_text(
            'version: 1\nprincipals:\n  agents:\n    - exe: ["*/psql"]\nrules:\n'
            '  - id: agents-no-ledger\n    match:\n      principal: {kind: agent}\n'
            '      statement: {tables: ["public.ledger"]}\n    action: deny\n'
            '    sqlstate: "42P17"\n    message: agents keep away from the ledger\n')
        with fx.Relay([{'name': 'orders', 'env': 'prod',
                        'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                      extra={'policy': {'files': [str(policy_file)]}}) as r:
            out = subprocess.run([PSQL, '-X', '-v', 'VERBOSITY=verbose', '-h', fx.LOOPBACK, '-p',
                                  str(r.port()), '-U', 'app', '-d', 'appdb', '-c',
                                  'SELECT count(*) FROM ledger'], capture_output=True, text=True,
                                 env=dict(fx.CLIENT_ENV, PGAPPNAME='plain-psql'), timeout=60)
            self.assertNotEqual(out.returncode, 0, out.stdout)
            self.assertIn('42P17', out.stderr)
            self.assertIn('agents keep away from the ledger', out.stderr)
            # The same statement from another program (psycopg2 in this Python) is a person's.
            import psycopg2
            conn = psycopg2.connect(host=fx.LOOPBACK, port=r.port(), user='app', dbname='appdb')
            try:
                self.assertEqual(run(conn, 'SELECT count(*) FROM ledger'), [(0,)])
            finally:
                conn.close()
            ev = r.wait_for(lambda e: e.get('decision', {}).get('action') == 'deny',
                            kind='statement')[0]
            self.assertEqual(ev['principal']['kind'], 'agent')
            self.assertTrue(ev['process']['exe'].endswith('/psql'))
            self.assertEqual(ev['decision']['rules'], ['agents-no-ledger'])


if __name__ == '__main__':
    unittest.main()
