#!/usr/bin/python3
"""Record PostgreSQL v3 wire traffic of real clients as golden test vectors.

A tiny loopback TCP proxy (stdlib only). It accepts client connections,
forwards each one to an upstream PostgreSQL server and writes the two byte
streams of every connection verbatim:

    <out-dir>/<name>.fe.bin   frontend bytes (client -> server), starting with
                              the client's very first packet (SSLRequest,
                              GSSENCRequest, StartupMessage or CancelRequest)
    <out-dir>/<name>.be.bin   backend bytes (server -> client)

SSLRequest (code 80877103) and GSSENCRequest (code 80877104) are answered
with a single 'N' by the proxy itself and are NOT forwarded; the request is
kept in .fe.bin and the 'N' in .be.bin, so the vector shows the client's real
negotiation followed by a plaintext session.

Connections are named in accept order by the --name arguments. A name of
"-" means: forward that connection but do not record it (e.g. pgbench's
initial table-inspection connection). The proxy exits once every named
connection has finished, or with status 2 after --timeout seconds.

Usage:
    capture.py --upstream 127.0.0.1:5432 --out-dir DIR [--listen-port 0]
               [--port-file FILE] [--timeout 60] --name NAME [--name NAME ...]

    --listen-port 0 (default) picks a free loopback port; the chosen port is
    printed on stdout and, with --port-file, written atomically to FILE.

Example:
    ./capture.py --upstream 127.0.0.1:5432 --out-dir . --port-file /tmp/p \
        --name psql_simple &
    psql -h 127.0.0.1 -p "$(cat /tmp/p)" -U dbw dbw -c 'SELECT 1'; wait
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
MAX_STARTUP_LEN = 10000  # same sanity limit as the server (MAX_STARTUP_PACKET_LENGTH)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def pump(src, dst, out):
    """Copy src -> dst until EOF, appending every byte to the file `out`."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if out is not None:
                out.write(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client, name, args):
    fe = be = None
    upstream = None
    try:
        if name != "-":
            fe = open(os.path.join(args.out_dir, name + ".fe.bin"), "wb")
            be = open(os.path.join(args.out_dir, name + ".be.bin"), "wb")
        # Untyped startup phase: answer encryption requests locally until the
        # real StartupMessage (or CancelRequest) shows up.
        while True:
            head = recv_exact(client, 4)
            (length,) = struct.unpack("!I", head)
            if length < 8 or length > MAX_STARTUP_LEN:
                raise ValueError("bad startup packet length %d" % length)
            packet = head + recv_exact(client, length - 4)
            if fe is not None:
                fe.write(packet)
            (code,) = struct.unpack("!I", packet[4:8])
            if length == 8 and code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
                if be is not None:
                    be.write(b"N")
                client.sendall(b"N")
                continue
            break
        upstream = socket.create_connection(args.upstream)
        upstream.sendall(packet)
        t = threading.Thread(target=pump, args=(upstream, client, be), daemon=True)
        t.start()
        pump(client, upstream, fe)
        t.join()
    except (OSError, EOFError, ValueError) as e:
        sys.stderr.write("capture.py: connection %s: %s\n" % (name, e))
    finally:
        for f in (fe, be):
            if f is not None:
                f.close()
        for s in (client, upstream):
            if s is not None:
                s.close()


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return (host or "127.0.0.1", int(port))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, type=parse_hostport)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--name", action="append", required=True)
    args = ap.parse_args()

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.listen_port))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print(port, flush=True)

    workers = []

    def serve():
        for name in args.name:
            client, _ = lsock.accept()
            t = threading.Thread(target=handle, args=(client, name, args), daemon=True)
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    deadline = time.monotonic() + args.timeout
    acceptor.join(args.timeout)
    for t in list(workers):
        t.join(max(0.0, deadline - time.monotonic()))
    lsock.close()
    if acceptor.is_alive() or any(t.is_alive() for t in workers):
        sys.stderr.write("capture.py: timed out after %.0fs (%d of %d connections seen)\n"
                         % (args.timeout, len(workers), len(args.name)))
        sys.exit(2)


if __name__ == "__main__":
    main()
