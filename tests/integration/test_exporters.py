"""The audit exporters against real receivers: rsyslog (Debian's, started by the test) over TCP
and over TLS, Kafka (librdkafka's mock cluster in tests/export/kafka_mock_receiver, the consumer
printing what it reads) and an OTLP/HTTP collector in this file that checks every request against
OTLP's JSON encoding. One agent exports to all of them at once while real statements go through
the relay; the agent is restarted in the middle of the run, and so is every receiver. Then each
receiver must hold every event of the run, in order:

- Kafka and OTLP confirm what they took, so each event arrives exactly once.
- TCP syslog has no acknowledgement: an event is confirmed once the receiver's TCP acknowledged
  it and kept the connection open for `confirm_after`. Across the agent's restart nothing arrives
  twice. Across the receiver's restart, with the default `confirm_after` (1 s), the events it
  may not have written are sent again, so there the test de-duplicates by seq (the SD parameter
  every frame carries) and checks that nothing is missing and nothing is out of order; with
  `confirm_after: 0` (the TLS exporter) a graceful restart repeats nothing. A receiver killed
  outright gets the unconfirmed events again (test_a_syslog_receiver_that_crashes_...).

    DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \\
        tests/integration/test_exporters.py -v
"""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

TOPIC = 'dbwarden-audit'
SD = re.compile(r'^(\S+) \[dbwarden@32473 seq="(\d+)"(?: session="((?:[^"\\]|\\.)*)")?\] (.*)$')


def kafka_tool():
    bin_dir = Path(fx.dbwarden_bin()).resolve().parent.parent
    tool = bin_dir / 'tests' / 'export' / 'kafka_mock_receiver'
    if not tool.exists():
        raise fx.PrerequisiteError(f'{tool} is not built')
    return tool


class Rsyslog:
    """rsyslogd in the foreground with one imtcp input (TLS when `pki` is given); each run
    writes to its own file: `%msgid% %structured-data% %msg%` per line."""

    def __init__(self, root, pki=None):
        self.dir = Path(root)
        self.dir.mkdir()
        self.port = fx.free_port()
        self.pki = pki
        self.proc = None
        self.runs = 0

    def out(self, run):
        return self.dir / f'out.{run}'

    def start(self):
        self.runs += 1
        tls_global = tls_module = ''
        if self.pki:
            tls_global = (f' defaultNetstreamDriverCAFile="{self.pki.ca_cert}"'
                          f' defaultNetstreamDriverCertFile="{self.pki.server_cert}"'
                          f' defaultNetstreamDriverKeyFile="{self.pki.server_key}"')
            tls_module = ' StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
        conf = self.dir / f'rsyslog.{self.runs}.conf'
        conf.write_text(
            f'global(workDirectory="{self.dir}"{tls_global})\n'
            f'module(load="imtcp"{tls_module})\n'
            f'input(type="imtcp" address="{fx.LOOPBACK}" port="{self.port}")\n'
            'template(name="line" type="string" string="%msgid% %structured-data% %msg%\\n")\n'
            f'action(type="omfile" file="{self.out(self.runs)}" template="line")\n')
        with open(self.dir / 'stderr', 'ab') as log:
            self.proc = subprocess.Popen(
                ['rsyslogd', '-n', '-f', str(conf), '-i', str(self.dir / 'pid')],
                stdout=subprocess.DEVNULL, stderr=log)
        fx.wait_until(lambda: fx.port_accepts(fx.LOOPBACK, self.port), 20,
                      f'rsyslogd to listen on {self.port}')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)

    def frames(self, run):
        """(seq, msgid, session, body) of each line run `run` wrote."""
        path = self.out(run)
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding='utf-8').splitlines():
            m = SD.match(line)
            if not m:
                raise AssertionError(f'rsyslog wrote a line that is not an exporter frame: {line!r}')
            out.append((int(m.group(2)), m.group(1), m.group(3), m.group(4)))
        return out


