"""Identity-aware access through the relay (targets[].auth): a client logs in with a JWT as its
password, the relay verifies it against keys served over HTTPS by this test (or read from a file),
maps the verified principal to a database role, and logs in upstream with a secret the client
never sees (SCRAM, md5). Refused tokens (expired, wrong audience or issuer, bad signature,
unknown key, `alg: none`, HS256 keyed with the public key, ...) end with FATAL 28000 and a
`login_failed` event; the token itself never reaches the server or the audit log.

Run: cd tests/integration && DBWARDEN_BIN=../../build/default/agent/dbwarden \
         /usr/bin/python3 -m unittest -v test_token_auth
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402
import tokens as tk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PSQL = str(fx.PG_BIN / 'psql')
ISS_URL = 'https://idp.test/'            # keys over HTTPS (JwksServer)
ISS_FILE = 'https://ci-oidc.test'        # keys from a file; every token an agent
ISS_MITM = 'https://mitm.test'           # keys over HTTPS from a server its CA does not vouch for
ROLES = {'app_reader': 'reader-Secret-1', 'app_md5': 'md5-Secret-2', 'app_writer': 'writer-S3'}
POLICY = """version: 1
principals:
  agents:
    - claims: {team: ["robots"]}
rules:
  - id: ci-no-delete
    match:
      principal: {issuer: ["https://ci-oidc.test"]}
      statement: {commands: [DELETE]}
    action: deny
    message: CI tokens do not delete
masking:
  - id: people-emails
    match: {target: tok}
    columns: ["people.email"]
    function: redact
