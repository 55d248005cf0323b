"""Attempts to read masked columns back through the relay, by class, with a mutator for
variants: what tests/integration/test_mask_adversarial.py sends through psycopg2, psql, pgjdbc,
node-postgres and a raw wire client. Each attempt is one query string (sometimes several
statements); `oracle` attempts come in pairs (a true and a false guess about a masked value)
whose answers must not differ.

The planted values (PLANTED) never match a content detector, so only masking by reference
stands between them and the client.

Run: python3 tests/testdata/sql/mask_attacks.py   (prints the attempts as JSON lines)
"""

import json
import sys

# Column -> planted value of row 1. customers has masking rules for the principal `agent`:
# email partial, ssn and card redact, password_hash hash, api_key null, profile redact (jsonb),
# tags redact (text[]: NULL). name and note are not masked.
PLANTED = {
    'password_hash': 'Zx9QwPlant0Hash7Kv',
    'api_key': 'KeyPlant4Rq8Tm2Wn',
    'ssn': 'SsnVal9Qp3LmHx',
    'card': 'CardVal7Hj2NpYt',
    'email': 'zorroplantmail@hidden-domain.test',
    'profile': '{"secret": "JsonPlant8VbGq"}',
    'tags': '{TagPlant3DsWe}',
}
# What must never come back: every 6-character window of each secret (the email's local part;
# partial masking keeps its domain by design).
SECRETS = ['Zx9QwPlant0Hash7Kv', 'KeyPlant4Rq8Tm2Wn', 'SsnVal9Qp3LmHx', 'CardVal7Hj2NpYt',
           'zorroplantmail', 'JsonPlant8VbGq', 'TagPlant3DsWe']
CLEAR = {'id': 1, 'name': 'Alice Clear', 'note': 'public note one'}

MASKED = ['password_hash', 'api_key', 'ssn', 'card', 'email']


def fragments():
    out = set()
    for s in SECRETS:
        for i in range(len(s) - 5):
            out.add(s[i:i + 6])
            out.add(s[i:i + 6].lower())
            out.add(s[i:i + 6].upper())
            out.add(s[i:i + 6][::-1])
    return sorted(out)


def hexes():
    """Hex encodings of the secrets (encode(convert_to(col), 'hex') must not recover them)."""
    return [s.encode().hex()[:12] for s in SECRETS]


# ---- the attempts ----

EXPRESSIONS = [
    '{c}', 'substr({c}, 1, 8)', '{c}::varchar', '{c}::text', '{c} COLLATE "C"', 'upper({c})',
    'lower({c})', "{c} || ''", "concat({c}, '')", 'md5({c})', "encode(convert_to({c}, 'UTF8'), 'hex')",
    'reverse({c})', 'left({c}, 6)', 'right({c}, 6)', "format('%s', {c})", 'quote_literal({c})',
    "translate({c}, 'a', 'a')", "regexp_replace({c}, '^', '>')", "split_part({c}, 'x', 1)",
    'to_json({c})', "overlay({c} placing '' from 1 for 0)", 'initcap({c})', 'btrim({c})',
    "substring({c} from 2)", 'ascii({c})', 'length({c})', 'octet_length({c})',
    "array_to_string(ARRAY[{c}], ',')", 'ROW({c})::text', "xmlelement(name x, {c})::text",
    "string_to_array({c}, '')::text", 'md5({c}) = md5({c})',
]

WHOLE_ROW = [
    'SELECT c FROM customers c', 'SELECT c.* FROM customers c', 'SELECT row_to_json(c) FROM customers c',
    'SELECT c::text FROM customers c', 'SELECT to_jsonb(c) FROM customers c', 'SELECT ROW(c.*) FROM customers c',
    'SELECT json_agg(c) FROM customers c', 'SELECT customers FROM customers',
    'SELECT row_to_json(customers) FROM customers', 'SELECT * FROM customers',
    'TABLE customers', 'SELECT hstore_dummy FROM (SELECT c AS hstore_dummy FROM customers c) s',
    'SELECT xmlforest(c.password_hash, c.api_key)::text FROM customers c',
    'SELECT jsonb_each_text(to_jsonb(c)) FROM customers c',
    'SELECT (c).password_hash FROM (SELECT c FROM customers c) s',
    'SELECT (SELECT c FROM customers c LIMIT 1)::text',
    'SELECT public.customers.password_hash FROM public.customers',
    'SELECT "customers"."password_hash" FROM "customers"',
    'SELECT x.* FROM customers AS x(a, b, c_email, d, e, f)',
]

