/* Runs fixed PQexecParams queries with binary results and prints every value's bytes in hex, so
 * test_relay_clients.py can compare a relayed connection with a direct one byte for byte.
 *
 * Usage: pq_binary_dump CONNINFO        (exit 0 when every query ran as expected) */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

static void print_result(int n, const char *sql, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  printf("query %d: %s\nstatus %s\n", n, sql, PQresStatus(st));
  if (st == PGRES_FATAL_ERROR) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    printf("sqlstate %s\nmessage %s\n", state ? state : "-", msg ? msg : "-");
    return;
  }
  printf("tag %s\nrows %d fields %d\n", PQcmdStatus(res), PQntuples(res), PQnfields(res));
  for (int c = 0; c < PQnfields(res); c++)
    printf("field %d name=%s type=%u mod=%d format=%d\n", c, PQfname(res, c), PQftype(res, c),
           PQfmod(res, c), PQfformat(res, c));
  for (int r = 0; r < PQntuples(res); r++) {
    for (int c = 0; c < PQnfields(res); c++) {
      printf("row %d col %d ", r, c);
      if (PQgetisnull(res, r, c)) {
        printf("NULL\n");
        continue;
      }
      const unsigned char *v = (const unsigned char *)PQgetvalue(res, r, c);
      int len = PQgetlength(res, r, c);
      printf("len=%d ", len);
      for (int i = 0; i < len; i++) printf("%02x", v[i]);
      printf("\n");
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CONNINFO\n", argv[0]);
    return 2;
  }
  PGconn *conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "connect failed: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 1;
  }

  static const char *const queries[] = {
      "SELECT 42::int4 AS i4, (-2147483648)::int4 AS i4min, 9223372036854775807::int8 AS i8, "
      "-2.5e-3::float8 AS f8, 'Infinity'::float8 AS finf",
      "SELECT 'h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x90\x98'::text AS t, ''::text AS empty, "
      "'\\x00ff7f80'::bytea AS b",
      "SELECT '2024-02-29 13:14:15.123456+00'::timestamptz AS ts, "
      "'-infinity'::timestamptz AS tsinf, 12345.6789::numeric AS n, -0.000001::numeric AS n2, "
      "'NaN'::numeric AS nan, 1e40::numeric AS big",
      "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, ARRAY[1,NULL,3]::int4[] AS arr, "
      "ARRAY[['x','y z'],['{','\"']]::text[] AS tarr, NULL::int4 AS nul, true AS b",
      "SELECT g, g::int8 * g AS sq, repeat('x', g) AS s FROM generate_series(1, 5) AS g",
      "SELECT $1::bytea AS echoed, $2::int4 + 1 AS next, $3::text AS txt",
      "SELECT 1 / $1::int4 AS boom",
      "SELECT 'still usable'::text AS after_error",
  };
  int failures = 0;
  for (int q = 0; q < (int)(sizeof queries / sizeof queries[0]); q++) {
    PGresult *res;
    if (q == 5) {
      /* Binary parameters too: bytea with NUL and high bytes, int4 in network order. */
      static const char bytes[] = {0x00, 0x01, (char)0xfe, (char)0xff, 'a'};
      uint32_t be = htonl(41);
      const Oid types[] = {17, 23, 25};
      const char *values[] = {bytes, (const char *)&be, "text param \xc3\xa4"};
      const int lengths[] = {sizeof bytes, sizeof be, 0};
      const int formats[] = {1, 1, 0};
      res = PQexecParams(conn, queries[q], 3, types, values, lengths, formats, 1);
    } else if (q == 6) {
      const char *values[] = {"0"};
      res = PQexecParams(conn, queries[q], 1, NULL, values, NULL, NULL, 1);
    } else {
      res = PQexecParams(conn, queries[q], 0, NULL, NULL, NULL, NULL, 1);
    }
    print_result(q, queries[q], res);
    ExecStatusType expected = q == 6 ? PGRES_FATAL_ERROR : PGRES_TUPLES_OK;
    if (PQresultStatus(res) != expected) {
      fprintf(stderr, "query %d: unexpected status %s: %s", q, PQresStatus(PQresultStatus(res)),
              PQerrorMessage(conn));
      failures++;
    }
    PQclear(res);
  }
  PQfinish(conn);
  return failures ? 1 : 0;
}
