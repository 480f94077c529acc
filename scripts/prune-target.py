#!/usr/bin/env python3
"""Deletes superseded executables from Cargo's target dir (its `*/deps` folders): of the test and
bench binaries that share a name, all but the two newest (a binary target and its own test
harness share a name, and so do the release and bench builds of `fjord`). Each rebuild of a test binary whose
dependencies changed leaves the previous one behind (hundreds of MB each, 40 GB after a few days
of work here), and the cache of CI would grow without end. Libraries and build scripts are kept,
so nothing is rebuilt that would not be rebuilt anyway.

Usage: prune-target.py [TARGET_DIR]   (default: $CARGO_TARGET_DIR, else ./target)
"""
import collections
import os
import sys

target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target")
freed = 0
for profile in ("debug", "release"):
    deps = os.path.join(target, profile, "deps")
    if not os.path.isdir(deps):
        continue
    groups = collections.defaultdict(list)
    for f in os.listdir(deps):
        path = os.path.join(deps, f)
        # executables are named <name>-<hash>, without an extension
        if "." in f or "-" not in f or not os.path.isfile(path) or not os.access(path, os.X_OK):
            continue
        st = os.stat(path)
        groups[f.rsplit("-", 1)[0]].append((st.st_mtime, path, st.st_size))
    for versions in groups.values():
        versions.sort(reverse=True)
        for _, path, size in versions[2:]:
            os.remove(path)
            freed += size
print(f"prune-target: freed {freed / 1e9:.1f} GB of superseded executables in {target}")
