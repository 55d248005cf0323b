"""Tamper checks that need an outside witness to fool (issue 22): the store is edited as an
attacker with write access to it would (RocksDB's `ldb`: events deleted from the tail and the
head rewritten, or an event edited and its hash, the head and the checkpoints made to agree).
Without anchors `audit verify` cannot see such a rollback (asserted, as documented); with the
published anchors (`--anchors FILE`, `--anchors URL`) it fails, and the agent, restarted on the
store, checks it against its own anchor file: /readyz 503, an `audit_tamper` event and
`dbwarden_audit_tamper_detected 1`, while it keeps relaying and recording.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_audit_tamper.py -v
"""

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

PSQL = str(fx.PG_BIN / 'psql')
cluster = None


def setUpModule():
    global cluster
    fx.require_postgres()
    fx.require_tools('ldb')
    fx.dbwarden_bin()
    cluster = fx.PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()


def seq_key(seq):
    return '0x%016X' % seq


class Ldb:
    """The attacker's tool: RocksDB's ldb on the agent's store (agent stopped)."""

    def __init__(self, audit_dir):
        self.dir = audit_dir

    def run(self, *args, cf=None):
        cmd = ['ldb', f'--db={self.dir}']
        if cf:
            cmd.append(f'--column_family={cf}')
        out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f'ldb {args}: {out.stdout}{out.stderr}')
        return out.stdout.strip()

    def head(self):
        value = bytes.fromhex(self.run('get', 'head', '--value_hex')[2:])
        return int.from_bytes(value[:8], 'big'), value[8:40]

    def record(self, seq):
        return bytes.fromhex(self.run('get', seq_key(seq), '--key_hex', '--value_hex',
                                      cf='events')[2:])

    def put_record(self, seq, record):
        self.run('put', seq_key(seq), '0x' + record.hex(), '--key_hex', '--value_hex',
                 cf='events')

    def delete_event(self, seq):
        self.run('delete', seq_key(seq), '--key_hex', cf='events')

    def set_head(self, seq, hash_):
        self.run('put', '0x' + b'head'.hex(), '0x' + (seq.to_bytes(8, 'big') + hash_).hex(),
                 '--key_hex', '--value_hex')

    def drop_checkpoints_after(self, seq):
        for line in self.run('scan', '--key_hex', cf='checkpoints').splitlines():
            key = line.split(' ', 1)[0]
            if key.startswith('0x') and int(key, 16) > seq:
                self.run('delete', key, '--key_hex', cf='checkpoints')


# Record, version 1: 0x01 | ts (8) | prev_hash (32) | hash (32) | canonical JSON.
def record_hash(record):
    return record[41:73]


