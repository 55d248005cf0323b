#!/bin/bash
# capture-all.sh - regenerate the PostgreSQL v3 wire-protocol golden vectors.
#
# Run as root on a machine with PostgreSQL 15 server binaries
# (/usr/lib/postgresql/15/bin), psql, pgbench, gcc + libpq-dev,
# python3-psycopg2 (for /usr/bin/python3) and optionally Java 17 with
# /usr/share/java/postgresql.jar:
#
#     sudo tests/testdata/postgres/capture-all.sh
#
# It creates a throwaway cluster (initdb as user postgres in a mktemp dir),
# starts it on a free 127.0.0.1 port, runs each client through capture.py
# and leaves <name>.fe.bin / <name>.be.bin next to this script. Everything
# (server, proxy, temp dir) is torn down on exit, including on failure.
#
# Roles: dbw (password dbw-secret, stored as SCRAM-SHA-256) owns database dbw;
# dbw_md5 (password dbw-secret, stored as MD5). pg_hba first trusts every
# loopback connection, then is switched to scram-sha-256 / md5 for the
# psql_scram / psql_md5 captures.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PGBIN=/usr/lib/postgresql/15/bin
PY=/usr/bin/python3
JDBC_JAR=/usr/share/java/postgresql.jar

die() { echo "capture-all.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (initdb/pg_ctl run via runuser -u postgres)"
for b in initdb pg_ctl postgres; do [ -x "$PGBIN/$b" ] || die "missing $PGBIN/$b"; done
command -v psql >/dev/null && command -v pgbench >/dev/null || die "need psql and pgbench"

# Keep the host's libpq environment and locale out of the vectors.
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export LC_ALL=C TZ=UTC

WORK=$(mktemp -d /tmp/dbw-pgcapture.XXXXXX)
PGDATA=$WORK/data
LOG=$WORK/clients.log
PROXY_PID=""
SERVER_STARTED=0

cleanup() {
    local rc=$?
    set +e
    if [ -n "$PROXY_PID" ]; then
        kill "$PROXY_PID" 2>/dev/null
        wait "$PROXY_PID" 2>/dev/null
    fi
    if [ "$SERVER_STARTED" = 1 ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    fi
    if [ "$rc" != 0 ]; then
        echo "capture-all.sh: FAILED (rc=$rc); client log tail:" >&2
        tail -n 40 "$LOG" >&2 2>/dev/null
        echo "--- server log tail:" >&2
        tail -n 20 "$WORK/server.log" >&2 2>/dev/null
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cd "$WORK"   # runuser'd commands must not start in a directory postgres can't read
chown postgres: "$WORK"
: >"$LOG"

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- server
PGPORT_REAL=$(free_port)
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust \
    --no-locale -E UTF8 --no-sync >>"$LOG" 2>&1
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT_REAL
unix_socket_directories = '$WORK'
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
shared_buffers = 32MB
max_connections = 20
EOF

set_hba() { # trust | auth
    {
        echo "local all all trust"
        if [ "$1" = auth ]; then
            echo "host all dbw_md5 127.0.0.1/32 md5"
            echo "host all all 127.0.0.1/32 scram-sha-256"
        else
            echo "host all all 127.0.0.1/32 trust"
        fi
    } >"$PGDATA/pg_hba.conf"
}
set_hba trust
chown postgres: "$PGDATA/pg_hba.conf"

runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w -t 30 start >>"$LOG" 2>&1
SERVER_STARTED=1

# superuser over the unix socket (never captured)
su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT_REAL" -U postgres "$@"; }
# dbw over TCP, directly (never captured)
dbw_psql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT_REAL" -U dbw -d dbw "$@"; }

su_psql -d postgres >>"$LOG" 2>&1 <<'EOF'
SET password_encryption = 'scram-sha-256';
CREATE ROLE dbw LOGIN PASSWORD 'dbw-secret';
SET password_encryption = 'md5';
CREATE ROLE dbw_md5 LOGIN PASSWORD 'dbw-secret';
CREATE DATABASE dbw OWNER dbw;
EOF
dbw_psql >>"$LOG" 2>&1 <<'EOF'
CREATE TABLE t (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    amount  numeric(10,2),
    active  boolean DEFAULT true,
    created timestamp,
    note    text
);
INSERT INTO t VALUES
    (1, 'alpha',   10.50, true,  '2024-01-01 10:00:00', 'first'),
    (2, 'beta',    -3.25, false, '2024-01-02 11:30:00', NULL),
    (3, 'gamma',    0.00, true,  '2024-01-03 12:45:30', 'third'),
    (4, 'delta', 1234.56, NULL,  NULL,                  'fourth'),
    (5, 'epsilon',  NULL, true,  '2024-01-05 00:00:01', '');
EOF
pgbench -i -s 1 -q -h 127.0.0.1 -p "$PGPORT_REAL" -U dbw dbw >>"$LOG" 2>&1

# ---------------------------------------------------------------- capture
rm -f "$HERE"/*.fe.bin "$HERE"/*.be.bin

# capture NAME [NAME...] -- COMMAND [ARGS...]
# Starts capture.py expecting the named connections in accept order ("-" =
# forward but don't record), runs COMMAND with PGHOST/PGPORT pointing at the
# proxy, then waits for the proxy to see all its connections finish.
capture() {
    local names=()
    while [ "$1" != "--" ]; do names+=(--name "$1"); shift; done
    shift
    rm -f "$WORK/proxy.port"
    "$PY" "$HERE/capture.py" --upstream "127.0.0.1:$PGPORT_REAL" --out-dir "$HERE" \
        --port-file "$WORK/proxy.port" --timeout 60 "${names[@]}" >/dev/null 2>>"$LOG" &
    PROXY_PID=$!
    local i
    for i in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.05; done
    [ -s "$WORK/proxy.port" ] || die "capture.py did not start"
    echo "=== ${names[*]}: $*" >>"$LOG"
    PGHOST=127.0.0.1 PGPORT=$(cat "$WORK/proxy.port") PGUSER=dbw PGDATABASE=dbw \
        "$@" >>"$LOG" 2>&1
    wait "$PROXY_PID" || die "capture.py failed for ${names[*]}"
    PROXY_PID=""
}

# 1. psql: simple query protocol, \d catalog queries, errors, notices,
#    empty query, LISTEN/NOTIFY, COPY out + in.
cat >"$WORK/psql_simple.sql" <<'EOF'
SELECT 42 AS int_col, 'hello'::text AS text_col, NULL::int AS null_col,
       12345.678::numeric(10,3) AS num_col, true AS bool_col,
       '2024-01-02 03:04:05'::timestamp AS ts_col;
SELECT id, name, amount, active, created, note FROM t ORDER BY id LIMIT 5;
\d t
SELECT 1/0;
DO $$BEGIN RAISE NOTICE 'hi'; END$$;
BEGIN;
INSERT INTO t VALUES (6, 'zeta', 6.60, false, '2024-01-06 06:06:06', 'in tx');
COMMIT;
;
LISTEN dbw_chan;
NOTIFY dbw_chan, 'hello from psql';
UNLISTEN dbw_chan;
COPY t TO STDOUT;
COPY t (id, name, amount, active, created, note) FROM STDIN WITH (FORMAT csv);
7,eta,7.70,t,2024-01-07 07:07:07,copied
8,theta,,f,,
9,iota,9.90,,2024-01-09 09:09:09,"quoted, with comma"
\.
SELECT count(*) FROM t;
EOF
capture psql_simple -- psql -X -f "$WORK/psql_simple.sql"

# 2. pgbench (first connection = pgbench's setup/GetTableInfo connection, not recorded)
capture - pgbench_simple   -- pgbench -n -S -c 1 -t 5 -M simple   --random-seed=1
capture - pgbench_extended -- pgbench -n -S -c 1 -t 5 -M extended --random-seed=1
capture - pgbench_prepared -- pgbench -n -S -c 1 -t 5 -M prepared --random-seed=1
capture - pgbench_prepared_tpcb -- pgbench -n -c 1 -t 5 -M prepared --random-seed=1

# 3. psycopg2 session
cat >"$WORK/psycopg2_session.py" <<'EOF'
import datetime, decimal, io
import psycopg2

conn = psycopg2.connect(application_name="dbw-psycopg2")  # PGHOST/PGPORT/... from env
cur = conn.cursor()
cur.execute("SELECT id, name, amount, created FROM t WHERE id > %s AND name <> %s ORDER BY id LIMIT 5",
            (1, "nobody's"))
print(cur.fetchall())
cur.execute("CREATE TABLE py_items (id int PRIMARY KEY, label text, price numeric(8,2), seen timestamp)")
cur.executemany("INSERT INTO py_items VALUES (%s, %s, %s, %s)", [
    (1, "one", decimal.Decimal("1.10"), datetime.datetime(2024, 1, 1, 1, 1, 1)),
    (2, "two", decimal.Decimal("2.20"), None),
    (3, None, None, datetime.datetime(2024, 3, 3, 3, 3, 3)),
])
conn.commit()
with conn.cursor(name="dbw_named") as nc:
    nc.execute("SELECT g, md5(g::text) FROM generate_series(1, 7) AS g")
    print(nc.fetchmany(3))
    print(nc.fetchmany(3))
conn.commit()
out = io.StringIO()
cur.copy_expert("COPY py_items TO STDOUT WITH (FORMAT csv, HEADER)", out)
print(out.getvalue())
cur.copy_expert("COPY py_items FROM STDIN WITH (FORMAT csv)",
                io.StringIO("4,four,4.40,2024-04-04 04:04:04\n5,five,,\n"))
conn.commit()
cur.execute("DELETE FROM py_items WHERE id = %s", (1,))
conn.rollback()
cur.execute("SELECT count(*) FROM py_items")
print(cur.fetchone())
conn.close()
EOF
capture psycopg2_session -- "$PY" "$WORK/psycopg2_session.py"

# 4. libpq binary parameters/results
gcc -O1 -o "$WORK/pq_binary" "$HERE/pq_binary.c" -I/usr/include/postgresql -lpq
capture libpq_binary -- "$WORK/pq_binary" "application_name=dbw-pq-binary"

# 5. CancelRequest: psycopg2 conn.cancel() during pg_sleep; the cancel
#    connection is the second one through the proxy.
cat >"$WORK/cancel.py" <<'EOF'
import threading
import psycopg2, psycopg2.extensions

conn = psycopg2.connect(application_name="dbw-cancel")
cur = conn.cursor()
threading.Timer(0.5, conn.cancel).start()
try:
    cur.execute("SELECT pg_sleep(5)")
    raise SystemExit("query was not cancelled")
except psycopg2.extensions.QueryCanceledError as e:
    print("cancelled:", e)
conn.rollback()
conn.close()
EOF
capture cancel_session cancel_request -- "$PY" "$WORK/cancel.py"

# 6. pgJDBC (extended protocol, server-prepared statement, metadata query)
if command -v java >/dev/null && [ -f "$JDBC_JAR" ]; then
    capture jdbc_session -- bash -c 'exec java -cp "$0" "$1" \
        "jdbc:postgresql://127.0.0.1:$PGPORT/dbw?sslmode=disable&ApplicationName=dbw-jdbc" dbw' \
        "$JDBC_JAR" "$HERE/JdbcSession.java"
else
    echo "capture-all.sh: java or $JDBC_JAR missing, skipping jdbc_session" >&2
fi

# 6b. node-postgres (tests/drivers/node's pinned package): unnamed and named extended-protocol
#     statements with parameters, a simple query, a transaction.
NODE_DIR="$HERE/../../drivers/node"
if command -v node >/dev/null && [ -d "$NODE_DIR/node_modules/pg" ]; then
    cat >"$WORK/node_session.js" <<'EOF'
const { Client } = require(process.argv[2])
;(async () => {
  const c = new Client({ application_name: 'dbw-node' })
  await c.connect()
  await c.query('SELECT id, name FROM t WHERE id > $1 ORDER BY id LIMIT 3', [1])
  await c.query({ name: 'by-id', text: 'SELECT name, amount FROM t WHERE id = $1', values: [2] })
  await c.query({ name: 'by-id', text: 'SELECT name, amount FROM t WHERE id = $1', values: [3] })
  await c.query('SELECT count(*) FROM t')
  await c.query('BEGIN')
  await c.query('UPDATE t SET note = $1 WHERE id = $2', ['from node', 4])
  await c.query('ROLLBACK')
  await c.end()
})().catch((e) => { console.error(e); process.exit(1) })
EOF
    capture node_session -- node "$WORK/node_session.js" "$NODE_DIR/node_modules/pg"
else
    echo "capture-all.sh: node or node-postgres missing, skipping node_session" >&2
fi

# 7. password authentication: SCRAM-SHA-256 and MD5
set_hba auth
su_psql -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
for i in $(seq 50); do   # wait until the postmaster actually uses the new pg_hba.conf
    psql -X -w -h 127.0.0.1 -p "$PGPORT_REAL" -U dbw -d dbw -c 'SELECT 1' >/dev/null 2>&1 || break
    sleep 0.1
done
capture psql_scram -- env PGPASSWORD=dbw-secret psql -X -c 'SELECT 1'
capture psql_md5   -- env PGPASSWORD=dbw-secret PGUSER=dbw_md5 psql -X -c 'SELECT 1'

# ---------------------------------------------------------------- done
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >>"$LOG" 2>&1
SERVER_STARTED=0
echo "capture-all.sh: vectors written to $HERE:"
ls -l "$HERE"/*.bin
