#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz_masker target (tests/fuzz/fuzz_masker.cc documents the
layout) into tests/fuzz/corpus/masker/. Run from anywhere: python3 make_fuzz_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "masker")
OIDS = [25, 1043, 1042, 19, 18, 114, 142, 705, 3802, 23, 20, 17, 16, 701]
RULES = {None: 0, "redact": 1, "partial": 2, "hash": 3, "null": 4}


def plan(mode, columns):
    out = bytes([mode, len(columns)])
    for oid, binary, rule, keep in columns:
        out += bytes([OIDS.index(oid), (1 if binary else 0) | RULES[rule] << 1 | keep << 4])
    return out


def built(values):  # mode 1 payload: a length byte (0xff NULL) and the bytes per column
    out = b""
    for v in values:
        out += b"\xff" if v is None else bytes([len(v)]) + v
    return out


def body(values):  # a real DataRow body
    out = struct.pack(">H", len(values))
    for v in values:
        out += struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v
    return out


JWT = (b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       b"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = (b"-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p\n"
       b"-----END RSA PRIVATE KEY-----")
MIXED = [
    (25, False, None, 0), (1043, True, "redact", 0), (23, True, "partial", 4),
    (3802, True, None, 0), (114, False, None, 0), (25, False, "hash", 0),
]
SEEDS = {
    "built_detectors.bin": plan(5, MIXED) + built([
        b"mail alice@example.com card 4111 1111 1111 1111", b"secret", b"\x00\x00\x00\x2a",
        b"\x01{\"email\": \"bob@example.com\", \"n\": 4111111111111111}",
        b"{\"ssn\": \"123-45-6789\"}", None]),
    "built_rules_only.bin": plan(1, MIXED) + built([b"x", b"y", b"\x00\x00\x00\x01", b"\x01{}",
                                                     b"[]", b"z"]),
    "raw_body.bin": plan(4, [(25, False, None, 0), (25, False, "partial", 2), (17, True, None, 0)])
    + body([b"+44 20 7946 0958 and DE89 3704 0044 0532 0130 00", None, b"AKIAIOSFODNN7EXAMPLE"]),
    "raw_mismatch.bin": plan(12, [(25, False, None, 0)]) + body([b"a"]),
    "secrets.bin": plan(5, [(25, False, None, 0), (25, False, None, 0), (705, True, None, 0)])
    + built([JWT, b"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
             b"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 EMP-123456 x\x00z"]),
    "pem.bin": plan(7, []) + PEM + b"\nand xoxb-123456789012-1234567890123-AbCdEf",
    "copy_row.bin": plan(6, [(23, False, None, 0), (25, False, "partial", 4), (25, False, None, 0)])
    + b"1\talice@example.com\t\\N\tline1\\nline2 4111111111111111 \\101\\x42\\\\\tglpat-"
      b"xxxxxxxxxxxxxxxxxxxx\n",
    "copy_end.bin": plan(6, []) + b"\\.\n",
    "free_text.bin": plan(7, []) + b"Key (email)=(alice@example.com) already exists.",
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote", len(SEEDS), "seeds to", os.path.normpath(OUT))