class KafkaReceiver:
    """kafka_mock_receiver: a mock cluster of 3 brokers and a consumer of TOPIC's partitions."""

    def __init__(self, partitions=3):
        self.proc = subprocess.Popen([str(kafka_tool()), TOPIC, str(partitions)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != 'bootstrap':
            raise AssertionError(f'kafka_mock_receiver said {first!r}')
        self.bootstrap = first[1]
        self.messages = []
        self.acks = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                if line.startswith('ok '):
                    self.acks.append(line.strip())
                else:
                    self.messages.append(json.loads(line))

    def command(self, what):
        self.proc.stdin.write(what + '\n')
        self.proc.stdin.flush()
        fx.wait_until(lambda: f'ok {what}' in self.acks, 10, f'the mock cluster to go {what}')
        with self.lock:
            self.acks.remove(f'ok {what}')

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


ANY_VALUE = {'stringValue': str, 'boolValue': bool, 'intValue': (str, int),
             'doubleValue': (float, int), 'arrayValue': dict, 'kvlistValue': dict,
             'bytesValue': str}


def otlp_problems(doc):
    """What in `doc` does not follow OTLP/HTTP's JSON encoding of ExportLogsServiceRequest
    (opentelemetry-proto logs/v1, protobuf JSON mapping: lowerCamelCase keys, 64-bit integers as
    decimal strings, AnyValue with exactly one of its fields)."""
    problems = []

    def keys(obj, where, allowed):
        if not isinstance(obj, dict):
            problems.append(f'{where} is not an object')
            return False
        for k in obj:
            if k not in allowed:
                problems.append(f'{where} has unknown field {k!r}')
        return True

    def any_value(v, where):
        if keys(v, where, ANY_VALUE) and len(v) != 1:
            problems.append(f'{where} must set exactly one value field, has {sorted(v)}')
        for k, t in ANY_VALUE.items():
            if k in v and not isinstance(v[k], t):
                problems.append(f'{where}.{k} has type {type(v[k]).__name__}')
        if isinstance(v.get('intValue'), str) and not re.fullmatch(r'-?\d+', v['intValue']):
            problems.append(f'{where}.intValue is not a decimal integer')

    def attributes(attrs, where):
        if not isinstance(attrs, list):
            problems.append(f'{where} is not a list')
            return
        for i, kv in enumerate(attrs):
            if keys(kv, f'{where}[{i}]', {'key', 'value'}):
                if not isinstance(kv.get('key'), str) or not kv['key']:
                    problems.append(f'{where}[{i}].key is missing')
                any_value(kv.get('value'), f'{where}[{i}].value')

    def nanos(v, where):
        if not (isinstance(v, str) and re.fullmatch(r'\d{1,20}', v)):
            problems.append(f'{where} must be a uint64 as a decimal string, is {v!r}')

    if not keys(doc, 'request', {'resourceLogs'}) or not doc.get('resourceLogs'):
        return problems + ['request has no resourceLogs']
    for r, rl in enumerate(doc['resourceLogs']):
        w = f'resourceLogs[{r}]'
        if not keys(rl, w, {'resource', 'scopeLogs', 'schemaUrl'}):
            continue
        if keys(rl.get('resource'), f'{w}.resource', {'attributes', 'droppedAttributesCount'}):
            attributes(rl['resource'].get('attributes', []), f'{w}.resource.attributes')
            names = [a.get('key') for a in rl['resource'].get('attributes', [])]
            if 'service.name' not in names:
                problems.append(f'{w}.resource has no service.name')
        for s, sl in enumerate(rl.get('scopeLogs') or []):
            ws = f'{w}.scopeLogs[{s}]'
            if not keys(sl, ws, {'scope', 'logRecords', 'schemaUrl'}):
                continue
            keys(sl.get('scope', {}), f'{ws}.scope',
                 {'name', 'version', 'attributes', 'droppedAttributesCount'})
            for i, rec in enumerate(sl.get('logRecords') or []):
                wr = f'{ws}.logRecords[{i}]'
                if not keys(rec, wr, {'timeUnixNano', 'observedTimeUnixNano', 'severityNumber',
                                      'severityText', 'body', 'attributes',
                                      'droppedAttributesCount', 'flags', 'traceId', 'spanId',
                                      'eventName'}):
                    continue
                nanos(rec.get('timeUnixNano'), f'{wr}.timeUnixNano')
                nanos(rec.get('observedTimeUnixNano'), f'{wr}.observedTimeUnixNano')
                sev = rec.get('severityNumber')
                if not (isinstance(sev, int) and 1 <= sev <= 24):
                    problems.append(f'{wr}.severityNumber {sev!r} is not 1..24')
                any_value(rec.get('body'), f'{wr}.body')
                attributes(rec.get('attributes', []), f'{wr}.attributes')
    return problems


class OtlpCollector:
    """An OTLP/HTTP logs receiver on loopback (HTTP/1.1, keep-alive). Requests that break the
    encoding are answered 400 and remembered in `problems`."""

    def __init__(self):
        self.port = fx.free_port()
        self.records = []  # (seq, attributes dict, body string), in arrival order
        self.problems = []
        self.requests = 0
        self.server = None
        self.connections = []

    def start(self):
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                collector.connections.append(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                problems = []
                if self.path != '/v1/logs':
                    problems.append(f'POST to {self.path}')
                if self.headers.get('Content-Type') != 'application/json':
                    problems.append(f'Content-Type {self.headers.get("Content-Type")}')
                try:
                    doc = json.loads(body)
                    problems += otlp_problems(doc)
                except ValueError as exc:
                    problems.append(f'not JSON: {exc}')
                collector.requests += 1
                if problems:
                    collector.problems += problems
                    self._answer(400, b'{"error":"bad request"}')
                    return
                for rl in doc['resourceLogs']:
                    for sl in rl['scopeLogs']:
                        for rec in sl['logRecords']:
                            attrs = {a['key']: next(iter(a['value'].values()))
                                     for a in rec.get('attributes', [])}
                            collector.records.append((int(attrs['dbwarden.seq']), attrs,
                                                      rec['body']['stringValue']))
                self._answer(200, b'{}')

            def _answer(self, status, payload):
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer((fx.LOOPBACK, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Stops listening and closes the kept-alive connections, as a collector's restart does."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for c in self.connections:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.connections = []


cluster = None


def setUpModule():
    global cluster
    fx.require_tools('rsyslogd', 'openssl')
    kafka_tool()
    cluster = fx.module_cluster()


def run_statements(port, n, tag):
    conn = fx.psycopg2_connect(port, application_name=f'export-{tag}')
    cur = conn.cursor()
    for i in range(n):
        cur.execute('SELECT %s::int AS n, %s AS tag', (i, tag))
        cur.fetchall()
    conn.close()


def in_order_once(seqs):
    """Problems with `seqs` being exactly 1..N in order, each once."""
    problems = []
    for i, s in enumerate(seqs):
        if s != i + 1:
            problems.append(f'position {i}: seq {s}, expected {i + 1}')
            break
    return problems


class ExportersTest(unittest.TestCase):
    def setUp(self):
        root = Path(tempfile.mkdtemp(prefix='dbwarden-export-'))
        self.addCleanup(shutil.rmtree, root, True)
        self.pki = fx.make_test_pki()
        self.addCleanup(self.pki.close)
        self.syslog = Rsyslog(root / 'syslog')
        self.syslog_tls = Rsyslog(root / 'syslog-tls', pki=self.pki)
        for r in (self.syslog, self.syslog_tls):
            r.start()
            self.addCleanup(r.stop)
        self.kafka = KafkaReceiver()
        self.addCleanup(self.kafka.close)
        self.otlp = OtlpCollector()
        self.otlp.start()
        self.addCleanup(self.otlp.stop)
        fast = {'backoff': '100ms', 'max_backoff': '1s', 'batch': 50}
        self.relay = fx.Relay(
            [{'name': 'db', 'upstream': f'{fx.LOOPBACK}:{cluster.port}'}],
            extra={'export': [
                dict(fast, name='syslog-plain', type='syslog', format='native',
                     address=f'{fx.LOOPBACK}:{self.syslog.port}'),
                # confirm_after 0: delivered once rsyslog's TCP acknowledged it.
                dict(fast, name='syslog-tls', type='syslog', format='cef',
                     address=f'{fx.LOOPBACK}:{self.syslog_tls.port}', confirm_after='0ms',
                     tls={'ca_file': str(self.pki.ca_cert)}),
                # Another CA: its handshake must fail, and it must deliver nothing.
                dict(fast, name='untrusted', type='syslog', format='native',
                     address=f'{fx.LOOPBACK}:{self.syslog_tls.port}',
                     tls={'ca_file': str(self.pki.other_ca_cert)}),
                dict(fast, name='kafka', type='kafka', format='ocsf',
                     brokers=self.kafka.bootstrap, topic=TOPIC),
                dict(fast, name='otlp', type='otlp', format='ecs',
                     url=f'http://{fx.LOOPBACK}:{self.otlp.port}/v1/logs',
                     headers={'X-Scope-OrgID': 'dbwarden-test'}),
            ]})
        self.addCleanup(self.relay.close)

    def head(self):
        return max(e['seq'] for e in self.relay.events())

    def wait_delivered(self, through):
        def syslog_has(r):
            return {s for run in range(1, r.runs + 1) for s, *_ in r.frames(run)} >= set(
                range(1, through + 1))

        def kafka_has():
            with self.kafka.lock:
                return {int(m['seq']) for m in self.kafka.messages} >= set(range(1, through + 1))

        def otlp_has():
            return {s for s, _, _ in self.otlp.records} >= set(range(1, through + 1))

        for name, done in (('syslog', lambda: syslog_has(self.syslog)),
                           ('syslog over TLS', lambda: syslog_has(self.syslog_tls)),
                           ('kafka', kafka_has), ('otlp', otlp_has)):
            try:
                fx.wait_until(done, 60, f'{name} to receive every event through seq {through}')
            except TimeoutError as exc:
                raise AssertionError(f'{exc}\n{self.relay.diag()}') from None

    def test_every_event_arrives_in_order_across_agent_and_receiver_restarts(self):
        self.relay.start()
        port = self.relay.port()
        run_statements(port, 150, 'a')
        # The agent restarts while the exporters are still catching up.
        self.relay.stop()
        self.relay.start()
        run_statements(port, 60, 'b')
        self.wait_delivered(self.head())
        lines_before = len(self.syslog.frames(1)), len(self.syslog_tls.frames(1))

        # Every receiver goes away in the middle of the run and comes back.
        self.syslog.stop()
        self.syslog_tls.stop()
        self.kafka.command('down')
        self.otlp.stop()
        run_statements(port, 80, 'c')
        time.sleep(2)
        self.syslog.start()
        self.syslog_tls.start()
        self.kafka.command('up')
        self.otlp.start()
        run_statements(port, 60, 'd')
        head = self.head()
        self.wait_delivered(head)
        events = {e['seq']: e for e in self.relay.events()}
        api = self.relay.api_port
        failures = {n: fx.metric(api, f'dbwarden_export_failures_total{{exporter="{n}"}}')
                    for n in ('syslog-plain', 'syslog-tls', 'kafka', 'otlp', 'untrusted')}
        exported = {n: fx.metric(api, f'dbwarden_export_events_total{{exporter="{n}"}}')
                    for n in ('syslog-plain', 'untrusted')}
        metrics_text = fx.api_request(api, '/metrics')[2].decode()
        resent = {'native': fx.metric(api, 'dbwarden_export_resent_events_total'
                                           '{exporter="syslog-plain"}'),
                  'cef': fx.metric(api, 'dbwarden_export_resent_events_total'
                                        '{exporter="syslog-tls"}')}
        self.relay.stop()

        statements = [e for e in events.values() if e['kind'] == 'statement']
        self.assertGreaterEqual(len(statements), 350, 'the workload did not run')

        # syslog: the first rsyslog run got everything up to its stop exactly once, in order,
        # across the agent's restart; the second run continues without a gap. With confirm_after
        # 0 (the TLS exporter) it repeats nothing: rsyslog stopped gracefully, idle, after
        # reading all its TCP acknowledged. With the default 1 s, what it repeats
        # was sent again because the first run went away within confirm_after of receiving it
        # (TCP syslog cannot tell a receiver that stopped from one that died with the events in
        # memory); de-duplicated by seq, every event is there once, in order.
        for r, fmt in ((self.syslog, 'native'), (self.syslog_tls, 'cef')):
            first, second = r.frames(1), r.frames(2)
            self.assertEqual(in_order_once([f[0] for f in first]), [], f'{fmt}: first run')
            self.assertGreaterEqual(len(first), lines_before[0 if fmt == 'native' else 1])
            self.assertTrue(second, f'{fmt}: nothing after the receiver restarted')
            self.assertLessEqual(second[0][0], first[-1][0] + 1, f'{fmt}: a gap at the restart')
            seqs = [s for s, *_ in second]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))),
                             f'{fmt}: the second run is not consecutive')
            repeated = first[-1][0] - second[0][0] + 1
            self.assertLessEqual(repeated, resent[fmt], f'{fmt}: repeats that were not resends')
            if fmt == 'cef':  # confirm_after 0 and a graceful restart: nothing repeated
                self.assertEqual(repeated, 0, 'cef: events arrived twice')
            merged, high = [], 0
            for s, msgid, session, body in first + second:
                if s <= high or s > head:
                    continue
                high = s
                merged.append(s)
                e = events[s]
                self.assertEqual(msgid, e['kind'])
                self.assertEqual(session or '', e.get('session_id', ''))
                if fmt == 'native':
                    self.assertEqual(json.loads(body), e)
                else:
                    self.assertTrue(body.startswith('CEF:0|dbwarden|dbwarden|'), body)
                    self.assertIn(f'cn1={s} ', body + ' ')
            self.assertEqual(merged, list(range(1, head + 1)), f'{fmt}: missing events')
            print(f'\n{fmt} syslog: {max(repeated, 0)} of {head} events arrived twice across '
                  'the receiver restart', file=sys.stderr)

        # Kafka: exactly once; one session's events in one partition, in order; bodies are OCSF.
        with self.kafka.lock:
            everything = list(self.kafka.messages)
        all_seqs = [int(m['seq']) for m in everything]
        self.assertEqual(len(all_seqs), len(set(all_seqs)), 'kafka: an event arrived twice')
        messages = [m for m in everything if int(m['seq']) <= head]
        seqs = sorted(int(m['seq']) for m in messages)
        self.assertEqual(seqs, list(range(1, head + 1)), 'kafka: not every event exactly once')
        partitions = {}
        for m in messages:
            e = events[int(m['seq'])]
            self.assertEqual(m['key'], e.get('session_id') or 'agent')
            partitions.setdefault(m['key'], set()).add(m['partition'])
            ocsf = json.loads(m['value'])
            self.assertEqual(ocsf['class_uid'], 6005)
            self.assertEqual(ocsf['metadata']['sequence'], e['seq'])
        self.assertTrue(all(len(p) == 1 for p in partitions.values()), partitions)
        by_partition = {}
        for m in sorted(messages, key=lambda m: (m['partition'], m['offset'])):
            by_partition.setdefault(m['partition'], []).append(int(m['seq']))
        for p, s in by_partition.items():
            self.assertEqual(s, sorted(s), f'kafka partition {p} out of order')

        # OTLP: every request followed the encoding; exactly once, in order; bodies are ECS.
        self.assertEqual(self.otlp.problems, [])
        records = self.otlp.records
        self.assertEqual(in_order_once([s for s, _, _ in records]), [])
        self.assertGreaterEqual(len(records), head)
        for s, attrs, body in records[:head]:
            e = events[s]
            self.assertEqual(attrs['dbwarden.kind'], e['kind'])
            self.assertEqual(attrs.get('dbwarden.session_id'), e.get('session_id'))
            ecs = json.loads(body)
            self.assertEqual(ecs['event']['sequence'], s)
            self.assertIn('database', ecs['event']['category'])

        # Each outage was seen, retried and counted; the untrusted receiver got nothing.
        for name in ('syslog-plain', 'syslog-tls', 'kafka', 'otlp'):
            if name != 'kafka':  # librdkafka retries a broker outage inside one delivery
                self.assertGreater(failures[name], 0, f'{name}: the outage was not counted')
        self.assertGreater(failures['untrusted'], 0)
        self.assertEqual(exported['untrusted'], 0)
        self.assertGreaterEqual(exported['syslog-plain'], 1)
        self.assertIn('certificate not trusted', self.relay.stderr_text())
        self.assertEqual(fx.metric_convention_problems(metrics_text), [])


    def test_a_syslog_receiver_that_crashes_gets_the_unconfirmed_events_again(self):
        """rsyslog killed (SIGKILL) while events stream to it: what it may not have written is
        sent again to the next one, so after de-duplicating by seq nothing is missing."""
        self.relay.start()
        port = self.relay.port()
        run_statements(port, 40, 'a')
        self.wait_delivered(self.head())
        worker = threading.Thread(target=run_statements, args=(port, 200, 'b'))
        worker.start()
        time.sleep(0.3)
        self.syslog.proc.kill()
        self.syslog.proc.wait(10)
        worker.join(60)
        self.syslog.start()
        run_statements(port, 20, 'c')
        head = self.head()
        self.wait_delivered(head)
        resent = fx.metric(self.relay.api_port,
                           'dbwarden_export_resent_events_total{exporter="syslog-plain"}')
        self.relay.stop()
        first, second = self.syslog.frames(1), self.syslog.frames(2)
        self.assertEqual(in_order_once([f[0] for f in first]), [], 'before the crash')
        seqs = [f[0] for f in second]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), 'after the crash')
        self.assertLessEqual(seqs[0], first[-1][0] + 1, 'a gap at the crash')
        self.assertGreaterEqual(seqs[-1], head)
        repeated = len(first) + len(second) - len(set(seqs) | {f[0] for f in first})
        self.assertLessEqual(repeated, resent, 'more events arrived twice than were sent again')
        self.assertGreater(resent, 0, 'nothing unconfirmed was sent again after the crash')
        print(f'\nsyslog: rsyslog killed; {repeated} events arrived twice, {resent} were sent '
              'again', file=sys.stderr)