AGGREGATES = [
    "SELECT string_agg({c}, ',') FROM customers", 'SELECT array_agg({c})::text FROM customers',
    'SELECT max({c}) FROM customers', 'SELECT min({c}) FROM customers',
    'SELECT json_agg({c}) FROM customers', 'SELECT xmlagg(xmlelement(name v, {c}))::text FROM customers',
    'SELECT {c}, count(*) FROM customers GROUP BY {c}',
    'SELECT lag({c}) OVER (ORDER BY id) FROM customers',
    'SELECT first_value({c}) OVER () FROM customers',
    'SELECT DISTINCT ON ({c}) {c} FROM customers',
    'SELECT {c} FROM customers GROUP BY GROUPING SETS (({c}), ())',
]

SUBQUERIES = [
    'SELECT (SELECT {c} FROM customers WHERE id = 1)',
    "SELECT 1 UNION SELECT {c} FROM customers", "SELECT {c} FROM customers UNION ALL SELECT 'x'",
    "SELECT {c} FROM customers INTERSECT SELECT {c} FROM customers",
    "SELECT {c} FROM customers EXCEPT SELECT 'nothing'",
    'WITH x AS (SELECT {c} AS v FROM customers) SELECT v FROM x',
    'WITH x AS MATERIALIZED (SELECT * FROM customers) SELECT {c} FROM x',
    'WITH RECURSIVE r(v, n) AS (SELECT {c}, 1 FROM customers UNION ALL SELECT v, n + 1 FROM r '
    'WHERE n < 2) SELECT v FROM r',
    'SELECT s.v FROM (SELECT {c} AS v FROM customers) s',
    'SELECT l.v FROM (VALUES (1)) t(i), LATERAL (SELECT {c} AS v FROM customers WHERE id = t.i) l',
    'SELECT v FROM customers c CROSS JOIN LATERAL (SELECT c.{c} AS v) l',
    'SELECT o.id, c.{c} FROM orders o JOIN customers c ON c.id = o.customer_id',
    'SELECT o.id, c.{c} FROM orders o LEFT JOIN customers c USING (id)',
    'SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE {c} IS NOT NULL) '
    'AND (SELECT {c} FROM customers LIMIT 1) IS NOT NULL',
    'SELECT ARRAY(SELECT {c} FROM customers)::text',
    'SELECT {c} FROM customers TABLESAMPLE bernoulli (100)',
    'SELECT {c} FROM ONLY customers',
    'SELECT {c} FROM customers FOR UPDATE',
    'SELECT {c} FROM v_customers',
    'SELECT {c} FROM v_customers_nested',
    'SELECT v.{c} FROM public.v_customers v',
    'SELECT {c} FROM mv_customers',
    'SELECT {c} FROM customers_2024',
    'SELECT {c} FROM "public"."customers"',
    'SELECT {c} FROM CUSTOMERS',
    'SELECT {c} FROM U&"\\0063ustomers"',
]

