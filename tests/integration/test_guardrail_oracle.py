"""The differential oracle of issue 16: every statement of the adversarial corpus (its 181 base
statements and their mutated variants, tests/testdata/sql/adversarial.py) is run on a seeded
PostgreSQL 15 inside a transaction that is rolled back, to measure what it really does: rows
changed, rows and bytes returned. The agent's decision for the same text (an AI agent on a `prod`
target with the default pack, through POST /v1/policy/evaluate of a running dbwarden) must be
`deny` or `approve` whenever the real effect exceeds the limits (more than half of a table
changed, or more than half of a table's rows or bytes read out), and `allow` for the
false-positive set. Statements PostgreSQL rejects are skipped by the oracle (the static test
covers them); role, row-security and dynamic-SQL statements are judged statically (tests/sql);
creating a function, procedure or rule changes no row, so for those only the decision is
checked: what the body will run must already be stopped.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_guardrail_oracle.py -v
"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'testdata', 'sql'))

import adversarial  # noqa: E402
import pgfixture as fx  # noqa: E402

ROWS = 200
SEED = f"""
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, name text, active bool NOT NULL);
CREATE TABLE accounts (id int PRIMARY KEY, user_id int, balance numeric, note text);
CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric, status text);
INSERT INTO users SELECT g, 'user' || g || '@example.com', 'name ' || g, g % 3 <> 0
  FROM generate_series(1, {ROWS}) g;
INSERT INTO accounts SELECT g, g, g * 10, 'note ' || g FROM generate_series(1, {ROWS}) g;
INSERT INTO orders SELECT g, (g % {ROWS}) + 1, g * 2.5, CASE WHEN g % 10 = 0 THEN 'void'
  ELSE 'paid' END FROM generate_series(1, {ROWS}) g;