class ExportConfigTest(unittest.TestCase):
    def test_a_broken_export_section_is_rejected_with_file_and_line(self):
        bin_path = fx.dbwarden_bin()
        root = Path(tempfile.mkdtemp(prefix='dbwarden-export-config-'))
        self.addCleanup(shutil.rmtree, root, True)
        cases = [
            ('- name: a\n  type: smtp\n', 'type must be syslog, kafka or otlp', 5),
            ('- name: a\n  type: syslog\n  address: nohost\n', 'expected host:port', 6),
            ('- name: a\n  type: kafka\n  brokers: b:9092\n  topic: t\n  properties:\n'
             '    acks: "1"\n', 'acks is set by dbwarden', 9),
            ('- name: a\n  type: kafka\n  brokers: b:9092\n  topic: t\n  properties:\n'
             '    no.such.property: "1"\n', 'No such configuration property', 9),
            ('- name: a\n  type: otlp\n  url: ftp://x/\n', 'URL must start with http:// or https://', 6),
            ('- name: a\n  type: syslog\n  address: 127.0.0.1:1\n- name: a\n  type: otlp\n'
             '  url: http://127.0.0.1:1\n', 'used twice', 7),
            ('- name: a\n  type: syslog\n  address: 127.0.0.1:1\n  format: leef\n',
             'native, ocsf, ecs or cef', 7),
        ]
        for text, reason, line in cases:
            with self.subTest(reason=reason):
                path = root / 'c.yaml'
                path.write_text('state_dir: /tmp/x\ntargets: []\nexport:\n' + text)
                res = subprocess.run([str(bin_path), 'config', 'check', str(path)],
                                     capture_output=True, text=True, timeout=30)
                self.assertNotEqual(res.returncode, 0, res.stdout)
                self.assertIn(f'{path}:{line}:', res.stderr)
                self.assertIn(reason, res.stderr)


if __name__ == '__main__':
    unittest.main()