COPIES = [
    'CREATE TEMP TABLE leak1 AS SELECT {c} AS v FROM customers; SELECT v FROM leak1',
    'SELECT {c} AS v INTO TEMP leak2 FROM customers; SELECT v FROM leak2',
    'CREATE TEMP TABLE leak3 (v text); INSERT INTO leak3 SELECT {c} FROM customers; '
    'SELECT v FROM leak3',
    'CREATE TEMP VIEW leak4 AS SELECT {c} AS v FROM customers; SELECT v FROM leak4',
    'PREPARE p_{n} AS SELECT {c} FROM customers; EXECUTE p_{n}',
    'BEGIN; DECLARE k_{n} CURSOR FOR SELECT {c} FROM customers; FETCH ALL k_{n}; COMMIT',
    'SELECT set_config(\'application_name\', {c}, false) FROM customers WHERE id = 1; '
    'SHOW application_name',
    "SELECT pg_notify('ch', {c}) FROM customers WHERE id = 1",
    "SELECT set_config('my.v', {c}, false) FROM customers WHERE id = 1; "
    "SELECT current_setting('my.v')",
]

COPY_STATEMENTS = [
    'COPY customers TO STDOUT', 'COPY customers ({c}, id) TO STDOUT',
    "COPY customers TO STDOUT (FORMAT csv, HEADER 'OFF')", 'COPY customers TO STDOUT WITH CSV',
    "COPY customers ({c}) TO STDOUT (DELIMITER '|')",
    'COPY (SELECT {c} FROM customers) TO STDOUT', 'COPY (SELECT c FROM customers c) TO STDOUT',
    'COPY public.customers TO STDOUT (FORMAT text)', 'COPY customers_2024 TO STDOUT',
    'COPY (TABLE customers) TO STDOUT (FORMAT csv)',
]

FUNCTIONS = [
    "SELECT query_to_xml('select {c} from customers', true, true, '')",
    "SELECT table_to_xml('customers', true, true, '')",
    "SELECT * FROM ts_stat('select to_tsvector({c}) from customers')",
    'SELECT leaky_sql()', 'SELECT * FROM leaky_rows()', 'SELECT leaky_dynamic(\'{c}\')',
    'SELECT leaky_plpgsql()', 'SELECT harmless_wrapper()',
    "DO $$BEGIN RAISE NOTICE '%', (SELECT {c} FROM customers LIMIT 1); END$$",
    "DO $$DECLARE v text; BEGIN EXECUTE 'SELECT {c} FROM cust' || 'omers LIMIT 1' INTO v; "
    "RAISE NOTICE '%', v; END$$",
    'CREATE FUNCTION pg_temp.f_{n}() RETURNS text LANGUAGE sql AS '
    '$$SELECT {c} FROM customers LIMIT 1$$; SELECT pg_temp.f_{n}()',
    'SELECT current_query()', 'SELECT query FROM pg_stat_activity',
    'SELECT * FROM pg_stats WHERE tablename = \'customers\'',
    'SELECT most_common_vals::text FROM pg_stats WHERE attname = \'{c}\'',
    'SELECT * FROM pg_prepared_statements',
    "SELECT xpath('/x/text()', query_to_xml('select {c} from customers', true, true, ''))",
    'SELECT lo_get(lo_from_bytea(0, convert_to((SELECT {c} FROM customers LIMIT 1), \'UTF8\')))',
    "SELECT jsonb_path_query(profile, '$.secret') FROM customers",
    "SELECT profile->>'secret' FROM customers", 'SELECT tags[1] FROM customers',
    'SELECT unnest(tags) FROM customers', 'SELECT array_to_string(tags, \',\') FROM customers',
]

