"""/metrics follows the Prometheus exposition format and its naming conventions: one name per
metric, `_total` on every counter, base units, `# HELP` and `# TYPE` for every family. Checked with
prometheus_client's own parser (Debian's python3-prometheus-client) on a real agent after real
traffic (relay sessions, statements, a failed one, audit writes, API requests); the tap's and
the witness's families are checked the same way in test_witness (it needs root).

    DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \\
        tests/integration/test_metrics_format.py -v
"""

import importlib
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

cluster = None
relay = None


def setUpModule():
    global cluster, relay
    try:
        importlib.import_module('prometheus_client.parser')
    except ImportError as exc:
        raise fx.PrerequisiteError('python3-prometheus-client is missing '
                                   '(scripts/install-deps)') from exc
    cluster = fx.module_cluster()
    relay = fx.Relay([{'name': 'app', 'env': 'test',
                       'upstream': f'{fx.LOOPBACK}:{cluster.port}'}])
    unittest.addModuleCleanup(relay.close)
    relay.start()


class MetricsFormatTest(unittest.TestCase):
    def test_metrics_follow_the_exposition_format_and_conventions(self):
        psql = [str(fx.PG_BIN / 'psql'), '-X', '-h', fx.LOOPBACK, '-p', str(relay.port()),
                '-U', 'postgres', '-d', 'postgres']
        subprocess.run(psql + ['-c', 'SELECT 1', '-c', 'CREATE TABLE t (a int)',
                               '-c', 'SELECT 1/0', '-c', 'DROP TABLE t'],
                       capture_output=True, env=fx.CLIENT_ENV, timeout=60)
        relay.wait_for(lambda e: True, kind='statement')
        text = fx.api_request(relay.api_port, '/metrics')[2].decode()
        self.assertEqual(fx.metric_convention_problems(text), [])
        # The store's counters appear once, under the store's own names.
        self.assertGreaterEqual(fx.metric(relay.api_port, 'dbwarden_audit_events_written_total'),
                                1)
        self.assertNotIn('dbwarden_audit_store_events_written_total', text)
        for family in ('dbwarden_relay_sessions_total', 'dbwarden_decision_duration_seconds',
                       'dbwarden_api_requests_total', 'dbwarden_audit_chain_head_seq'):
            self.assertIn(f'# TYPE {family} ', text)

    def test_the_checker_finds_what_it_checks(self):
        bad = '\n'.join([
            '# HELP dbwarden_x_written_total Audit events written',
            '# TYPE dbwarden_x_written_total counter',
            'dbwarden_x_written_total 3',
            '# HELP dbwarden_x_store_written_total Audit events written',
            '# TYPE dbwarden_x_store_written_total counter',
            'dbwarden_x_store_written_total 3',
            '# HELP dbwarden_x_run_time_ns_total Time',
            '# TYPE dbwarden_x_run_time_ns_total counter',
            'dbwarden_x_run_time_ns_total 7',
            '# HELP dbwarden_x_requests Requests',
            '# TYPE dbwarden_x_requests counter',
            'dbwarden_x_requests 1',
            '# TYPE dbwarden_x_nohelp gauge',
            'dbwarden_x_nohelp 1',
            '# HELP dbwarden_x_latency Latency',
            '# TYPE dbwarden_x_latency histogram',
            'dbwarden_x_latency_bucket{le="+Inf"} 1',
            'dbwarden_x_latency_sum 1',
            'dbwarden_x_latency_count 1',
            'dbwarden_x_undeclared 5',
            '',
        ])
        problems = '\n'.join(fx.metric_convention_problems(bad))
        for expected in ('the same HELP', 'not in base units', 'a counter not named *_total',
                         'dbwarden_x_nohelp: no HELP', 'a histogram not in seconds or bytes',
                         'dbwarden_x_undeclared: a sample of no declared family'):
            self.assertIn(expected, problems)
        self.assertIn('cannot parse', '\n'.join(fx.metric_convention_problems('x{ 1\n')))


if __name__ == '__main__':
    unittest.main()
