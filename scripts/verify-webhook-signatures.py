#!/usr/bin/env python3
"""Checks fjord webhook signatures independently of fjord's Rust code (docs/contract.md §5).

Usage: verify-webhook-signatures.py SECRET FILE.jsonl

Each line of FILE has `timestamp`, `signature`, `delivery` and `body` as a receiver saw them.
The signature must be `sha256=` + hex HMAC-SHA256 of "<timestamp>.<body>" keyed with SECRET,
and `delivery` must equal the body's `id`. Prints the number of deliveries checked; exits 1
on the first mismatch.
"""
import hashlib
import hmac
import json
import sys


def main() -> int:
    secret, path = sys.argv[1].encode(), sys.argv[2]
    checked = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            d = json.loads(line)
            signed = f"{d['timestamp']}.{d['body']}".encode()
            want = "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, d["signature"] or ""):
                print(f"line {n}: bad signature {d['signature']!r}, want {want!r}")
                return 1
            if json.loads(d["body"])["id"] != d["delivery"]:
                print(f"line {n}: X-Fjord-Delivery {d['delivery']!r} is not the body's id")
                return 1
            checked += 1
    print(f"{checked} signatures verified")
    return 0 if checked else 1


if __name__ == "__main__":
    sys.exit(main())
