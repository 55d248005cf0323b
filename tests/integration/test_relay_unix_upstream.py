"""A target whose upstream is the server's unix socket (`upstream: unix:/dir/.s.PGSQL.<port>`):
real clients over the relay reach PostgreSQL through that socket (the server sees no client
address), statements are judged and audited, cancel requests and the masking catalog's own
connection take the same path, and a wrong socket is a clear connection error.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_unix_upstream.py -v
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PGBENCH = str(fx.PG_BIN / 'pgbench')
PII_PACK = fx.REPO_ROOT / 'policy' / 'packs' / 'pii.yaml'
GUARDRAILS = fx.REPO_ROOT / 'policy' / 'packs' / 'guardrails.yaml'
EMAIL = 'alice.smith@example.com'

cluster = None
relay = None


def setUpModule():
    global cluster, relay
    cluster = fx.module_cluster()
    cluster.create_user('app')
    cluster.create_db('shop', owner='app')
    cluster.psql(f"""
        CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
        INSERT INTO customers VALUES (1, 'Alice', '{EMAIL}'), (2, 'Bob', 'bob@example.org');
    """, dbname='shop', user='app')
    socket_path = os.path.join(cluster.socket_dir, f'.s.PGSQL.{cluster.port}')
    # Clients named ai-* are AI agents: the default pack denies them a DROP outright.
    site = os.path.join(os.path.dirname(cluster.datadir), 'agents.yaml')
    with open(site, 'w') as f:
        f.write('version: 1\nprincipals:\n  agents:\n    - application_name: ["ai-*"]\n'
                'rules: []\n')
    relay = fx.Relay([{'name': 'unix', 'env': 'prod', 'upstream': f'unix:{socket_path}'},
                      {'name': 'tcp', 'env': 'prod', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'},
                      # A socket no server listens on.
                      {'name': 'nowhere', 'env': 'prod',
                       'upstream': f'unix:{cluster.socket_dir}/.s.PGSQL.1'}],
                     workers=1,
                     extra={'policy': {'files': [str(GUARDRAILS), str(PII_PACK), site]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()


def connect(target='unix', user='app', dbname='shop', application_name='unix-test'):
    import psycopg2
    conn = psycopg2.connect(host=fx.LOOPBACK, port=relay.port(target), user=user, dbname=dbname,
                            connect_timeout=10, application_name=application_name)
    conn.autocommit = True
    return conn


def one_row(sql, target='unix'):
    conn = connect(target)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


class UnixUpstreamTest(unittest.TestCase):
    def test_the_server_sees_a_unix_socket_connection(self):
        # inet_client_addr() is NULL exactly for a unix-socket connection.
        self.assertEqual(one_row('SELECT inet_client_addr() IS NULL, current_user')[0:2],
                         (True, 'app'))
        self.assertEqual(one_row('SELECT inet_client_addr() IS NULL', target='tcp'), (False,))

    def test_statements_are_judged_and_audited(self):
        import psycopg2
        conn = connect(application_name='ai-unix-test')
        try:
            with conn.cursor() as cur:
                with self.assertRaises(psycopg2.Error) as ctx:
                    cur.execute('DROP TABLE customers')
                self.assertEqual(ctx.exception.pgcode, '42501')
                cur.execute('SELECT count(*) FROM customers')
                self.assertEqual(cur.fetchone(), (2,))
        finally:
            conn.close()

        def on_unix(sql):
            return lambda e: e.get('target') == 'unix' and e.get('statement', {}).get('sql') == sql

        denied = relay.wait_for(on_unix('DROP TABLE customers'), kind='statement')[-1]
        self.assertEqual(denied['decision']['action'], 'deny')
        self.assertTrue(denied['decision']['enforced'])
        counted = relay.wait_for(on_unix('SELECT count(*) FROM customers'), kind='statement')[-1]
        self.assertEqual(counted['result']['rows'], 1)
        # prod: audit-before-forward, so the allowed statement has its decision event too.
        relay.wait_for(on_unix('SELECT count(*) FROM customers'), kind='decision')

    def test_masking_reads_the_catalog_over_the_unix_socket(self):
        # The pii pack's column rule needs the catalog (its own upstream connection).
        name, email = one_row('SELECT name, email FROM customers WHERE id = 1')
        self.assertEqual(name, 'Alice')
        self.assertNotEqual(email, EMAIL)
        self.assertTrue(email.endswith('@example.com'), email)

    def test_pgbench_through_the_unix_upstream(self):
        fx.run([PGBENCH, '-i', '-q', '-s', '1', '-h', cluster.socket_dir, '-p', str(cluster.port),
                '-U', 'app', 'shop'], timeout=120)
        for mode in ('simple', 'prepared'):
            res = fx.run([PGBENCH, '-n', '-S', '-M', mode, '-c', '2', '-j', '1', '-t', '50',
                          '-h', fx.LOOPBACK, '-p', str(relay.port('unix')), '-U', 'app', 'shop'],
                         timeout=120, check=False)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr + relay.diag())
            self.assertIn('number of transactions actually processed: 100/100', res.stdout)

        def pgbench_select(e):
            return (e.get('target') == 'unix' and 'pgbench_accounts' in
                    e.get('statement', {}).get('sql', '') and
                    e.get('principal', {}).get('application_name') == 'pgbench')
        # Every transaction of both runs is one audited SELECT.
        fx.wait_until(lambda: len(relay.events('statement', pgbench_select)) == 200, 20,
                      '200 pgbench statements in the audit log')

    def test_cancel_request_reaches_the_server(self):
        import psycopg2
        conn = connect()
        try:
            timer = threading.Timer(1.0, conn.cancel)
            timer.start()
            start = time.monotonic()
            with conn.cursor() as cur:
                with self.assertRaises(psycopg2.errors.QueryCanceled):
                    cur.execute('SELECT pg_sleep(30)')
            self.assertLess(time.monotonic() - start, 10)
            timer.join()
            with conn.cursor() as cur:  # the session goes on
                cur.execute('SELECT 1')
                self.assertEqual(cur.fetchone(), (1,))
        finally:
            conn.close()

    def test_a_socket_nobody_listens_on_is_a_connection_error(self):
        import psycopg2
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            connect('nowhere')
        self.assertIn('could not connect to upstream server of target "nowhere"',
                      str(ctx.exception))
        relay.wait_for(lambda e: e.get('target') == 'nowhere', kind='upstream_error')


if __name__ == '__main__':
    unittest.main()