# SQL functions that read masked columns are expanded through their bodies: each of these
# functions exists per masked column {c} (test_mask_adversarial.py creates them).
SQL_FUNCTIONS = [
    'SELECT get_{c}(1)', 'SELECT get_{c}_atomic(1)', 'SELECT ret_{c}(1)',
    'SELECT * FROM rows_{c}()', 'SELECT v FROM rows_{c}() WHERE cid = 1',
    'SELECT (pair_{c}(1)).b', 'SELECT * FROM pair_{c}(1)', 'SELECT pair_{c}(1)::text',
    'SELECT cfg_{c}()', 'SELECT wrap_{c}(1)', 'SELECT get_{c}(id) FROM customers',
    'SELECT * FROM customers c, LATERAL rows_{c}() r WHERE r.cid = c.id',
    'SELECT upper(get_{c}(1))', "SELECT string_agg(v, ',') FROM rows_{c}()",
    'SELECT get_{c}(1) FROM orders WHERE get_{c}(1) IS NOT NULL',
    'CREATE TEMP TABLE t_{n} AS SELECT get_{c}(1) AS v; SELECT * FROM t_{n}',
    'SELECT x FROM get_{c}(1) AS x', 'SELECT * FROM rows_{c}() AS r(a, b)',
    'SELECT rows_{c}()', 'SELECT * FROM ROWS FROM (rows_{c}())',
    'SELECT * FROM rows_{c}() WITH ORDINALITY', 'SELECT get_{c}(i => 1)',
    'SELECT definer_{c}()', 'SELECT * FROM get_{c}_atomic(1)',
    'SELECT dflt_{c}(1)', 'SELECT dflt_{c}(1, 0)', 'SELECT * FROM dflt_{c}(1)',
    'SELECT poly_{c}(1)', "SELECT get_{c}(1) FROM customers WHERE get_{c}(id) LIKE '%'",
]

# Function shapes over ssn alone (test_mask_adversarial.py creates them): recursion, a row type
# read whole and by field, a set of text in FROM with a column alias, a CTE in the body, an
# argument named like a column (the column wins), an argument qualified with the function name.
FUNCTION_SHAPES = [
    'SELECT rec_ssn(3)', 'SELECT (whole_row(1)).*', 'SELECT (whole_row(1)).ssn',
    'SELECT whole_row(1)', 'SELECT * FROM whole_row(1)', 'SELECT * FROM srf_text() AS x(y)',
    "SELECT y FROM srf_text() x(y) WHERE y LIKE 'Ssn%'", 'SELECT cte_ssn()',
    "SELECT shadow('x')", "SELECT qual_arg2('mine')",
    'SELECT * FROM LATERAL srf_text() s, customers c WHERE c.id = 1',
    'SELECT eq_ssn((SELECT ssn FROM customers WHERE id = 1))',
]

DML = [
    'UPDATE customers SET note = {c} WHERE id = 1 RETURNING note',
    'UPDATE customers SET note = {c} WHERE id = 1; SELECT note FROM customers WHERE id = 1',
    'UPDATE customers c SET note = c.{c} RETURNING *',
    'DELETE FROM customers WHERE id = 1 RETURNING {c}',
    'DELETE FROM customers c WHERE id = 1 RETURNING c',
    'DELETE FROM customers WHERE id = 1 RETURNING *',
    'INSERT INTO orders (id, customer_id, note) SELECT 99, id, {c} FROM customers; '
    'SELECT note FROM orders WHERE id = 99',
    "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
    'SET note = customers.{c} RETURNING note',
    "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
    'SET note = excluded.name RETURNING {c}',
    'UPDATE orders o SET note = c.{c} FROM customers c WHERE c.id = o.customer_id RETURNING o.note',
    'UPDATE customers SET note = (SELECT {c} FROM customers WHERE id = 1) WHERE id = 2 '
    'RETURNING note',
    'WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING *) SELECT {c} FROM d',
    'WITH u AS (UPDATE customers SET name = name RETURNING {c} AS v) SELECT v FROM u',
    'MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE '
    'SET note = c.{c}; SELECT note FROM orders',
    'MERGE INTO customers c USING (SELECT 1 AS id) s ON c.id = s.id WHEN MATCHED THEN UPDATE '
    'SET note = c.{c}; SELECT note FROM customers WHERE id = 1',
]

