"""`dbwarden config check` and `dbwarden --version`: valid configs pass, each kind of mistake is
reported as `FILE:LINE: reason` with the line of the mistake and exit code 2.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_config_cli.py -v
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402


def base_lines(state_dir):
    """A valid config as a list of lines; line N of the file is element N-1."""
    return [
        f'state_dir: {state_dir}',          # 1
        'relay:',                           # 2
        '  workers: 2',                     # 3
        '  shutdown_grace: 5s',             # 4
        'targets:',                         # 5
        '  - name: orders',                 # 6
        '    env: prod',                    # 7
        '    listen: 127.0.0.1:6432',       # 8
        '    upstream: 127.0.0.1:5432',     # 9
    ]


class ConfigCheckTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.bin = fx.dbwarden_bin()
        cls.tmp = tempfile.TemporaryDirectory(prefix='dbwarden-cfg-')
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.state_dir = os.path.join(cls.tmp.name, 'state')
        os.mkdir(cls.state_dir)
        cls.counter = 0
        cls.pki = fx.make_test_pki()
        cls.addClassCleanup(cls.pki.close)

    def write(self, lines):
        type(self).counter += 1
        path = Path(self.tmp.name) / f'config{self.counter}.yaml'
        path.write_text('\n'.join(lines) + '\n')
        return str(path)

    def check(self, path):
        return subprocess.run([self.bin, 'config', 'check', path], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    def assert_invalid_at(self, lines, line, what):
        path = self.write(lines)
        out = self.check(path)
        listing = '\n'.join(f'{i + 1:3}: {t}' for i, t in enumerate(lines))
        self.assertEqual(out.returncode, 2, f'{what}: exit {out.returncode}, stderr '
                                            f'{out.stderr!r}\n{listing}')
        self.assertIn(f'{path}:{line}:', out.stderr, f'{what}: expected {path}:{line}: in '
                                                     f'stderr\n{listing}')
        reason = out.stderr.split(f'{path}:{line}:', 1)[1].strip()
        self.assertTrue(reason, f'{what}: no reason after the location')

    def test_valid_minimal_config(self):
        out = self.check(self.write(base_lines(self.state_dir)))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_valid_full_config(self):
        pki = self.pki
        lines = base_lines(self.state_dir) + [
            '    tls:',
            f'      cert: {pki.relay_cert}',
            f'      key: {pki.relay_key}',
            '    upstream_tls:',
            f'      ca: {pki.ca_cert}',
            '      server_name: localhost',
            '  - name: billing',
            '    env: staging',
            '    listen: "[::1]:6433"',
            '    upstream: 127.0.0.1:5433',
            '    tls:',
            '      require: false',
            '    upstream_tls:',
            f'      ca: {pki.ca_cert}',
            '  - name: certs',
            '    listen: 127.0.0.1:6434',
            '    upstream: 127.0.0.1:5433',
            '    tls:',
            f'      cert: {pki.relay_cert}',
            f'      key: {pki.relay_key}',
            f'      client_ca: {pki.ca_cert}',
            '    upstream_tls:',
            f'      ca: {pki.ca_cert}',
            '      client_certs:',
            '        - subject: CN=app',
            f'          cert: {pki.client_cert}',
            f'          key: {pki.client_key}',
        ]
        out = self.check(self.write(lines))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_tls_holes_are_config_errors(self):
        pki = self.pki
        base = base_lines(self.state_dir)
        upstream_tls = ['    upstream_tls:', f'      ca: {pki.ca_cert}']
        server_tls = ['    tls:', f'      cert: {pki.relay_cert}', f'      key: {pki.relay_key}']
        cases = {
            # TLS upstream, none for clients: plaintext clients would pass hostssl.
            'upstream_tls without tls': (base + upstream_tls, 6),
            'tls.require without a certificate': (base + ['    tls:', '      require: true'], 11),
            # One upstream certificate for every client.
            'upstream_tls.cert': (base + server_tls + upstream_tls +
                                  [f'      cert: {pki.client_cert}',
                                   f'      key: {pki.client_key}'], 15),
            'client_certs without client_ca': (base + server_tls + upstream_tls + [
                '      client_certs:', '        - subject: CN=app',
                f'          cert: {pki.client_cert}', f'          key: {pki.client_key}'], 16),
            'client_certs entry with subject and uri_san': (
                base + server_tls + [f'      client_ca: {pki.ca_cert}'] + upstream_tls + [
                    '      client_certs:', '        - subject: CN=app',
                    '          uri_san: spiffe://example.org/app',
                    f'          cert: {pki.client_cert}', f'          key: {pki.client_key}'], 17),
            'client_identity without client_ca': (
                base + server_tls + ['      client_identity: uri_san'], 13),
        }
        for what, (lines, line) in cases.items():
            with self.subTest(what):
                self.assert_invalid_at(lines, line, what)

    def test_unknown_keys(self):
        base = base_lines(self.state_dir)
        cases = {
            'top level': (base[:4] + ['colour: blue'] + base[4:], 5),
            'relay section': (base[:2] + ['  wrokers: 2'] + base[3:], 3),
            'target': (base[:8] + ['    colour: blue'] + base[8:], 9),
            'tls section': (base + ['    tls:', f'      cert: {self.pki.relay_cert}',
                                    f'      key: {self.pki.relay_key}', '      ciphers: HIGH'],
                            13),
        }
        for what, (lines, line) in cases.items():
            with self.subTest(what):
                self.assert_invalid_at(lines, line, f'unknown key in {what}')

    def test_routing_settings(self):
        base = base_lines(self.state_dir)
        valid = base + ['    relay_only: enforce', '    listen_unix: /run/dbwarden/orders/.s.PGSQL.5432',
                        'routing:', '  cgroups: [/system.slice]', '  on_agent_exit: closed',
                        '  pin_dir: /sys/fs/bpf/dbwarden/routing', '  exempt:',
                        '    - unit: "backup-*.service"', '    - exe: [/bin/sh]',
                        '    - uid: [postgres, 0]', '    - cgroup: /system.slice/x.service']
        out = self.check(self.write(valid))
        self.assertEqual(out.returncode, 0, out.stderr)
        cases = {
            'relay_only value': (base + ['    relay_only: reroute'], 10),
            'listen_unix relative': (base + ['    listen_unix: relay.sock'], 10),
            'on_agent_exit value': (base + ['routing:', '  on_agent_exit: ajar'], 11),
            'pin_dir outside bpffs': (base + ['routing:', '  pin_dir: /tmp/pins'], 11),
            'cgroups not a list': (base + ['routing:', '  cgroups: /system.slice'], 11),
            'cgroup with ..': (base + ['routing:', '  cgroups: [/a/../b]'], 11),
            'exempt exe missing': (base + ['routing:', '  exempt:', '    - exe: /no/such/tool'], 12),
            'exempt script': (base + ['routing:', '  exempt:',
                                      '    - exe: /usr/share/postgresql-common/pg_wrapper'], 12),
            'exempt unknown user': (base + ['routing:', '  exempt:',
                                            '    - uid: [no-such-user-dbw]'], 12),
            'exempt two kinds in one entry': (base + ['routing:', '  exempt:',
                                                      '    - {uid: [0], exe: [/bin/sh]}'], 12),
            'exempt unknown key': (base + ['routing:', '  exempt:', '    - pid: 1'], 12),
        }
        for what, (lines, line) in cases.items():
            with self.subTest(what):
                self.assert_invalid_at(lines, line, what)

    def test_bad_listen_address(self):
        base = base_lines(self.state_dir)
        for bad in ('127.0.0.1:notaport', '127.0.0.1:70000', '127.0.0.1', '127.0.0.1:',
                    '[::1:6432'):
            with self.subTest(listen=bad):
                lines = base[:7] + [f'    listen: "{bad}"'] + base[8:]
                self.assert_invalid_at(lines, 8, f'listen {bad!r}')

    def test_missing_target_name(self):
        base = base_lines(self.state_dir)
        # The target mapping starts on line 6, where its first key is.
        lines = base[:5] + ['  - env: prod', '    listen: 127.0.0.1:6432',
                            '    upstream: 127.0.0.1:5432']
        self.assert_invalid_at(lines, 6, 'target without name')

    def test_yaml_syntax_error(self):
        base = base_lines(self.state_dir)
        lines = base[:6] + ['    env: prod: extra'] + base[7:]
        self.assert_invalid_at(lines, 7, 'a mapping value where none is allowed')

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, 'does-not-exist.yaml')
        out = self.check(path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(path, out.stderr)

    def test_run_refuses_invalid_config(self):
        port = fx.free_port()
        lines = [f'state_dir: {self.state_dir}', 'targets:', '  - name: orders',
                 f'    listen: 127.0.0.1:{port}', '    upstream: 127.0.0.1:5432',
                 '    colour: blue']
        path = self.write(lines)
        t0 = time.monotonic()
        try:
            out = subprocess.run([self.bin, 'run', '--config', path], capture_output=True,
                                 text=True, timeout=15, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self.fail('dbwarden run kept running with an invalid config')
        self.assertNotEqual(out.returncode, 0)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn(f'{path}:6:', out.stderr)
        self.assertFalse(fx.port_accepts(fx.LOOPBACK, port))


class VersionTest(unittest.TestCase):

    def test_version(self):
        out = subprocess.run([fx.dbwarden_bin(), '--version'], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, re.compile(r'\Adbwarden \S+\n?\Z'))


if __name__ == '__main__':
    unittest.main()
