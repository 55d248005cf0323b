"""Test-made JWTs and the JWKS that verifies them, for tests/integration/test_token_auth.py.

Keys are made with python3-cryptography; tokens are assembled by hand (not with a JWT library) so
that the tests can also build the tokens no library would sign: `alg: none`, HS256 keyed with the
public key, a signature in the wrong encoding, duplicate claims. A JWKS over HTTPS is served by
JwksServer, whose key set and failure mode the test changes while the agent runs.
"""

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _int_b64u(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(length, 'big'))


class Key:
    """A signing key with its kid and JWS algorithm."""

    def __init__(self, alg, kid):
        self.alg, self.kid = alg, kid
        if alg == 'RS256':
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == 'ES256':
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg == 'EdDSA':
            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)

    def jwk(self):
        pub = self.private.public_key()
        if self.alg == 'RS256':
            n = pub.public_numbers()
            return {'kty': 'RSA', 'kid': self.kid, 'use': 'sig', 'alg': 'RS256',
                    'n': _int_b64u(n.n), 'e': _int_b64u(n.e)}
        if self.alg == 'ES256':
            n = pub.public_numbers()
            return {'kty': 'EC', 'kid': self.kid, 'use': 'sig', 'crv': 'P-256',
                    'x': _int_b64u(n.x, 32), 'y': _int_b64u(n.y, 32)}
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {'kty': 'OKP', 'kid': self.kid, 'use': 'sig', 'crv': 'Ed25519', 'x': b64u(raw)}

    def public_pem(self):
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data, der=False):
        if self.alg == 'RS256':
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == 'ES256':
            sig = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
            if der:
                return sig
            r, s = decode_dss_signature(sig)
            return r.to_bytes(32, 'big') + s.to_bytes(32, 'big')
        return self.private.sign(data)


def jwks(*keys):
    return json.dumps({'keys': [k.jwk() for k in keys]})


def claims(issuer, subject, audience='dbwarden', lifetime=600, **extra):
    now = int(time.time())
    c = {'iss': issuer, 'sub': subject, 'aud': audience, 'iat': now, 'nbf': now - 5,
         'exp': now + lifetime, 'jti': str(uuid.uuid4())}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def token(key, payload, *, alg=None, kid='default', header=None, raw_payload=None,
          hs_secret=None, der=False):
    """A compact JWS. kid='default' takes the key's; alg overrides the header's algorithm;
    hs_secret signs with HMAC-SHA256 instead (the key-confusion attack); alg='none' has an empty
    signature."""
    h = {'typ': 'JWT', 'alg': alg or (key.alg if key else 'none')}
    if kid == 'default':
        kid = key.kid if key else None
    if kid is not None:
        h['kid'] = kid
    h.update(header or {})
    body = raw_payload if raw_payload is not None else json.dumps(payload)
    signing_input = (b64u(json.dumps(h)) + '.' + b64u(body)).encode()
    if hs_secret is not None:
        sig = hmac.new(hs_secret, signing_input, hashlib.sha256).digest()
    elif h['alg'] == 'none' or key is None:
        sig = b''
    else:
        sig = key.sign(signing_input, der=der)
    return signing_input.decode() + '.' + b64u(sig)


