#!/usr/bin/env python3
"""Verifies each DKIM-Signature of a message with dkimpy, an implementation
independent of herald's. Usage: dkim_verify.py MESSAGE_FILE NAME=TXT...
(the DNS records, e.g. s1._domainkey.example.com=v=DKIM1; k=ed25519; p=...).
Prints one line per signature: index, a= tag, d= tag, "pass" or "fail"."""
import re
import sys

import dkim

message = open(sys.argv[1], "rb").read()
records = dict(arg.split("=", 1) for arg in sys.argv[2:])


def dns(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.rstrip("."), "").encode()


count = len(re.findall(rb"(?im)^dkim-signature:", message))
if count == 0:
    print("no DKIM-Signature")
for i in range(count):
    d = dkim.DKIM(message)
    try:
        ok = d.verify(idx=i, dnsfunc=dns)
    except dkim.DKIMException as e:
        ok = False
        print(f"# {i}: {e}", file=sys.stderr)
    fields = d.signature_fields or {}
    algorithm = fields.get(b"a", b"?").decode()
    domain = fields.get(b"d", b"?").decode()
    print(f"{i} {algorithm} {domain} {'pass' if ok else 'fail'}")
