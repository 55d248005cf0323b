/*
 * pq_binary.c - tiny libpq client used by capture-all.sh to record the
 * extended query protocol with binary parameters and binary results.
 *
 *   gcc -o /tmp/pq_binary pq_binary.c -I/usr/include/postgresql -lpq
 *   /tmp/pq_binary "host=127.0.0.1 port=PORT user=dbw dbname=dbw"
 *
 * Connection parameters not given in the conninfo string come from the
 * usual PG* environment variables.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#define INT4OID 23
#define INT8OID 20
#define BYTEAOID 17

static void die(PGconn *conn, PGresult *res, const char *what)
{
    fprintf(stderr, "%s: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    if (res)
        PQclear(res);
    PQfinish(conn);
    exit(1);
}

static void dump(PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < PQnfields(res); c++)
            printf("%s%s[%d%s]", c ? " " : "", PQfname(res, c), PQgetlength(res, r, c),
                   PQgetisnull(res, r, c) ? ",null" : "");
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    PGconn *conn = PQconnectdb(argc > 1 ? argv[1] : "");
    if (PQstatus(conn) != CONNECTION_OK)
        die(conn, NULL, "connect");

    /* 1. PQexecParams: unnamed statement, binary int4 + bytea params, binary results. */
    uint32_t n = htonl(21);
    const unsigned char blob[] = {0xde, 0xad, 0x00, 0xbe, 0xef};
    const Oid types1[2] = {INT4OID, BYTEAOID};
    const char *values1[2] = {(const char *) &n, (const char *) blob};
    const int lengths1[2] = {sizeof n, sizeof blob};
    const int formats1[2] = {1, 1};
    PGresult *res = PQexecParams(conn,
        "SELECT $1::int4 * 2 AS doubled, $2::bytea AS raw, 'text value'::text AS label, "
        "NULL::int8 AS nothing, true AS flag, 1.5::float8 AS ratio, "
        "'2024-01-02 03:04:05'::timestamp AS ts",
        2, types1, values1, lengths1, formats1, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die(conn, res, "PQexecParams");
    dump(res);
    PQclear(res);

    /* 2. PQprepare + PQdescribePrepared + PQexecPrepared (named statement). */
    const Oid types2[1] = {INT8OID};
    res = PQprepare(conn, "dbw_stmt",
                    "SELECT g AS n, g * $1::int8 AS product, md5(g::text) AS digest "
                    "FROM generate_series(1, 3) AS g",
                    1, types2);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(conn, res, "PQprepare");
    PQclear(res);

    res = PQdescribePrepared(conn, "dbw_stmt");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(conn, res, "PQdescribePrepared");
    PQclear(res);

    for (int64_t m = 7; m <= 8; m++) {
        uint64_t be = htobe64((uint64_t) m);
        const char *values2[1] = {(const char *) &be};
        const int lengths2[1] = {sizeof be};
        const int formats2[1] = {1};
        res = PQexecPrepared(conn, "dbw_stmt", 1, values2, lengths2, formats2, 1);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die(conn, res, "PQexecPrepared");
        dump(res);
        PQclear(res);
    }

    /* 3. Text-format parameter, mixed result formats via a text query for contrast. */
    const char *values3[1] = {"3"};
    res = PQexecParams(conn, "SELECT $1::int4 + 1 AS plus_one", 1, NULL, values3, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die(conn, res, "PQexecParams text");
    dump(res);
    PQclear(res);

    PQfinish(conn);
    return 0;
}
