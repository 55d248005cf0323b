"""A client for tests/integration/test_routing.py, run as its own process (in a test cgroup, as
another user or as another executable): connects to a PostgreSQL address one way, logs in, runs
one statement and prints one JSON object.

  route_probe.py VARIANT HOST PORT USER APPNAME SQL

VARIANT says how the socket reaches HOST:PORT — the ways a client can open a TCP connection:
  plain      socket() + connect()
  nonblock   a non-blocking connect() finished with poll()
  bound      bind() to an explicit local port first
  mapped     an IPv6 socket connecting to ::ffff:HOST (HOST is IPv4)
  fastopen   TCP Fast Open: sendto(MSG_FASTOPEN) with the startup packet, no connect()
  psycopg2   libpq through psycopg2 (HOST may be a name, e.g. localhost)

Prints {"connected": bool, "errno": name, "rows": [...], "error": text, "local_port": n,
"pid": n}. Uses only the standard library except for the psycopg2 variant.
"""

import errno
import json
import os
import select
import socket
import struct
import sys

MSG_FASTOPEN = 0x20000000


def startup(user, appname):
    params = b''
    for k, v in (('user', user), ('database', 'postgres'), ('application_name', appname)):
        params += k.encode() + b'\0' + v.encode() + b'\0'
    body = struct.pack('!I', 196608) + params + b'\0'
    return struct.pack('!I', len(body) + 4) + body


def read_message(sock):
    head = b''
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            raise ConnectionError('server closed the connection')
        head += chunk
    kind, length = head[:1], struct.unpack('!I', head[1:])[0]
    body = b''
    while len(body) < length - 4:
        chunk = sock.recv(length - 4 - len(body))
        if not chunk:
            raise ConnectionError('server closed the connection')
        body += chunk
    return kind, body


def error_text(body):
    fields = {}
    for part in body.split(b'\0'):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors='replace')
    return f"{fields.get('C', '')}: {fields.get('M', '')}"


def wire_session(sock, user, appname, sql, sent_startup=False):
    if not sent_startup:
        sock.sendall(startup(user, appname))
    while True:
        kind, body = read_message(sock)
        if kind == b'E':
            return {'error': error_text(body), 'rows': []}
        if kind == b'R' and struct.unpack('!I', body[:4])[0] != 0:
            return {'error': 'authentication requested', 'rows': []}
        if kind == b'Z':
            break
    q = sql.encode() + b'\0'
    sock.sendall(b'Q' + struct.pack('!I', len(q) + 4) + q)
    rows, error = [], None
    while True:
        kind, body = read_message(sock)
        if kind == b'D':
            n = struct.unpack('!H', body[:2])[0]
            pos, row = 2, []
            for _ in range(n):
                length = struct.unpack('!i', body[pos:pos + 4])[0]
                pos += 4
                row.append(None if length < 0 else body[pos:pos + length].decode())
                pos += max(length, 0)
            rows.append(row)
        elif kind == b'E':
            error = error_text(body)
        elif kind == b'Z':
            break
    sock.sendall(b'X' + struct.pack('!I', 4))
    return {'error': error, 'rows': rows}


def main():
    variant, host, port, user, appname, sql = sys.argv[1:7]
    port = int(port)
    out = {'connected': False, 'errno': None, 'rows': [], 'error': None, 'pid': os.getpid()}
    if variant == 'psycopg2':
        import psycopg2  # noqa: PLC0415 - only this variant needs it
        try:
            conn = psycopg2.connect(host=host, port=port, user=user, dbname='postgres',
                                    application_name=appname, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            out['error'] = str(exc).strip()
            print(json.dumps(out))
            return
        out['connected'] = True
        if not host.startswith('/'):  # TCP: the client's own port
            with socket.fromfd(conn.fileno(), socket.AF_INET6 if ':' in host else socket.AF_INET,
                               socket.SOCK_STREAM) as s:
                out['local_port'] = s.getsockname()[1]
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute(sql)
                out['rows'] = [list(map(lambda v: None if v is None else str(v), r))
                               for r in (cur.fetchall() if cur.description else [])]
            except psycopg2.Error as exc:
                out['error'] = f'{exc.pgcode}: {exc.pgerror or exc}'.strip()
        conn.close()
        print(json.dumps(out))
        return
    family = socket.AF_INET6 if variant == 'mapped' or ':' in host else socket.AF_INET
    target = ('::ffff:' + host if variant == 'mapped' else host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Blocking for fastopen: sendto() then waits for the handshake like connect() does.
    sock.settimeout(None if variant == 'fastopen' else 10)
    sent = False
    try:
        if variant == 'bound':
            sock.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', 0))
            sock.connect(target)
        elif variant == 'nonblock':
            sock.setblocking(False)
            rc = sock.connect_ex(target)
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
            select.select([], [sock], [], 10)
            rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                raise OSError(rc, os.strerror(rc))
            sock.setblocking(True)
            sock.settimeout(10)
        elif variant == 'fastopen':
            sock.sendto(startup(user, appname), MSG_FASTOPEN, target)
            sent = True
        else:
            sock.connect(target)
    except OSError as exc:
        out['errno'] = errno.errorcode.get(exc.errno, str(exc.errno))
        out['error'] = str(exc)
        print(json.dumps(out))
        return
    out['connected'] = True
    out['local_port'] = sock.getsockname()[1]
    sock.settimeout(10)
    try:
        out.update(wire_session(sock, user, appname, sql, sent_startup=sent))
    except (OSError, ConnectionError) as exc:
        out['error'] = f'{type(exc).__name__}: {exc}'
    sock.close()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