"""

pki = cluster = relay = server = None
keys = {}
workdir = None


def setUpModule():
    global pki, cluster, relay, server, workdir
    fx.require_postgres()
    fx.require_psycopg2()
    fx.dbwarden_bin()
    workdir = Path(tempfile.mkdtemp(prefix='dbwarden-token-'))
    unittest.addModuleCleanup(lambda: shutil.rmtree(workdir, ignore_errors=True))
    pki = fx.make_test_pki(client_cn='cert-agent')
    unittest.addModuleCleanup(pki.close)
    pki.spiffe_cert, pki.spiffe_key = pki.make_cert(
        'spiffe', 'workload', client=True, uris=['spiffe://prod.test/ns/etl/sa/loader'])
    for alg, kid in (('RS256', 'rsa-1'), ('ES256', 'ec-1'), ('EdDSA', 'ed-1'),
                     ('RS256', 'rsa-2'), ('ES256', 'file-ec')):
        keys[kid] = tk.Key(alg, kid)
    server = tk.JwksServer(pki.server_cert, pki.server_key)
    unittest.addModuleCleanup(server.close)
    server.body = tk.jwks(keys['rsa-1'], keys['ec-1'], keys['ed-1'])
    (workdir / 'file-jwks.json').write_text(tk.jwks(keys['file-ec']))
    (workdir / 'policy.yaml').write_text(POLICY)
    # md5 on the wire for a role stored as md5, SCRAM for the others.
    cluster = fx.PgCluster(hba_lines=[f'host all all {fx.LOOPBACK}/32 md5'])
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    for role, password in ROLES.items():
        if role == 'app_md5':
            cluster.psql("SET password_encryption = 'md5'; "
                         f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        else:
            cluster.create_user(role, password=password)
        (workdir / role).write_text(password + '\n')
    cluster.create_db('appdb', owner='app_reader')
    cluster.psql('CREATE TABLE t(id int); INSERT INTO t VALUES (1), (2)', dbname='appdb')
    cluster.psql('GRANT ALL ON t TO app_writer, app_md5', dbname='appdb')
    cluster.psql("CREATE TABLE people(id int, email text); "
                 "INSERT INTO people VALUES (1, 'ann@example.com')", dbname='appdb',
                 user='app_reader')
    # app_writer's secret as a systemd credential (LoadCredential=app_writer:...).
    creddir = workdir / 'credentials'
    creddir.mkdir()
    shutil.copy(workdir / 'app_writer', creddir / 'app_writer')
    os.environ['CREDENTIALS_DIRECTORY'] = str(creddir)
    upstream = f'{fx.LOOPBACK}:{cluster.port}'
    tls = {'cert': str(pki.relay_cert), 'key': str(pki.relay_key)}
    auth = {
        'token': {
            'issuers': [
                {'issuer': ISS_URL, 'audiences': ['dbwarden', 'dbwarden-eu'],
                 'jwks_url': server.url, 'jwks_ca': str(pki.ca_cert), 'jwks_refresh': '2s',
                 'kind_claim': 'dbw_kind'},
                {'issuer': ISS_FILE, 'audience': 'dbwarden', 'jwks_file':
                 str(workdir / 'file-jwks.json'), 'kind': 'agent', 'groups_claim': 'roles'},
            ],
            'clock_skew': '30s',
        },
        'credentials': [
            {'match': {'groups': ['dba']}, 'role': 'app_md5',
             'password_file': str(workdir / 'app_md5')},
            {'match': {'subject': ['agent-*', 'bound-*', 'human-*']}, 'role': 'app_reader',
             'users': ['app_reader', 'reader'], 'password_file': str(workdir / 'app_reader')},
            {'match': {'issuer': [ISS_FILE]}, 'role': 'app_writer', 'credential': 'app_writer'},
        ],
        'bind': [{'subject': 'bound-*', 'exe': ['*/psql']}],
    }
    cert_auth = {'credentials': [
        {'match': {'cert_san': ['spiffe://prod.test/ns/etl/*']}, 'role': 'app_writer',
         'users': ['*'], 'password_file': str(workdir / 'app_writer')}]}
    # The same key server, but trusted only through a CA that did not sign its certificate:
    # what a relay sees when someone on the path serves their own keys.
    mitm_auth = {'token': {'issuers': [
        {'issuer': ISS_MITM, 'audience': 'dbwarden', 'jwks_url': server.url,
         'jwks_ca': str(pki.other_ca_cert)}]},
        'credentials': [{'match': {'subject': ['*']}, 'role': 'app_reader',
                         'password_file': str(workdir / 'app_reader')}]}
    relay = fx.Relay([
        {'name': 'tok', 'env': 'test', 'upstream': upstream, 'tls': tls, 'auth': auth},
        {'name': 'mitm', 'env': 'test', 'upstream': upstream, 'tls': tls, 'auth': mitm_auth},
        {'name': 'certs', 'env': 'test', 'upstream': upstream,
         'tls': dict(tls, client_ca=str(pki.ca_cert), client_identity='uri_san'),
         'auth': cert_auth},
    ], extra={'policy': {'files': [str(workdir / 'policy.yaml')]}})
    unittest.addModuleCleanup(relay.close)
    relay.start()
    fx.wait_until(lambda: server.requests > 0, 10, 'the relay to read the JWKS')


def tearDownModule():
    os.environ.pop('CREDENTIALS_DIRECTORY', None)
    if relay is not None and relay.running():
        relay.stop()


def psql(sql, password, *, user='app_reader', target='tok', sslmode='require', extra=()):
    conn = (f'host={fx.LOOPBACK} port={relay.port(target)} user={user} dbname=appdb '
            f'sslmode={sslmode}')
    for e in extra:
        conn += ' ' + e
    env = dict(fx.CLIENT_ENV, PGPASSWORD=password, PGAPPNAME='token-psql')
    return subprocess.run([PSQL, '-X', '-A', '-t', '-c', sql, conn], capture_output=True,
                          text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)


def pg_connect(password, user='app_reader'):
    import psycopg2
    return psycopg2.connect(host=fx.LOOPBACK, port=relay.port('tok'), user=user, dbname='appdb',
                            password=password, sslmode='require', connect_timeout=10,
                            application_name='token-psycopg2')


def url_token(subject='agent-build-42', key='rsa-1', **kw):
    return tk.token(keys[key], tk.claims(ISS_URL, subject, **kw))


class TokenLoginTest(unittest.TestCase):

    def assert_logged_in(self, token, role='app_reader', user='app_reader'):
        r = psql('SELECT current_user, session_user', token, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f'{role}|{role}')

    def assert_refused(self, token, phrase, reason, user='app_reader'):
        r = psql('SELECT 1', token, user=user)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(phrase, r.stderr)
        events = relay.wait_for(
            lambda e: phrase in (e.get('error') or {}).get('message', ''), kind='login_failed')
        self.assertEqual(events[-1]['error']['sqlstate'], '28000')
        self.assertEqual(events[-1].get('detail'), f'auth: {reason}')
        return events[-1]

    def test_valid_tokens_of_each_algorithm_log_in_as_the_mapped_role(self):
        for kid in ('rsa-1', 'ec-1', 'ed-1'):
            with self.subTest(kid=kid):
                claims = tk.claims(ISS_URL, f'agent-{kid}')
                t = tk.token(keys[kid], claims)
                self.assert_logged_in(t)
                ev = relay.wait_for(
                    lambda e: fx.principal(e).get('jti') == claims['jti'], kind='statement')[-1]
                p = fx.principal(ev)
                self.assertEqual((p['auth'], p['subject'], p['issuer'], p['db_user']),
                                 ('token', f'agent-{kid}', ISS_URL, 'app_reader'))
                self.assertEqual(p['requested_user'], 'app_reader')
        # The bearer token is in no record and no log line.
        export = subprocess.run([str(relay.bin), 'audit', 'export', '--state-dir',
                                 relay.state_dir], capture_output=True, text=True, timeout=60)
        self.assertNotIn(t.split('.')[2], export.stdout)
        self.assertNotIn(t.split('.')[2], relay.stderr_text())

    def test_the_client_asks_for_a_user_the_mapping_allows(self):
        r = psql('SELECT current_user', url_token(), user='reader')
        self.assertEqual((r.returncode, r.stdout.strip()), (0, 'app_reader'), r.stderr)
        self.assert_refused(url_token(), 'may not log in as database user "postgres"',
                            'unmapped', user='postgres')

    def test_refused_tokens(self):
        rsa = keys['rsa-1']
        now = int(time.time())
        cases = [
            ('expired', tk.token(rsa, tk.claims(ISS_URL, 'agent-x', lifetime=-120)),
             'expired', 'expired'),
            ('not yet valid', tk.token(rsa, tk.claims(ISS_URL, 'agent-x', nbf=now + 600)),
             'not valid before', 'not_yet_valid'),
            ('wrong audience', tk.token(rsa, tk.claims(ISS_URL, 'agent-x', audience='other')),
             'audience', 'audience'),
            ('unknown issuer', tk.token(rsa, tk.claims('https://evil.test', 'agent-x')),
             'issuer "https://evil.test" is not accepted', 'issuer'),
            ('issuer signed by another issuer\'s key',
             tk.token(keys['file-ec'], tk.claims(ISS_URL, 'agent-x'), kid='ec-1'),
             'token refused', 'bad_signature'),
            ('bad signature', url_token()[:-6] + ('AAAAAA' if not url_token().endswith('AAAAAA')
                                                 else 'BBBBBB'),
             'token refused', 'bad_signature'),
            ('unknown kid', tk.token(rsa, tk.claims(ISS_URL, 'agent-x'), kid='nope'),
             'nope', 'unknown_key'),
            ('alg none', tk.token(None, tk.claims(ISS_URL, 'agent-x'), alg='none', kid='rsa-1'),
             'not accepted', 'algorithm'),
            ('HS256 keyed with the public key',
             tk.token(rsa, tk.claims(ISS_URL, 'agent-x'), alg='HS256', hs_secret=rsa.public_pem()),
             'not accepted', 'algorithm'),
            ('ES256 signature in DER', tk.token(keys['ec-1'], tk.claims(ISS_URL, 'agent-x'),
                                                der=True), 'token refused', 'bad_signature'),
            ('no expiry', tk.token(rsa, tk.claims(ISS_URL, 'agent-x', exp=None, lifetime=0)),
             'exp', 'expired'),
            ('not a token', 'hunter2', 'not a JWT', 'malformed'),
        ]
        for name, token, phrase, reason in cases:
            with self.subTest(name):
                self.assert_refused(token, phrase, reason)
        # None of them reached the server as a session of the mapped role.
        self.assertEqual(cluster.query_value(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_reader'"), '0')

    def test_unmapped_subject_is_refused(self):
        self.assert_refused(url_token('stranger'), 'no database role is mapped for token '
                            'subject "stranger"', 'unmapped')

    def test_plaintext_client_is_refused(self):
        r = psql('SELECT 1', url_token(), sslmode='disable')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('requires TLS', r.stderr)

    def test_groups_claim_maps_to_an_md5_role(self):
        t = url_token('agent-dba', groups=['dba', 'ops'])
        self.assert_logged_in(t, role='app_md5', user='app_md5')
        ev = relay.wait_for(lambda e: fx.principal(e).get('subject') == 'agent-dba',
                            kind='session_start')[-1]
        self.assertEqual(fx.principal(ev)['groups'], ['dba', 'ops'])

    def test_file_issuer_systemd_credential_and_policy_on_issuer(self):
        t = tk.token(keys['file-ec'], tk.claims(ISS_FILE, 'repo:acme/app:ref:refs/heads/main',
                                                roles=['deploy']))
        r = psql('SELECT current_user', t, user='app_writer')
        self.assertEqual((r.returncode, r.stdout.strip()), (0, 'app_writer'), r.stderr)
        r = psql('DELETE FROM t', t, user='app_writer')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('CI tokens do not delete', r.stderr)
        ev = relay.wait_for(lambda e: fx.principal(e).get('issuer') == ISS_FILE,
                            kind='statement')[-1]
        self.assertEqual(fx.principal(ev)['kind'], 'agent')  # the issuer's `kind: agent`
        self.assertEqual(cluster.query_value('SELECT count(*) FROM t', dbname='appdb'), '2')

    def test_policy_eval_takes_issuer_and_claims(self):
        def decide(principal):
            line = json.dumps({'sql': 'DELETE FROM t WHERE id = 1', 'target': 'tok',
                               'principal': principal})
            out = subprocess.run([str(relay.bin), 'policy', 'eval', '--policy',
                                  str(workdir / 'policy.yaml')], input=line + '\n',
                                 capture_output=True, text=True, timeout=30)
            self.assertIn(out.returncode, (0, 1), out.stderr)
            return json.loads(out.stdout.splitlines()[0])
        ci = decide({'db_user': 'app_writer', 'subject': 'repo:x', 'issuer': ISS_FILE})
        self.assertEqual((ci['action'], ci['rules']), ('deny', ['ci-no-delete']))
        other = decide({'db_user': 'app_writer', 'subject': 'repo:x', 'issuer': ISS_URL})
        self.assertEqual(other['action'], 'allow')
        robot = decide({'db_user': 'u', 'claims': {'team': ['robots', 'x']}})
        self.assertEqual(robot['principal_kind'], 'agent')
        human = decide({'db_user': 'u', 'claims': {'team': 'people'}})
        self.assertEqual(human['principal_kind'], 'human')

    def test_masking_catalog_logs_in_with_the_injected_credential(self):
        # The masking catalog is read over the relay's own login: as the injected role, with
        # its secret (the server asks for a password). Were that login refused, the column
        # would be withheld instead of masked.
        r = psql('SELECT email FROM people', url_token('agent-masked'))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('ann@example.com', r.stdout)
        self.assertNotEqual(r.stdout.strip(), '')
        ev = relay.wait_for(lambda e: fx.principal(e).get('subject') == 'agent-masked' and
                            'masking' in e, kind='statement')[-1]
        self.assertFalse(ev['masking'].get('withheld'), ev['masking'])

    def test_kind_and_policy_matchers_from_claims(self):
        self.assert_logged_in(url_token('human-ann', dbw_kind='agent'))
        self.assert_logged_in(url_token('human-bob', team='robots'))
        self.assert_logged_in(url_token('human-cy'))
        kinds = {}
        for e in relay.wait_for(lambda e: fx.principal(e).get('subject', '').startswith('human-'),
                                kind='statement', count=3):
            kinds[fx.principal(e)['subject']] = fx.principal(e)['kind']
        self.assertEqual(kinds, {'human-ann': 'agent', 'human-bob': 'agent', 'human-cy': 'human'})

    def test_token_bound_to_a_workload(self):
        t = url_token('bound-etl')
        self.assert_logged_in(t)  # psql is the bound executable
        with self.assertRaises(Exception) as cm:
            pg_connect(t)
        self.assertIn('bound to its workload', str(cm.exception))
        ev = relay.wait_for(lambda e: 'bound to its workload' in
                            (e.get('error') or {}).get('message', ''), kind='login_failed')[-1]
        self.assertEqual(ev.get('detail'), 'auth: binding')

    def test_session_ends_when_its_token_expires(self):
        # Valid for 3 more seconds: exp + clock_skew (30 s) is 3 s from now. psql's second
        # statement comes after that.
        t = url_token('agent-short', lifetime=-27)
        conn = (f'host={fx.LOOPBACK} port={relay.port("tok")} user=app_reader dbname=appdb '
                'sslmode=require')
        r = subprocess.run([PSQL, '-X', '-A', '-t', '-c', 'SELECT pg_sleep(4)', '-c', 'SELECT 2',
                            conn], capture_output=True, text=True, timeout=30,
                           env=dict(fx.CLIENT_ENV, PGPASSWORD=t), stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('FATAL:  dbwarden: the token this session logged in with has expired',
                      r.stderr)
        self.assertNotIn('2', r.stdout)
        relay.wait_for(lambda e: fx.principal(e).get('subject') == 'agent-short',
                       kind='token_expired')
        # psycopg2: the same end (libpq reports the lost TLS connection after the FATAL).
        import psycopg2
        c = pg_connect(url_token('agent-short2', lifetime=-27))
        cur = c.cursor()
        cur.execute('SELECT 1')
        time.sleep(4)
        with self.assertRaises(psycopg2.OperationalError):
            cur.execute('SELECT 2')
        c.close()
        relay.wait_for(lambda e: fx.principal(e).get('subject') == 'agent-short2',
                       kind='token_expired')

    def test_key_server_with_an_untrusted_certificate_gives_no_keys(self):
        label = f'dbwarden_jwks_read_failures_total{{issuer="{ISS_MITM}"}}'
        fx.wait_until(lambda: fx.metric(relay.api_port, label) > 0, 15,
                      'the failed JWKS read to be counted')
        t = tk.token(keys['rsa-1'], tk.claims(ISS_MITM, 'agent-mitm'))
        r = psql('SELECT 1', t, target='mitm')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('no signing keys of issuer "https://mitm.test" could be read yet', r.stderr)
        self.assertEqual(fx.metric(relay.api_port,
                                   f'dbwarden_jwks_keys{{issuer="{ISS_MITM}"}}'), 0)
        self.assertIn('certificate verify failed', relay.stderr_text())

    def test_jwks_rotation_and_fetch_failure(self):
        # A new key is published: a token naming it makes the relay read the set at once.
        server.body = tk.jwks(keys['rsa-1'], keys['ec-1'], keys['ed-1'], keys['rsa-2'])
        self.assert_logged_in(url_token(key='rsa-2'))
        # The old RSA key is withdrawn: after the next periodic read it no longer verifies.
        server.body = tk.jwks(keys['ec-1'], keys['ed-1'], keys['rsa-2'])
        before = server.requests
        fx.wait_until(lambda: server.requests >= before + 2, 15, 'two more JWKS reads')
        self.assert_refused(url_token(key='rsa-1'), 'rsa-1', 'unknown_key')
        # The issuer fails: the last good keys stay in use, and the failures are counted.
        label = f'dbwarden_jwks_read_failures_total{{issuer="{ISS_URL}"}}'
        failures = fx.metric(relay.api_port, label) or 0
        server.status = 500
        try:
            fx.wait_until(lambda: (fx.metric(relay.api_port, label) or 0) > failures, 20,
                          'a failed JWKS read to be counted')
            self.assert_logged_in(url_token(key='ec-1'))
        finally:
            server.status = 200
            server.body = tk.jwks(keys['rsa-1'], keys['ec-1'], keys['ed-1'])
            before = server.requests
            fx.wait_until(lambda: server.requests >= before + 2, 30, 'the restored JWKS read')


class TokenVariantsTest(unittest.TestCase):
    """A valid token varied by class (tokens.variants: bytes, structure, algorithm, key choice,
    claims): the relay refuses every variant, and PyJWT, an independent verifier, is the oracle
    for which of them are really invalid. The few PyJWT accepts are pinned: the relay is
    stricter there on purpose."""

    STRICTER_THAN_PYJWT = {
        'duplicate iss (first one evil)',  # PyJWT's json keeps the last; the relay refuses both
        'exp a string', 'nbf a string',    # PyJWT converts "123"; RFC 7519 says NumericDate
        'crit',                            # PyJWT ignores it; RFC 7515 4.1.11 says refuse
        'standard base64 alphabet',        # Python's decoder maps +/ to -_; not base64url
        'oversized',                       # PyJWT has no size limit; the relay's is 16 KiB
    }

    def login(self, token):
        with fx.RawPg(fx.LOOPBACK, relay.port('tok')) as c:
            c.start_tls()
            return c.startup('app_reader', 'appdb', password=token)

    def test_tricks_by_class_are_refused(self):
        payload = tk.claims(ISS_URL, 'agent-variants')
        issuer_keys = [keys['rsa-1'], keys['ec-1'], keys['ed-1']]
        audiences = ['dbwarden', 'dbwarden-eu']
        attacker = tk.Key('RS256', 'rsa-1')  # same kid, a key the issuer never published
        # Valid variations: both verifiers accept them.
        valid = [
            ('as issued', tk.token(keys['rsa-1'], payload)),
            ('audience list', tk.token(keys['rsa-1'], dict(payload, aud=['x', 'dbwarden-eu']))),
            ('no kid, one key of its type', tk.token(keys['ed-1'], payload, kid=None)),
            ('extra claims', tk.token(keys['ec-1'], dict(payload, scope=['a'], n=1.5))),
        ]
        for name, token in valid:
            with self.subTest(name):
                self.assertTrue(tk.accepts(token, issuer_keys, ISS_URL, audiences, 30))
                self.assertEqual(self.login(token), ('ready', None))
        lax = set()
        tricks = tk.variants(keys['rsa-1'], keys['ec-1'], attacker, payload)
        self.assertGreater(len(tricks), 60)
        for name, token in tricks:
            with self.subTest(name):
                status, fields = self.login(token)
                self.assertEqual(status, 'error', name)
                self.assertEqual(fields.get('C'), '28000', fields)
                self.assertIn('dbwarden:', fields.get('M', ''))
                if tk.accepts(token, issuer_keys, ISS_URL, audiences, 30):
                    lax.add(name)
        self.assertEqual(lax, self.STRICTER_THAN_PYJWT)


class TokenMessageTest(unittest.TestCase):
    """The message carrying the token, as a hostile client may send it: each ends the connection
    with a FATAL and nothing reaches the server."""

    def exchange(self, data):
        with fx.RawPg(fx.LOOPBACK, relay.port('tok')) as c:
            c.start_tls()
            c.send(fx.startup_message('app_reader', 'appdb'))
            kind, payload = c.read_message()
            self.assertEqual((kind, payload), (b'R', b'\x00\x00\x00\x03'))  # cleartext asked
            c.send(data)
            out, end = c.read_until_eof()
        errors = [fx.error_fields(p) for k, p in out if k == b'E']
        self.assertEqual(len(errors), 1, out)
        self.assertEqual(errors[0].get('S'), 'FATAL')
        return errors[0]

    def test_declared_length_past_the_limit(self):
        for length in (16 * 1024 + 5, 0xFFFFFFFF):
            with self.subTest(length=length):
                e = self.exchange(b'p' + struct.pack('!I', length) + b'x' * 64)
                self.assertEqual(e['C'], '28000')
                self.assertIn('longer than 16 KiB', e['M'])

    def test_not_a_password_message(self):
        e = self.exchange(fx.frame(b'Q', b'SELECT 1\0'))
        self.assertEqual(e['C'], '08P01')
        self.assertIn('expected a password message', e['M'])
        e = self.exchange(b'p' + struct.pack('!I', 3))
        self.assertEqual(e['C'], '08P01')

    def test_password_message_without_terminator(self):
        e = self.exchange(fx.frame(b'p', url_token('agent-x').encode()))
        self.assertEqual(e['C'], '08P01')


class ClientDriversTest(unittest.TestCase):
    """psycopg2, pgjdbc and node-postgres log in with a token and no database password."""

    def test_psycopg2(self):
        conn = pg_connect(url_token('agent-psycopg2'))
        cur = conn.cursor()
        cur.execute('SELECT current_user, session_user')
        self.assertEqual(cur.fetchone(), ('app_reader', 'app_reader'))
        conn.close()

    def run_driver(self, cmd):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                           env=dict(os.environ, PATH='/usr/local/bin:/usr/bin:/bin'))
        self.assertEqual(r.stdout.strip(), 'ok app_reader app_reader', r.stderr)

    def test_jdbc(self):
        java = shutil.which('java', path='/usr/local/bin:/usr/bin:/bin')
        if java is None:
            raise fx.PrerequisiteError('java not found (install openjdk-17-jre-headless)')
        self.run_driver([java, '-cp', '/usr/share/java/postgresql.jar',
                         str(REPO / 'tests' / 'drivers' / 'jdbc' / 'TokenLogin.java'),
                         fx.LOOPBACK, str(relay.port('tok')), 'appdb', 'app_reader',
                         url_token('agent-jdbc')])

    def test_node_postgres(self):
        node = shutil.which('node', path='/usr/local/bin:/usr/bin:/bin')
        if node is None:
            raise fx.PrerequisiteError('node not found (install nodejs and npm)')
        self.run_driver([node, str(REPO / 'tests' / 'drivers' / 'node' / 'token_login.js'),
                         fx.LOOPBACK, str(relay.port('tok')), 'appdb', 'app_reader',
                         url_token('agent-node')])


class CertificateIdentityTest(unittest.TestCase):
    """Without a token: the client certificate's SPIFFE ID is the principal, mapped to a role."""

    def conn(self, cert=None, key=None, user='anyone'):
        parts = [f'sslrootcert={pki.ca_cert}']
        if cert:
            parts += [f'sslcert={cert}', f'sslkey={key}']
        return psql('SELECT current_user', 'not-a-database-password', user=user, target='certs',
                    sslmode='verify-ca', extra=parts)

    def test_spiffe_certificate_logs_in_as_the_mapped_role(self):
        r = self.conn(pki.spiffe_cert, pki.spiffe_key)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, 'app_writer'), r.stderr)
        ev = relay.wait_for(lambda e: fx.principal(e).get('auth') == 'certificate',
                            kind='statement')[-1]
        self.assertEqual(fx.principal(ev)['subject'], 'spiffe://prod.test/ns/etl/sa/loader')
        self.assertEqual(fx.principal(ev)['requested_user'], 'anyone')

    def test_unmapped_certificate_and_no_certificate_are_refused(self):
        r = self.conn(pki.client_cert, pki.client_key)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('no database role is mapped', r.stderr)
        r = self.conn()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('admits verified principals only', r.stderr)


if __name__ == '__main__':
    unittest.main()