class JwksServer:
    """HTTPS on 127.0.0.1 serving `self.body` at any path; `self.status` other than 200 makes
    every request fail. Counts requests."""

    def __init__(self, cert, key):
        self.body = '{"keys": []}'
        self.status = 200
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                owner.requests += 1
                data = owner.body.encode()
                self.send_response(owner.status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f'https://127.0.0.1:{self.port}/jwks'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _resign(key, header, payload_text, hs_secret=None):
    signing_input = (b64u(json.dumps(header)) + '.' + b64u(payload_text)).encode()
    if hs_secret is not None:
        sig = hmac.new(hs_secret, signing_input, hashlib.sha256).digest()
    elif key is None:
        sig = b''
    else:
        sig = key.sign(signing_input)
    return signing_input.decode() + '.' + b64u(sig)


def variants(key, other_key, attacker_key, payload):
    """Tricks by class on one valid token of `key` (RS256) for `payload`: (class, token) pairs,
    each of which a verifier must refuse. `other_key` is another key of the same issuer (ES256),
    `attacker_key` one the issuer never published."""
    header = {'typ': 'JWT', 'alg': key.alg, 'kid': key.kid}
    text = json.dumps(payload)
    base = _resign(key, header, text)
    h, p, s = base.split('.')
    out = []
    # Bytes changed in each part (the signature then no longer matches, or the part is not
    # base64url or JSON any more).
    for name, part in (('header', 0), ('payload', 1), ('signature', 2)):
        segs = [h, p, s]
        seg = segs[part]
        for pos in (0, len(seg) // 3, len(seg) // 2, len(seg) - 2):
            c = seg[pos]
            segs2 = list(segs)
            segs2[part] = seg[:pos] + ('A' if c != 'A' else 'B') + seg[pos + 1:]
            out.append((f'{name} byte changed at {pos}', '.'.join(segs2)))
    # Structure.
    out += [
        ('two parts', f'{h}.{p}'),
        ('four parts', f'{h}.{p}.{s}.{s}'),
        ('empty signature', f'{h}.{p}.'),
        ('padding', f'{h}=.{p}.{s}'),
        ('whitespace', f'{h}. {p}.{s}'),
        ('standard base64 alphabet', base.replace('-', '+').replace('_', '/')
         if ('-' in base or '_' in base) else f'{h}+.{p}.{s}'),
        ('parts swapped', f'{p}.{h}.{s}'),
        ('signature of another token',
         f'{h}.{p}.' + _resign(key, header, json.dumps(dict(payload, sub='x'))).split('.')[2]),
        ('trailing dot', base + '.'),
        ('oversized', _resign(key, header, json.dumps(dict(payload, pad='x' * 20000)))),
    ]
    # The algorithm: none in its spellings, the HMAC family keyed with public material, and
    # algorithms outside RS256/ES256/EdDSA, each signed as well as it can be.
    pem = key.public_pem()
    for alg in ('none', 'None', 'NONE', 'nOnE', ''):
        out.append((f'alg {alg!r}', _resign(None, dict(header, alg=alg), text)))
    for secret_name, secret in (('PEM', pem), ('JWK text', json.dumps(key.jwk()).encode()),
                                ('modulus', key.private.public_key().public_numbers()
                                 .n.to_bytes(256, 'big'))):
        out.append((f'HS256 keyed with the public key ({secret_name})',
                    _resign(None, dict(header, alg='HS256'), text, hs_secret=secret)))
    for alg in ('HS384', 'HS512', 'RS384', 'RS512', 'PS256', 'ES384', 'ES512', 'EdDSA', 'ES256'):
        out.append((f'alg {alg} over an RS256 signature', _resign(key, dict(header, alg=alg), text)))
    out.append(('alg missing', _resign(key, {'typ': 'JWT', 'kid': key.kid}, text)))
    out.append(('alg a list', _resign(key, dict(header, alg=['RS256']), text)))
    # Key choice.
    out += [
        ('kid of the EC key over an RSA signature', _resign(key, dict(header, kid=other_key.kid),
                                                            text)),
        ('kid unknown', _resign(key, dict(header, kid='k-unknown'), text)),
        ('kid a path', _resign(key, dict(header, kid='../../etc/passwd'), text)),
        ('kid a number', _resign(key, dict(header, kid=1), text)),
        ('attacker key with the issuer\'s kid', _resign(attacker_key, header, text)),
        ('attacker key embedded as jwk', _resign(
            attacker_key, dict(header, jwk=attacker_key.jwk(), kid=attacker_key.kid), text)),
        ('attacker key by jku', _resign(
            attacker_key, dict(header, jku='https://evil.test/jwks', kid=attacker_key.kid), text)),
        ('crit', _resign(key, dict(header, crit=['exp']), text)),
        ('b64 false', _resign(key, dict(header, b64=False, crit=['b64']), text)),
    ]
    # Claims, validly signed: each breaks one rule.
    now = int(time.time())
    bad_claims = [
        ('issuer without its trailing slash', dict(payload, iss=payload['iss'].rstrip('/'))),
        ('issuer in upper case', dict(payload, iss=payload['iss'].upper())),
        ('issuer with a space', dict(payload, iss=payload['iss'] + ' ')),
        ('issuer a list', dict(payload, iss=[payload['iss']])),
        ('audience in upper case', dict(payload, aud='DBWARDEN')),
        ('audience list without ours', dict(payload, aud=['other', 'dbwardenx'])),
        ('audience empty list', dict(payload, aud=[])),
        ('audience missing', {k: v for k, v in payload.items() if k != 'aud'}),
        ('audience a number', dict(payload, aud=1)),
        ('exp a string', dict(payload, exp=str(payload['exp']))),
        ('exp missing', {k: v for k, v in payload.items() if k != 'exp'}),
        ('exp long past', dict(payload, exp=1)),
        ('exp negative', dict(payload, exp=-1)),
        ('exp beyond the skew', dict(payload, exp=now - 120)),
        ('nbf in the future', dict(payload, nbf=now + 3600)),
        ('nbf a string', dict(payload, nbf=str(now))),
    ]
    for name, c in bad_claims:
        out.append((name, _resign(key, header, json.dumps(c))))
    raw = text[:-1] + ', "iss": "https://evil.test"}'
    out.append(('duplicate iss (last one evil)', _resign(key, header, raw)))
    raw = '{"iss": "https://evil.test", ' + text[1:]
    out.append(('duplicate iss (first one evil)', _resign(key, header, raw)))
    out.append(('payload a list', _resign(key, header, json.dumps([payload]))))
    out.append(('payload with trailing bytes', _resign(key, header, text + ' x')))
    out.append(('payload not UTF-8', _resign(key, header, text[:-1].encode() + b', "x": "\xff"}')))
    return out


def accepts(token, keys, issuer, audiences, leeway):
    """PyJWT (python3-jwt) as an independent verifier: True when it accepts `token` with the
    key its kid names among `keys` (or the only one), for RS256/ES256/EdDSA."""
    import jwt
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get('kid')
        candidates = [k for k in keys if (kid is None or k.kid == kid) and
                      (kid is not None or k.alg == header.get('alg'))]
        if len(candidates) != 1:
            return False
        k = candidates[0]
        jwt.decode(token, k.private.public_key(), algorithms=[k.alg], audience=audiences,
                   issuer=issuer, leeway=leeway,
                   options={'require': ['exp', 'iss', 'aud'], 'verify_signature': True})
        return True
    except Exception:
        return False