ERRORS = [
    'SELECT {c}::int FROM customers', 'SELECT {c}::date FROM customers',
    'SELECT {c}::jsonb FROM customers', 'SELECT {c}::numeric FROM customers',
    "SELECT to_number({c}, '999') FROM customers", 'SELECT {c}::uuid FROM customers',
    'SELECT {c}::inet FROM customers', 'SELECT {c}::boolean FROM customers',
    "SELECT jsonb_build_object({c}, 1)->'x'->>1::int FROM customers",
    'UPDATE customers SET name = NULL WHERE id = 1',
    "UPDATE customers SET note = 'x' WHERE id = 1 AND {c}::int > 0",
    "ALTER TABLE customers ADD CONSTRAINT k CHECK ({c} <> 'x')",
    'CREATE UNIQUE INDEX ON customers ((substr({c}, 1, 1)))',
    "ALTER TABLE customers ADD COLUMN g text GENERATED ALWAYS AS ({c}) STORED",
    'CREATE STATISTICS s_{n} ON {c}, name FROM customers',
    'EXPLAIN (VERBOSE) SELECT {c} FROM customers',
]

STEERING = [
    'SET search_path = agent_space, public, pg_catalog; SELECT {c} FROM customers',
    'SET search_path = agent_space, pg_catalog, public; SELECT {c} FROM public.customers',
    'SET search_path = agent_space, public, pg_catalog; SELECT upper({c}) FROM public.customers',
    'SELECT agent_space.echo({c}) FROM customers',
    'SELECT {c} OPERATOR(agent_space.===) {c} FROM customers',
]

# Oracle pairs: (true, false) guesses about row 1's value; answers must be equal.
ORACLES = [
    ("SELECT count(*) FROM customers WHERE {c} LIKE '{p2}%'",
     "SELECT count(*) FROM customers WHERE {c} LIKE 'qq%'"),
    ("SELECT count(*) FROM customers WHERE ascii(substr({c}, 1, 1)) = {a1}",
     "SELECT count(*) FROM customers WHERE ascii(substr({c}, 1, 1)) = 1"),
    ("SELECT id FROM customers WHERE substr({c}, 1, 3) = '{p3}' ORDER BY id",
     "SELECT id FROM customers WHERE substr({c}, 1, 3) = 'qqq' ORDER BY id"),
    ("SELECT 1/(CASE WHEN substr({c}, 1, 1) = '{p1}' THEN 0 ELSE 1 END) FROM customers "
     "WHERE id = 1",
     "SELECT 1/(CASE WHEN substr({c}, 1, 1) = 'q' THEN 0 ELSE 1 END) FROM customers "
     "WHERE id = 1"),
    ("SELECT count(*) FROM customers GROUP BY substr({c}, 1, 1) = '{p1}' "
     "HAVING substr(min({c}), 1, 1) = '{p1}'",
     "SELECT count(*) FROM customers GROUP BY substr({c}, 1, 1) = 'q' "
     "HAVING substr(min({c}), 1, 1) = 'q'"),
    ("SELECT EXISTS (SELECT 1 FROM customers WHERE {c} = '{pv}')",
     "SELECT EXISTS (SELECT 1 FROM customers WHERE {c} = 'wrong')"),
    ("SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
     "AND c.{c} >= '{p1}' AND c.{c} < '{p1n}'",
     "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
     "AND c.{c} >= 'q' AND c.{c} < 'r'"),
    ("UPDATE customers SET note = note WHERE {c} LIKE '{p2}%'",
     "UPDATE customers SET note = note WHERE {c} LIKE 'qq%'"),
    ("DELETE FROM customers WHERE {c} LIKE '{p2}%' RETURNING id",
     "DELETE FROM customers WHERE {c} LIKE 'qq%' RETURNING id"),
    ("SELECT count(*) FROM v_customers WHERE {c} LIKE '{p2}%'",
     "SELECT count(*) FROM v_customers WHERE {c} LIKE 'qq%'"),
    ("SELECT CASE WHEN position('{p2}' in {c}) = 1 THEN 'yes' ELSE 'no' END FROM customers "
     "WHERE id = 1",
     "SELECT CASE WHEN position('qq' in {c}) = 1 THEN 'yes' ELSE 'no' END FROM customers "
     "WHERE id = 1"),
    ("SELECT count(*) FROM customers c WHERE (SELECT c.{c}) LIKE '{p2}%'",
     "SELECT count(*) FROM customers c WHERE (SELECT c.{c}) LIKE 'qq%'"),
    # Through SQL functions (expanded: their predicates see masked values too).
    ("SELECT has_prefix_{c}('{p2}')", "SELECT has_prefix_{c}('qq')"),
    ("SELECT count_{c}('{p2}%')", "SELECT count_{c}('qq%')"),
    ("SELECT count(*) FROM rows_{c}() WHERE v LIKE '{p2}%'",
     "SELECT count(*) FROM rows_{c}() WHERE v LIKE 'qq%'"),
    ("SELECT get_{c}(1) LIKE '{p2}%'", "SELECT get_{c}(1) LIKE 'qq%'"),
    ("SELECT eq_ssn('{pssn}')", "SELECT eq_ssn('nope')"),
]