class TamperTest(unittest.TestCase):
    def make_relay(self, **audit):
        relay = fx.Relay([{'name': 'orders', 'env': 'prod',
                           'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
                         extra={'audit': audit} if audit else None)
        self.addCleanup(relay.close)
        relay.start()
        for i in range(8):
            self.psql(relay, f'SELECT {i}')
        relay.stop()  # SIGTERM: the head is signed and published
        return relay

    def psql(self, relay, sql):
        out = subprocess.run([PSQL, '-X', '-At', '-h', fx.LOOPBACK, '-p', str(relay.port()), '-U',
                              'postgres', '-d', 'postgres', '-c', sql],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def anchors(self, relay):
        return os.path.join(relay.state_dir, 'audit-anchors.jsonl')

    def verify(self, relay, *extra):
        return subprocess.run([str(relay.bin), 'audit', 'verify', '--state-dir', relay.state_dir,
                               *extra], capture_output=True, text=True, timeout=60)

    def verify_remote(self, relay):
        """`audit verify --api` against the running agent, with its anchors when it has any."""
        anchors = ['--anchors', self.anchors(relay)] if os.path.exists(self.anchors(relay)) else []
        return subprocess.run([str(relay.bin), 'audit', 'verify', '--api',
                               f'http://{fx.LOOPBACK}:{relay.api_port}', '--token',
                               fx.FIXTURE_API_TOKEN, *anchors],
                              capture_output=True, text=True, timeout=60)

    def roll_back_tail(self, relay, n):
        ldb = Ldb(os.path.join(relay.state_dir, 'audit'))
        head, _ = ldb.head()
        for seq in range(head - n + 1, head + 1):
            ldb.delete_event(seq)
        ldb.set_head(head - n, record_hash(ldb.record(head - n)))
        ldb.drop_checkpoints_after(head - n)
        return head

    def rewrite_last_event(self, relay, recompute=True):
        ldb = Ldb(os.path.join(relay.state_dir, 'audit'))
        head, _ = ldb.head()
        rec = ldb.record(head)
        body = rec[73:]
        edited = body.replace(b'"dbwarden stopped"', b'"dbwarden stopped (nothing to see)"')
        self.assertNotEqual(edited, body, body[:200])
        new_hash = hashlib.sha256(rec[9:41] + edited).digest() if recompute else record_hash(rec)
        ldb.put_record(head, rec[:41] + new_hash + edited)
        if recompute:
            ldb.set_head(head, new_hash)
            ldb.drop_checkpoints_after(head - 1)
        return head

    def assert_tamper_reported(self, relay, text):
        relay.start()
        status, _, body = fx.api_request(relay.api_port, '/readyz', token=None)
        self.assertEqual(status, 503, body)
        self.assertIn(text, body.decode())
        metrics = fx.api_request(relay.api_port, '/metrics')[2].decode()
        self.assertRegex(metrics, r'(?m)^dbwarden_audit_tamper_detected 1$')
        events = relay.wait_for(lambda e: text in (e.get('detail') or ''), kind='audit_tamper')
        self.assertIn('start-up check', events[0]['detail'])
        # Remotely, through the API, with the anchors kept off the host (when there are any).
        remote = self.verify_remote(relay)
        self.assertEqual(remote.returncode, 1, remote.stdout + remote.stderr)
        self.assertIn(text, remote.stdout)
        # Still relaying and recording: not ready is a signal to people, not an outage.
        self.assertEqual(self.psql(relay, 'SELECT 41 + 1'), '42')

    def test_an_untouched_store_matches_its_anchors_and_is_ready(self):
        relay = self.make_relay()
        out = self.verify(relay, '--anchors', self.anchors(relay))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r'[1-9]\d* published anchors match')
        relay.start()
        self.assertEqual(fx.api_request(relay.api_port, '/readyz', token=None)[0], 200)
        remote = self.verify_remote(relay)
        self.assertEqual(remote.returncode, 0, remote.stdout + remote.stderr)
        self.assertIn('published anchors match', remote.stdout)
        metrics = fx.api_request(relay.api_port, '/metrics')[2].decode()
        self.assertRegex(metrics, r'(?m)^dbwarden_audit_tamper_detected 0$')
        self.assertRegex(metrics, r'(?m)^dbwarden_audit_anchor_seq [1-9]')

    def test_a_rolled_back_tail_needs_the_anchors_to_be_seen(self):
        relay = self.make_relay()
        head = self.roll_back_tail(relay, 5)
        # Without an outside witness the shortened store is self-consistent.
        plain = self.verify(relay)
        self.assertEqual(plain.returncode, 0, plain.stdout + plain.stderr)
        with_file = self.verify(relay, '--anchors', self.anchors(relay))
        self.assertEqual(with_file.returncode, 1, with_file.stdout + with_file.stderr)
        self.assertIn(f'BROKEN at seq {head}', with_file.stdout)
        self.assertIn('rolled back', with_file.stdout)
        # The same anchors fetched from where they were shipped (here: an HTTP server on
        # loopback serving a copy).
        shipped = os.path.join(relay.root, 'shipped')
        os.mkdir(shipped)
        shutil.copy(self.anchors(relay), shipped)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=shipped)
        server = http.server.ThreadingHTTPServer((fx.LOOPBACK, 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = f'http://{fx.LOOPBACK}:{server.server_address[1]}/audit-anchors.jsonl'
        with_url = self.verify(relay, '--anchors', url)
        self.assertEqual(with_url.returncode, 1, with_url.stdout + with_url.stderr)
        self.assertIn('rolled back', with_url.stdout)
        self.assert_tamper_reported(relay, 'rolled back')

    def test_an_edit_with_recomputed_hashes_needs_the_anchors_to_be_seen(self):
        relay = self.make_relay()
        head = self.rewrite_last_event(relay)
        plain = self.verify(relay)
        self.assertEqual(plain.returncode, 0, plain.stdout + plain.stderr)
        with_file = self.verify(relay, '--anchors', self.anchors(relay))
        self.assertEqual(with_file.returncode, 1, with_file.stdout + with_file.stderr)
        self.assertIn(f'BROKEN at seq {head}', with_file.stdout)
        self.assertIn('chain was rewritten', with_file.stdout)
        self.assert_tamper_reported(relay, 'chain was rewritten')

    def test_without_anchors_the_start_check_still_sees_a_crude_tail_edit(self):
        relay = self.make_relay(anchor_file='off')
        self.assertFalse(os.path.exists(self.anchors(relay)))
        self.rewrite_last_event(relay, recompute=False)
        out = self.verify(relay)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assert_tamper_reported(relay, 'hash mismatch')

    def test_a_malformed_anchors_file_is_rejected_with_its_line(self):
        relay = self.make_relay()
        bad = os.path.join(relay.root, 'bad-anchors.jsonl')
        with open(self.anchors(relay)) as f:
            first = f.readline()
        with open(bad, 'w') as f:
            f.write(first + '{"type":"something-else"}\n')
        out = self.verify(relay, '--anchors', bad)
        self.assertEqual(out.returncode, 2, out.stdout + out.stderr)
        self.assertIn(f'{bad}:2:', out.stderr)


if __name__ == '__main__':
    unittest.main()