CREATE ROLE app LOGIN;
ANALYZE users, accounts, orders;
"""
TABLE_BYTES = None  # bytes of each table's rows as text, measured after seeding

cluster = None
relay = None


def setUpModule():
    global cluster, relay, TABLE_BYTES
    cluster = fx.module_cluster()
    cluster.psql(SEED)
    TABLE_BYTES = {t: int(cluster.query_value(f'SELECT sum(length(x::text)) FROM {t} x'))
                   for t in ('users', 'accounts', 'orders')}
    # The default pack, and callers whose application_name starts with ai- classified as agents
    # (for the statements sent through the relay by a real client below).
    relay = fx.guardrails_relay(cluster, target='orders')


def decide(sql):
    body = json.dumps({'sql': sql, 'env': 'prod',
                       'principal': {'db_user': 'app', 'kind': 'agent'}}).encode()
    status, _, reply = fx.api_request(relay.api_port, '/v1/policy/evaluate', method='POST',
                                      body=body)
    if status != 200:
        raise AssertionError(f'evaluate {sql!r}: {status} {reply[:200]!r}')
    return json.loads(reply)['action']


def connect(port, app=None):
    """psycopg2 to PostgreSQL directly (port of the cluster) or through the relay as `app`."""
    return fx.psycopg2_connect(port, application_name=app, autocommit=False)


def measure(conn, sql):
    """What `sql` really does, rolled back: (rows changed, rows returned, bytes returned), or
    None when PostgreSQL rejects it."""
    import psycopg2
    cur = conn.cursor()
    try:
        if '$1' in sql and 'PREPARE' not in sql:
            # A parameter bound to NULL: LIMIT NULL, the worst a client can pass.
            sql = sql.replace('$1', 'NULL')
        if sql.lstrip().upper().startswith('COPY'):
            import io
            out = io.StringIO()
            cur.copy_expert(sql, out)
            text = out.getvalue()
            return 0, text.count('\n'), len(text)
        cur.execute(sql)
        changed = cur.rowcount if cur.description is None else 0
        returned, size = 0, 0
        if cur.description is not None:
            rows = cur.fetchall()
            returned = len(rows)
            size = sum(len(str(v)) for r in rows for v in r)
            if cur.statusmessage.split()[0] in ('UPDATE', 'DELETE', 'INSERT', 'MERGE'):
                changed = cur.rowcount
        # Changes made by a data-modifying CTE are counted on the tables themselves.
        cur.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM accounts), "
                    "(SELECT count(*) FROM orders), "
                    "(SELECT count(*) FROM accounts WHERE balance = 0), "
                    "(SELECT count(*) FROM users WHERE name = 'x')")
        counts = cur.fetchone()
        gone = max(ROWS - c for c in counts[:3])
        rewritten = max(counts[3], counts[4])
        return max(changed, gone, rewritten), returned, size
    except psycopg2.Error:
        return None
    finally:
        conn.rollback()


class GuardrailOracleTest(unittest.TestCase):
    def test_every_statement_with_a_mass_effect_is_stopped_and_safe_ones_pass(self):
        conn = connect(cluster.port)
        self.addCleanup(conn.close)
        corpus = adversarial.corpus()
        self.assertGreaterEqual(len(corpus), 500)
        biggest = max(TABLE_BYTES.values())
        measured = escaped = 0
        failures = []
        for entry in corpus:
            sql = entry['sql']
            if entry['expect'] in ('privilege', 'dynamic'):
                continue  # judged statically (tests/sql/adversarial_test.cc)
            if entry['class'] in ('function_body', 'parameter_bound'):
                # Creating it changes nothing, and a parameter's worst value is not NULL: what
                # it may run must already be stopped.
                action = decide(sql)
                if action not in ('deny', 'approve'):
                    failures.append(f'ESCAPED [{entry["class"]}] {sql!r}: decision {action}')
                continue
            effect = measure(conn, sql)
            action = decide(sql)
            if effect is None:
                continue
            measured += 1
            changed, returned, size = effect
            if entry['expect'] == 'runtime':
                # Allowed by the analysis, stopped by the row budget (the third test).
                if action != 'allow' or changed <= 100:
                    failures.append(f'RUNTIME CLASS [{entry["class"]}] {sql!r}: {action}, '
                                    f'changed {changed}')
                continue
            mass = changed > ROWS // 2 or returned > ROWS // 2 or size > biggest // 2
            if mass and action not in ('deny', 'approve'):
                escaped += 1
                failures.append(f'ESCAPED [{entry["class"]}] {sql!r}: changed {changed}, '
                                f'returned {returned} rows / {size} bytes, decision {action}')
            if entry['expect'] == 'safe' and action != 'allow':
                failures.append(f'FALSE POSITIVE [{entry["class"]}] {sql!r}: {action}')
            if entry['expect'] in ('mass_write', 'mass_read') and not mass:
                failures.append(f'CORPUS LABEL [{entry["class"]}] {sql!r} is labelled '
                                f'{entry["expect"]} but changed {changed}, returned {returned} '
                                f'rows / {size} bytes')
        self.assertGreater(measured, 450, 'too few statements ran on the server')
        self.assertEqual(failures, [], f'{len(failures)} problems:\n' + '\n'.join(failures[:40]))


class ThroughTheRelayTest(unittest.TestCase):
    """The base statements of the corpus sent by psycopg2 as an AI agent through the relay to
    the prod target: every mass write and mass read is refused with 42501 and no row changes;
    the false-positive set runs."""

    def test_a_real_client_is_stopped(self):
        import psycopg2
        direct = connect(cluster.port)
        self.addCleanup(direct.close)
        conn = connect(relay.port(), 'ai-oracle')
        self.addCleanup(conn.close)

        def counts():
            cur = direct.cursor()
            cur.execute('SELECT (SELECT count(*) FROM users), (SELECT sum(balance) FROM accounts),'
                        ' (SELECT count(*) FROM orders), (SELECT string_agg(name, \',\') FROM users)')
            row = cur.fetchone()
            direct.rollback()
            return row

        before = counts()
        failures, stopped, ran = [], 0, 0
        for entry in adversarial.BASE:
            sql = entry['sql']
            if entry['class'] in ('function_body', 'parameter_bound') or (
                    '$1' in sql and 'PREPARE' not in sql):
                continue
            if entry['expect'] not in ('mass_write', 'mass_read', 'safe'):
                continue
            if measure(direct, sql) is None:
                continue  # PostgreSQL rejects it: nothing to stop
            cur = conn.cursor()
            try:
                cur.execute(sql)
                outcome = 'ran'
            except psycopg2.Error as exc:
                outcome = exc.pgcode
            finally:
                conn.rollback()
            if entry['expect'] == 'safe':
                ran += outcome == 'ran'
                if outcome != 'ran':
                    failures.append(f'REFUSED [{entry["class"]}] {sql!r}: {outcome}')
            else:
                stopped += outcome == '42501'
                if outcome != '42501':
                    failures.append(f'NOT STOPPED [{entry["class"]}] {sql!r}: {outcome}')
        self.assertEqual(failures, [], '\n'.join(failures[:30]))
        self.assertGreater(stopped, 60)
        self.assertGreater(ran, 15)
        self.assertEqual(counts(), before, 'a statement changed rows through the relay')

    def test_grouped_reads_are_judged_by_the_statistics(self):
        """The corpus's GROUP BY reads with their variants: refused by the analysis (it cannot
        count groups), and lifted by the relay when the target's statistics show few groups.
        Through the relay as an AI agent, every one that really returns more than half a table
        (rows or bytes) is refused with 42501, and every `grouped` one runs."""
        import psycopg2
        direct = connect(cluster.port)
        self.addCleanup(direct.close)
        conn = connect(relay.port(), 'ai-oracle-grouped')
        self.addCleanup(conn.close)
        biggest = max(TABLE_BYTES.values())
        failures, refused, ran = [], 0, 0
        for entry in adversarial.corpus():
            if entry['class'] not in ('grouped', 'grouped_unique'):
                continue
            effect = measure(direct, entry['sql'])
            if effect is None:
                failures.append(f'REJECTED BY POSTGRESQL {entry["sql"]!r}')
                continue
            _, returned, size = effect
            mass = returned > ROWS // 2 or size > biggest // 2
            if entry['expect'] == 'mass_read' and not mass:
                failures.append(f'CORPUS LABEL {entry["sql"]!r}: returned {returned} rows / '
                                f'{size} bytes')
            cur = conn.cursor()
            try:
                cur.execute(entry['sql'])
                cur.fetchall()
                outcome = 'ran'
            except psycopg2.Error as exc:
                outcome = exc.pgcode
            finally:
                conn.rollback()
            what = f'{entry["sql"]!r}: returned {returned} rows / {size} bytes, {outcome}'
            if mass:
                refused += outcome == '42501'
                if outcome != '42501':
                    failures.append('NOT STOPPED ' + what)
            elif entry['expect'] == 'grouped':
                ran += outcome == 'ran'
                if outcome != 'ran':
                    failures.append('REFUSED ' + what)
        self.assertEqual(failures, [], '\n'.join(failures[:30]))
        self.assertGreater(refused, 30)
        self.assertGreater(ran, 20)

    def test_the_runtime_row_budget_stops_what_the_analysis_lets_through(self):
        """The corpus's `runtime` class (selective predicates, so the analysis allows them, that
        change more than the pack's max_rows (100) of the 200-row tables), with its mutated
        variants: the row budget stops each (54000), in the client's transaction, and nothing
        changes. With the base statements: every statement that really changes more than 100
        rows is stopped one way or the other."""
        import psycopg2
        direct = connect(cluster.port)
        self.addCleanup(direct.close)
        conn = connect(relay.port(), 'ai-oracle-runtime')
        self.addCleanup(conn.close)
        runtime = [e['sql'] for e in adversarial.corpus() if e['expect'] == 'runtime']
        statements = runtime + [e['sql'] for e in adversarial.BASE
                                if e['expect'] in ('mass_write', 'safe')
                                and ('$1' not in e['sql'] or 'PREPARE' in e['sql'])
                                and e['class'] not in ('function_body', 'parameter_bound')]
        failures, by_budget = [], 0
        for sql in statements:
            effect = measure(direct, sql)
            if effect is None:
                continue
            changed = effect[0]
            cur = conn.cursor()
            try:
                cur.execute(sql)
                outcome = 'ran'
            except psycopg2.Error as exc:
                outcome = exc.pgcode
            finally:
                conn.rollback()
            if changed > 100 and outcome not in ('42501', '54000'):
                failures.append(f'NOT STOPPED {sql!r}: changed {changed}, {outcome}')
            if changed <= 100 and outcome == '54000':
                failures.append(f'STOPPED WITHIN BUDGET {sql!r}: changed {changed}')
            by_budget += outcome == '54000'
        self.assertEqual(failures, [], '\n'.join(failures[:30]))
        self.assertGreaterEqual(by_budget, len(runtime))


if __name__ == '__main__':
    unittest.main()


def bind_frame(params, binary):
    """A Bind of the unnamed statement: text values (None is NULL), or binary int4 values."""
    import struct
    body = b'\0\0'
    if binary:
        body += struct.pack('!hh', 1, 1)
    else:
        body += struct.pack('!h', 0)
    body += struct.pack('!h', len(params))
    for p in params:
        if p is None:
            body += struct.pack('!i', -1)
        elif binary:
            body += struct.pack('!ii', 4, int(p))
        else:
            raw = p.encode()
            body += struct.pack('!i', len(raw)) + raw
    return fx.frame(b'B', body + struct.pack('!h', 0))


def run_bound(client, entry, binary):
    """Runs the entry's statement with its values as Parse/Bind/Execute/Sync inside a
    transaction that is rolled back: (outcome, rows changed, rows returned), outcome 'ok' or the
    SQLSTATE."""
    from test_gate_protocol import WireClient
    client.simple_query('BEGIN')
    types = [23] * len(entry['params']) if binary else []
    client.send(WireClient.parse_msg('', entry['sql'], types) +
                bind_frame(entry['params'], binary) + WireClient.execute_msg('') +
                WireClient.sync_msg())
    msgs = client.read_until_ready()
    client.simple_query('ROLLBACK')
    outcome, changed, returned = 'ok', 0, 0
    for kind, payload in msgs:
        if kind == b'E':
            outcome = fx.error_fields(payload).get('C')
        elif kind == b'D':
            returned += 1
        elif kind == b'C':
            words = payload.rstrip(b'\0').decode().split()
            if words[0] in ('DELETE', 'UPDATE', 'INSERT', 'MERGE'):
                changed = int(words[-1])
    return outcome, changed, returned


def int4_values(params):
    try:
        return all(p is not None and -2**31 <= int(p) < 2**31 for p in params)
    except ValueError:
        return False


class BoundValuesTest(unittest.TestCase):
    """The bound-values corpus (tests/testdata/sql/adversarial.py BOUND, with variants of the
    text and of the values' spelling): each prepared statement with the values of one Bind is
    measured on the server (extended protocol, rolled back) and sent through the relay as an AI
    agent with the same bytes — text format, and binary int4 as pgjdbc sends them when every
    value is an integer. A mass effect is refused (42501) or stopped by the row budget (54000), a
    statement within the limits runs, and nothing is kept."""

    def test_each_bind_is_judged_by_its_values(self):
        from test_gate_protocol import WireClient
        direct = WireClient.connect(cluster.port, user='postgres', database='postgres')
        self.addCleanup(direct.close)
        through = WireClient.connect(relay.port(), user='postgres', database='postgres',
                                     application_name='ai-oracle-bound')
        self.addCleanup(through.close)
        entries = adversarial.bound_corpus()
        self.assertGreaterEqual(len(entries), 200)
        failures, measured, stopped, ran = [], 0, 0, 0
        for entry in entries:
            for binary in ((False, True) if int4_values(entry['params']) else (False,)):
                real, changed, returned = run_bound(direct, entry, binary)
                if real != 'ok':
                    continue  # PostgreSQL rejects it (a value its type cannot read)
                measured += 1
                got = run_bound(through, entry, binary)[0]
                what = f'[{entry["expect"]}] {entry["sql"]!r} {entry["params"]} ' \
                       f'{"binary" if binary else "text"}: changed {changed}, returned ' \
                       f'{returned}, through the relay {got}'
                mass = changed > ROWS // 2 or returned > ROWS // 2
                if entry['expect'] in ('mass_write', 'mass_read') and not mass:
                    failures.append('CORPUS LABEL ' + what)
                if changed > 100 or mass:
                    stopped += got in ('42501', '54000')
                    if got not in ('42501', '54000'):
                        failures.append('NOT STOPPED ' + what)
                elif entry['expect'] in ('safe', 'runtime'):
                    ran += got == 'ok'
                    if got != 'ok':
                        failures.append('REFUSED ' + what)
        self.assertEqual(failures, [], f'{len(failures)} problems:\n' + '\n'.join(failures[:40]))
        self.assertGreater(measured, 200)
        self.assertGreater(stopped, 100)
        self.assertGreater(ran, 40)