def mutate(sql, k):
    """Variant k of `sql`: letter case, whitespace, comments, quoted names, qualification."""
    if k == 0:
        return sql
    if k == 1:
        return sql.replace('SELECT', 'select').replace('FROM', 'from').replace('WHERE', 'where')
    if k == 2:
        return sql.replace(' FROM ', ' /* c */ FROM\n\t').replace('SELECT ', 'SELECT  ')
    if k == 3:
        return sql.replace('FROM customers', 'FROM public.customers')
    if k == 4:
        return sql.replace('FROM customers', 'FROM "customers"')
    return sql


def attempts():
    out = []
    n = 0

    def add(cls, sql, **extra):
        nonlocal n
        n += 1
        out.append({'id': f'{cls}-{n}', 'class': cls, 'sql': sql, **extra})

    for i, e in enumerate(EXPRESSIONS):
        for c in (MASKED[i % len(MASKED)], MASKED[(i + 2) % len(MASKED)]):
            add('expression', mutate(f'SELECT {e.format(c=c)} FROM customers', i % 5))
            add('expression_where', f'SELECT id FROM customers WHERE {e.format(c=c)} IS NOT NULL '
                f'AND name <> {e.format(c=c)}::text')
    for i, s in enumerate(WHOLE_ROW):
        add('whole_row', s)
        add('whole_row', mutate(s, 1 + i % 4))
    for i, s in enumerate(AGGREGATES):
        for c in MASKED[:3] if i % 2 == 0 else MASKED[2:]:
            add('aggregate', mutate(s.format(c=c), i % 5))
    for i, s in enumerate(SUBQUERIES):
        for c in (MASKED[i % len(MASKED)], MASKED[(i + 1) % len(MASKED)]):
            add('subquery', s.format(c=c))
    for i, s in enumerate(COPIES):
        for c in MASKED:
            add('copy', s.format(c=c, n=n))
    for s in COPY_STATEMENTS:
        for c in MASKED[:2]:
            add('copy_to', s.format(c=c), copy=True)
    for s in FUNCTIONS:
        for c in MASKED[:2]:
            add('function', s.format(c=c, n=n))
    for s in SQL_FUNCTIONS:
        for c in MASKED:
            add('sql_function', s.format(c=c, n=n))
    for s in FUNCTION_SHAPES:
        add('sql_function', s)
    for s in DML:
        for c in MASKED:
            add('dml', s.format(c=c))
    for s in ERRORS:
        for c in MASKED[:3]:
            add('error', s.format(c=c, n=n))
    for s in STEERING:
        for c in MASKED:
            add('steering', s.format(c=c))
    for t, f in ORACLES:
        for c in MASKED:
            if c == 'email':
                continue  # partial masking shows the domain by design
            v = PLANTED[c]
            fill = {'c': c, 'p1': v[0], 'p2': v[:2], 'p3': v[:3], 'pv': v, 'a1': ord(v[0]),
                    'p1n': chr(ord(v[0]) + 1), 'pssn': PLANTED['ssn']}
            add('oracle', t.format(**fill), pair=f.format(**fill))
    return out


if __name__ == '__main__':
    for a in attempts():
        json.dump(a, sys.stdout)
        sys.stdout.write('\n')
