"""TLS on both legs of the dbwarden relay: the relay terminates client TLS with its own certificate,
re-encrypts to a hostssl-only, scram-sha-256 PostgreSQL, strips SCRAM-SHA-256-PLUS (it cannot
bind a channel it terminated), and fails clients cleanly when the upstream certificate is wrong.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_relay_tls.py -v
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PSQL = str(fx.PG_BIN / 'psql')
USER, PASSWORD = 'alice', 'alice-Secret-1'

pki = None
cluster = None
relay = None


def setUpModule():
    global pki, cluster, relay
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    pki = fx.make_test_pki()
    unittest.addModuleCleanup(pki.close)
    cluster = fx.PgCluster(ssl_cert=pki.server_cert, ssl_key=pki.server_key,
                           hba_lines=[f'hostssl all all {fx.LOOPBACK}/32 scram-sha-256'])
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    cluster.create_user(USER, password=PASSWORD)
    cluster.create_db('appdb', owner=USER)
    upstream = f'{fx.LOOPBACK}:{cluster.port}'
    tls = {'cert': str(pki.relay_cert), 'key': str(pki.relay_key)}
    relay = fx.Relay([
        {'name': 'secure', 'env': 'test', 'upstream': upstream, 'tls': tls,
         'upstream_tls': {'ca': str(pki.ca_cert), 'server_name': 'localhost'}},
        {'name': 'wrongca', 'env': 'test', 'upstream': upstream, 'tls': tls,
         'upstream_tls': {'ca': str(pki.other_ca_cert)}},
        # Plaintext clients let through (tls.require: false), on a TLS upstream.
        {'name': 'optional', 'env': 'test', 'upstream': upstream, 'tls': dict(tls, require=False),
         'upstream_tls': {'ca': str(pki.ca_cert), 'server_name': 'localhost'}},
    ])
    unittest.addModuleCleanup(relay.close)
    relay.start()


def tearDownModule():
    if relay is not None and relay.running():
        relay.stop()


def conninfo(port, **extra):
    parts = dict(host=fx.LOOPBACK, port=port, user=USER, dbname='appdb')
    parts.update(extra)
    return ' '.join(f'{k}={v}' for k, v in parts.items())


def psql(conn, sql, password=PASSWORD, timeout=30):
    env = dict(fx.CLIENT_ENV, PGPASSWORD=password, PGAPPNAME='tls-psql')
    return subprocess.run([PSQL, '-X', '-A', '-t', '-c', sql, conn], capture_output=True,
                          text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def pg_connect(port, **kw):
    import psycopg2
    params = dict(host=fx.LOOPBACK, port=port, user=USER, dbname='appdb', password=PASSWORD,
                  connect_timeout=10, application_name='tls-psycopg2')
    params.update(kw)
    return psycopg2.connect(**params)


class RelayTlsTest(unittest.TestCase):

    def test_psql_verify_ca_through_relay(self):
        out = psql(conninfo(relay.port('secure'), sslmode='verify-ca', sslrootcert=pki.ca_cert),
                   'SELECT 1')
        self.assertEqual(out.returncode, 0, f'{out.stderr}\n{relay.diag()}')
        self.assertEqual(out.stdout.strip(), '1')

    def test_upstream_leg_is_tls(self):
        # channel_binding=disable keeps this about the upstream leg (see the SCRAM 'y' test).
        out = psql(conninfo(relay.port('secure'), sslmode='verify-ca', sslrootcert=pki.ca_cert,
                            channel_binding='disable'),
                   'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
        self.assertEqual(out.returncode, 0, f'{out.stderr}\n{relay.diag()}')
        self.assertEqual(out.stdout.strip(), 't')

    def test_relay_presents_its_own_certificate(self):
        # verify-full also checks the relay certificate's SAN 127.0.0.1.
        out = psql(conninfo(relay.port('secure'), sslmode='verify-full', sslrootcert=pki.ca_cert,
                            channel_binding='disable'), 'SELECT current_user')
        self.assertEqual(out.returncode, 0, f'{out.stderr}\n{relay.diag()}')
        self.assertEqual(out.stdout.strip(), USER)
        with fx.RawPg(fx.LOOPBACK, relay.port('secure')) as raw:
            self.assertEqual(raw.start_tls(pki.ca_cert, 'localhost'), b'S')
            presented = raw.sock.getpeercert(binary_form=True)
        expected = ssl.PEM_cert_to_DER_cert(pki.relay_cert.read_text())
        self.assertEqual(presented, expected, 'the relay must terminate TLS with its own cert')

    def test_psycopg2_require_with_channel_binding_prefer(self):
        conn = pg_connect(relay.port('secure'), sslmode='require', channel_binding='prefer')
        try:
            cur = conn.cursor()
            cur.execute('SELECT current_user, 6 * 7')
            self.assertEqual(cur.fetchone(), (USER, 42))
        finally:
            conn.close()

    def test_channel_binding_require_works_direct(self):
        # Control for the next test: the server itself does offer SCRAM-SHA-256-PLUS.
        conn = pg_connect(cluster.port, sslmode='require', channel_binding='require')
        conn.close()

    def test_channel_binding_require_fails_through_relay(self):
        import psycopg2
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            pg_connect(relay.port('secure'), sslmode='require', channel_binding='require').close()
        self.assertIn('channel binding', str(ctx.exception))

    def test_sasl_mechanisms_without_plus(self):
        with fx.RawPg(fx.LOOPBACK, cluster.port) as raw:
            raw.start_tls(pki.ca_cert, 'localhost')
            self.assertEqual(raw.startup(USER, 'appdb', password=PASSWORD), ('ready', None))
            self.assertIn('SCRAM-SHA-256-PLUS', raw.sasl_mechanisms)
        with fx.RawPg(fx.LOOPBACK, relay.port('secure')) as raw:
            raw.start_tls(pki.ca_cert, 'localhost')
            self.assertEqual(raw.startup(USER, 'appdb', password=PASSWORD), ('ready', None))
            # A relay that terminates TLS cannot offer channel binding; whether it offers plain
            # SCRAM-SHA-256 or authenticates the client another way is its choice.
            self.assertNotIn('SCRAM-SHA-256-PLUS', raw.sasl_mechanisms or [])

    def test_scram_client_flagging_channel_binding_support(self):
        # libpq over TLS with channel_binding=prefer (the default) answers a SASL list without
        # PLUS with gs2 flag 'y'. A TLS-terminating relay must get such a client authenticated
        # to an upstream that itself offers PLUS over TLS.
        with fx.RawPg(fx.LOOPBACK, relay.port('secure')) as raw:
            raw.start_tls(pki.ca_cert, 'localhost')
            status, fields = raw.startup(USER, 'appdb', password=PASSWORD, gs2_flag='y')
        self.assertEqual((status, fields), ('ready', None), f'SCRAM with gs2 flag y through the '
                                                           f'relay failed: {fields}')

    def test_psql_channel_binding_disable_through_relay(self):
        # Control: gs2 flag 'n'; isolates channel-binding negotiation from the rest of the path.
        out = psql(conninfo(relay.port('secure'), sslmode='verify-ca', sslrootcert=pki.ca_cert,
                            channel_binding='disable'), 'SELECT 1')
        self.assertEqual(out.returncode, 0, f'{out.stderr}\n{relay.diag()}')
        self.assertEqual(out.stdout.strip(), '1')

    def test_wrong_password_gives_28P01(self):
        with fx.RawPg(fx.LOOPBACK, relay.port('secure')) as raw:
            raw.start_tls(pki.ca_cert, 'localhost')
            status, fields = raw.startup(USER, 'appdb', password='not-the-password',
                                         application_name='tls-wrong-password')
        self.assertEqual(status, 'error', f'{status} {raw.messages}')
        self.assertEqual(fields.get('C'), '28P01', fields)
        self.assertEqual(fields.get('S'), 'FATAL', fields)
        # Audited as a failed login, with the server's SQLSTATE and reason.
        ev = relay.wait_for(lambda e: e.get('principal', {}).get('application_name') ==
                            'tls-wrong-password', kind='login_failed')[0]
        self.assertEqual(ev['error']['sqlstate'], '28P01')
        self.assertIn('password authentication failed', ev['error']['message'])
        self.assertEqual(ev['principal']['db_user'], USER)
        self.assertNotIn('not-the-password', str(relay.events()))

    def test_plaintext_client_is_refused_when_tls_is_required(self):
        # The upstream leg is TLS, so a plaintext client would pass the server's hostssl rule;
        # tls.require (on by default with upstream_tls) refuses it before anything is sent.
        out = psql(conninfo(relay.port('secure'), sslmode='disable',
                            application_name='tls-plaintext'), 'SELECT 1')
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn('requires TLS', out.stderr)
        import psycopg2
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            pg_connect(relay.port('secure'), sslmode='disable').close()
        self.assertIn('requires TLS', str(ctx.exception))
        with fx.RawPg(fx.LOOPBACK, relay.port('secure')) as raw:
            status, fields = raw.startup(USER, 'appdb', password=PASSWORD,
                                         application_name='tls-plaintext-raw')
        self.assertEqual((status, fields.get('C'), fields.get('S')), ('error', '28000', 'FATAL'))
        self.assertIsNone(getattr(raw, 'sasl_mechanisms', None))  # no authentication began
        ev = relay.wait_for(lambda e: e.get('principal', {}).get('application_name') ==
                            'tls-plaintext-raw', kind='login_failed')[0]
        self.assertEqual(ev['error']['sqlstate'], '28000')
        # Direct, the server refuses plaintext too (the control).
        direct = psql(conninfo(cluster.port, sslmode='disable'), 'SELECT 1')
        self.assertNotEqual(direct.returncode, 0)
        # The same client over TLS gets in.
        ok = psql(conninfo(relay.port('secure'), sslmode='require'), 'SELECT 1')
        self.assertEqual(ok.returncode, 0, ok.stderr)

    def test_no_channel_binding_offered_to_a_plaintext_client(self):
        # tls.require: false lets a plaintext client through; it has no channel to bind, so the
        # server's SCRAM-SHA-256-PLUS (offered on the relay's TLS leg) is not passed on.
        with fx.RawPg(fx.LOOPBACK, relay.port('optional')) as raw:
            self.assertEqual(raw.startup(USER, 'appdb', password=PASSWORD), ('ready', None))
            self.assertIn('SCRAM-SHA-256', raw.sasl_mechanisms)
            self.assertNotIn('SCRAM-SHA-256-PLUS', raw.sasl_mechanisms)
        out = psql(conninfo(relay.port('optional'), sslmode='disable'), 'SELECT 7')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), '7')

    def test_wrong_password_psycopg2(self):
        import psycopg2
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            pg_connect(relay.port('secure'), sslmode='require', password='nope').close()
        self.assertIn('password authentication failed', str(ctx.exception))

    def test_wrong_upstream_ca_fails_fast(self):
        t0 = time.monotonic()
        out = psql(conninfo(relay.port('wrongca'), sslmode='require'), 'SELECT 1', timeout=60)
        elapsed = time.monotonic() - t0
        self.assertNotEqual(out.returncode, 0, 'connected through an unverifiable upstream')
        self.assertLess(elapsed, 15, f'psql took {elapsed:.1f}s to fail')
        self.assertIn('FATAL', out.stderr, f'no ErrorResponse from the relay: {out.stderr!r}\n'
                                           f'{relay.diag()}')

    def test_wrong_upstream_ca_raw_error(self):
        with fx.RawPg(fx.LOOPBACK, relay.port('wrongca'), timeout=15) as raw:
            self.assertEqual(raw.start_tls(pki.ca_cert, 'localhost'), b'S')
            try:
                status, fields = raw.startup(USER, 'appdb', password=PASSWORD)
            except socket.timeout:
                self.fail(f'no answer within 15s\n{relay.diag()}')
        self.assertEqual(status, 'error', f'{status} {raw.messages}')
        self.assertEqual(fields.get('S'), 'FATAL', fields)
        self.assertTrue(fields.get('C', '').startswith('08'), f'connection-class SQLSTATE '
                                                              f'expected: {fields}')


class ClientCertificateTest(unittest.TestCase):
    def test_client_certificate_subject_is_the_principals(self):
        # tls.client_ca: a client certificate is requested and verified; its subject is
        # recorded as principal.cert_subject. A client without one still connects (password).
        upstream = f'{fx.LOOPBACK}:{cluster.port}'
        own = fx.Relay([{'name': 'mtls', 'env': 'test', 'upstream': upstream,
                         'tls': {'cert': str(pki.relay_cert), 'key': str(pki.relay_key),
                                 'client_ca': str(pki.ca_cert)},
                         'upstream_tls': {'ca': str(pki.ca_cert), 'server_name': 'localhost'}}])
        self.addCleanup(own.close)
        own.start()
        with_cert = psql(conninfo(own.port(), sslmode='verify-ca', sslrootcert=pki.ca_cert,
                                  sslcert=pki.client_cert, sslkey=pki.client_key,
                                  application_name='tls-client-cert'), 'SELECT 101')
        self.assertEqual(with_cert.returncode, 0, with_cert.stderr + own.diag())
        without = psql(conninfo(own.port(), sslmode='verify-ca', sslrootcert=pki.ca_cert,
                                application_name='tls-no-client-cert'), 'SELECT 102')
        self.assertEqual(without.returncode, 0, without.stderr)

        def principal(app):
            ev = own.wait_for(lambda e: e.get('principal', {}).get('application_name') == app,
                              kind='statement')[0]
            return ev['principal']

        self.assertIn('CN=app', principal('tls-client-cert').get('cert_subject', ''))
        self.assertNotIn('cert_subject', principal('tls-no-client-cert'))

        # A certificate from another CA is rejected in the handshake.
        cert, key = pki.make_cert('stranger', 'stranger', ca='other_ca', client=True)
        other = psql(conninfo(own.port(), sslmode='verify-ca', sslrootcert=pki.ca_cert,
                              sslcert=cert, sslkey=key, application_name='tls-stranger'),
                     'SELECT 103')
        self.assertNotEqual(other.returncode, 0, other.stdout)
        self.assertFalse(own.events('statement', lambda e: e.get('principal', {}).get(
            'application_name') == 'tls-stranger'))
        # Audited as a failed login (before any startup packet: the client address only).
        ev = own.wait_for(lambda e: 'TLS handshake failed' in e.get('error', {}).get(
            'message', ''), kind='login_failed')[0]
        self.assertEqual(ev['error']['sqlstate'], '28000')


    def test_upstream_certificate_only_for_the_same_verified_identity(self):
        # A server that logs certuser in by client certificate (pg_hba `cert`). The relay holds
        # certuser's certificate and presents it only for a client whose own certificate it
        # verified with the mapped subject (CN=app): never for a client without one, with
        # another, or in plaintext.
        certuser_cert, certuser_key = pki.make_cert('certuser', 'certuser', client=True)
        other_cert, other_key = pki.make_cert('other-client', 'other', client=True)
        pg = fx.PgCluster(ssl_cert=pki.server_cert, ssl_key=pki.server_key, ssl_ca=pki.ca_cert,
                          hba_lines=[f'hostssl all certuser {fx.LOOPBACK}/32 cert',
                                     f'hostssl all all {fx.LOOPBACK}/32 scram-sha-256'])
        self.addCleanup(pg.close)
        pg.start()
        pg.create_user('certuser')
        own = fx.Relay([{'name': 'certmap', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{pg.port}',
                         'tls': {'cert': str(pki.relay_cert), 'key': str(pki.relay_key),
                                 'client_ca': str(pki.ca_cert)},
                         'upstream_tls': {'ca': str(pki.ca_cert), 'server_name': 'localhost',
                                          'client_certs': [{'subject': 'CN=app',
                                                            'cert': str(certuser_cert),
                                                            'key': str(certuser_key)}]}}])
        self.addCleanup(own.close)
        own.start()

        def connect(app, **extra):
            return psql(conninfo(own.port(), user='certuser', dbname='postgres',
                                 application_name=app, **extra), 'SELECT current_user')

        ok = connect('cert-mapped', sslmode='verify-ca', sslrootcert=pki.ca_cert,
                     sslcert=pki.client_cert, sslkey=pki.client_key)
        self.assertEqual(ok.returncode, 0, ok.stderr + own.diag())
        self.assertEqual(ok.stdout.strip(), 'certuser')
        refused = {
            'cert-none': dict(sslmode='verify-ca', sslrootcert=pki.ca_cert),
            'cert-other': dict(sslmode='verify-ca', sslrootcert=pki.ca_cert, sslcert=other_cert,
                               sslkey=other_key),
            'cert-plaintext': dict(sslmode='disable'),
        }
        for app, extra in refused.items():
            with self.subTest(app):
                out = connect(app, **extra)
                self.assertNotEqual(out.returncode, 0, out.stdout)
                ev = own.wait_for(lambda e: e.get('principal', {}).get('application_name') == app,
                                  kind='login_failed')[0]
                self.assertEqual(ev['error']['sqlstate'], '28000', ev)
        self.assertIn('CN=other', str(own.events('login_failed', lambda e: e.get(
            'principal', {}).get('application_name') == 'cert-other')))


    def test_spiffe_identity(self):
        # An X.509-SVID: the URI SAN is the principal's subject (tls.client_identity: uri_san),
        # policy matches it, the audit log records subject, SAN and issuer, and the upstream
        # certificate is mapped by SAN.
        spiffe = 'spiffe://example.org/ns/prod/sa/reporter'
        svid_cert, svid_key = pki.make_cert('svid', 'reporter', client=True, uris=[spiffe])
        plain_cert, plain_key = pki.make_cert('no-svid', 'reporter', client=True)
        certuser_cert, certuser_key = pki.make_cert('certuser2', 'certuser', client=True)
        pg = fx.PgCluster(ssl_cert=pki.server_cert, ssl_key=pki.server_key, ssl_ca=pki.ca_cert,
                          hba_lines=[f'hostssl all certuser {fx.LOOPBACK}/32 cert'])
        self.addCleanup(pg.close)
        pg.start()
        pg.create_user('certuser')
        pg.psql('CREATE TABLE payroll (v int); GRANT SELECT ON payroll TO certuser')
        work = tempfile.mkdtemp(prefix='dbwarden-spiffe-')
        self.addCleanup(shutil.rmtree, work, True)
        policy = os.path.join(work, 'policy.yaml')
        with open(policy, 'w') as f:
            f.write('version: 1\nrules:\n'
                    '  - id: reporters-no-payroll\n'
                    '    match:\n'
                    '      principal: {subject: ["spiffe://example.org/ns/prod/sa/*"],\n'
                    '                  cert_san: ["spiffe://example.org/*"]}\n'
                    '      statement: {tables: [payroll]}\n'
                    '    action: deny\n')
        own = fx.Relay([{'name': 'svid', 'env': 'test', 'upstream': f'{fx.LOOPBACK}:{pg.port}',
                         'tls': {'cert': str(pki.relay_cert), 'key': str(pki.relay_key),
                                 'client_ca': str(pki.ca_cert), 'client_identity': 'uri_san'},
                         'upstream_tls': {'ca': str(pki.ca_cert), 'server_name': 'localhost',
                                          'client_certs': [{'uri_san': spiffe,
                                                            'cert': str(certuser_cert),
                                                            'key': str(certuser_key)}]}}],
                       extra={'policy': {'files': [policy], 'mode': 'enforce'}})
        self.addCleanup(own.close)
        own.start()

        def run(app, cert, key, sql):
            return psql(conninfo(own.port(), user='certuser', dbname='postgres',
                                 application_name=app, sslmode='verify-ca',
                                 sslrootcert=pki.ca_cert, sslcert=cert, sslkey=key), sql)

        ok = run('svid-ok', svid_cert, svid_key, 'SELECT current_user')
        self.assertEqual((ok.returncode, ok.stdout.strip()), (0, 'certuser'), ok.stderr)
        denied = run('svid-payroll', svid_cert, svid_key, 'SELECT * FROM payroll')
        self.assertNotEqual(denied.returncode, 0)
        self.assertIn('reporters-no-payroll', denied.stderr)
        ev = own.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'svid-ok',
                          kind='statement')[0]['principal']
        self.assertEqual(ev['cert_san'], spiffe)
        self.assertEqual(ev['cert_subject'], 'CN=reporter')
        self.assertTrue(ev['cert_issuer'].startswith('CN='), ev)
        # The same subject without the SAN: not the mapped identity, so no upstream
        # certificate, and the server refuses the login.
        other = run('svid-none', plain_cert, plain_key, 'SELECT 1')
        self.assertNotEqual(other.returncode, 0, other.stdout)
        own.wait_for(lambda e: e.get('principal', {}).get('application_name') == 'svid-none',
                     kind='login_failed')
        # policy eval sees the same keys.
        line = json.dumps({'sql': 'SELECT * FROM payroll', 'target': 'svid', 'principal': {
            'db_user': 'certuser', 'subject': spiffe, 'cert_san': spiffe}})
        out = subprocess.run([fx.dbwarden_bin(), 'policy', 'eval', '--policy', policy],
                             input=line + '\n', capture_output=True, text=True, timeout=30)
        self.assertIn('reporters-no-payroll', out.stdout, out.stderr)
        other_san = line.replace('example.org/ns', 'example.com/ns')
        out = subprocess.run([fx.dbwarden_bin(), 'policy', 'eval', '--policy', policy],
                             input=other_san + '\n', capture_output=True, text=True, timeout=30)
        self.assertNotIn('reporters-no-payroll', out.stdout, out.stderr)


if __name__ == '__main__':
    unittest.main()
