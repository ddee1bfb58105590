#!/usr/bin/env python3
"""For ../shared/bench: which B-trees SQLite's commits write, from a running server's log.

    benches/wal-frames.py DIR [MESSAGES]

DIR holds a live parley.db and parley.db-wal (a run.sh or ab.sh run: /tmp/parley-bench.*).
The log is read first, then both files are copied and the copy opened, so nothing is
written to the live database. Each valid frame of the log (its salt matches the
log's header) is one page written by a commit since the last checkpoint restarted the
log; the copy's `dbstat` table names the B-tree (table or index) that owns each page
now. Prints, per B-tree, the frames written, per commit and in all, how many distinct
pages they were, and how many were interior pages; with MESSAGES (messages stored
while the log filled), frames per message too.

Run 36 used it to find that each index keyed by (tenant_id, ...) writes 50-90 pages a
storing commit with 20 tenants: every tenant's insertion point in the middle of the
index overflows its leaf and SQLite rebalances it with its siblings (benches/HISTORY.md, run 36).
"""

import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def frames(wal: bytes):
    """(page number, is the last frame of a commit) for each valid frame."""
    if len(wal) < 32:
        return
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    size = 24 + page_size
    for off in range(32, len(wal) - size + 1, size):
        page, commit_size = struct.unpack(">II", wal[off : off + 8])
        if wal[off + 8 : off + 16] != salt:
            return
        yield page, commit_size != 0


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    src = sys.argv[1]
    messages = int(sys.argv[2]) if len(sys.argv) == 3 else None
    db, log = os.path.join(src, "parley.db"), os.path.join(src, "parley.db-wal")
    if not (os.path.exists(db) and os.path.exists(log)):
        print(f"{src} holds no parley.db with a parley.db-wal", file=sys.stderr)
        return 2
    with open(log, "rb") as f:
        wal = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(db, os.path.join(tmp, "parley.db"))
        with open(os.path.join(tmp, "parley.db-wal"), "wb") as f:
            f.write(wal)
        con = sqlite3.connect(os.path.join(tmp, "parley.db"))
        try:
            owner = {
                page: (name, kind)
                for name, page, kind in con.execute("SELECT name, pageno, pagetype FROM dbstat")
            }
        except sqlite3.OperationalError as e:
            print(f"this Python's SQLite has no dbstat table ({e})", file=sys.stderr)
            return 2
        finally:
            con.close()
    written = collections.Counter()
    interior = collections.Counter()
    distinct = collections.defaultdict(set)
    commits = total = 0
    for page, last in frames(wal):
        name, kind = owner.get(page, ("(free or new)", None))
        written[name] += 1
        interior[name] += kind == "internal"
        distinct[name].add(page)
        total += 1
        commits += last
    per_message = f", {total / messages:.2f} a message" if messages else ""
    print(f"{total} frames in {commits} commits ({total / max(commits, 1):.0f} a commit{per_message})")
    print(f"{'frames':>8} {'a commit':>9} {'pages':>7} {'interior':>9}  b-tree")
    for name, n in written.most_common():
        print(f"{n:8d} {n / max(commits, 1):9.1f} {len(distinct[name]):7d} {interior[name]:9d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
