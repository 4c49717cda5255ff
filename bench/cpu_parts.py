#!/usr/bin/env python3
"""Where the CPU of a benchmark's measurement went, by part, per request
(bench/pg_proxy.sh). Reads /proc: each thread's time on a CPU is the first
field of /proc/PID/task/TID/schedstat, in nanoseconds.

  cpu_parts.py snap OUT
      writes every thread's CPU time so far to OUT (JSON)
  cpu_parts.py diff BEFORE AFTER REQUESTS GATEHOUSE_PID [NAME=PID ...]
      prints "part=µs ..." per request between the two snapshots: the
      gatehouse's threads by part (worker: its event loops and main
      thread, named "gatehouse"; audit: gh-audit and gh-audit-commit;
      store: gh-sqlite-ckpt, SQLite's checkpointer; other: the rest), then
      each NAME: the process PID and all its descendants (a PostgreSQL
      server's backends, nginx's workers). A thread that ended between the
      snapshots is not counted (nor is one of NAME's processes that did);
      a process that started in between is counted whole.
"""
import json
import os
import sys

PARTS = {"gatehouse": "worker", "gh-audit": "audit", "gh-audit-commit": "audit",
         "gh-sqlite-ckpt": "store"}


def snap():
    threads = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            tids = os.listdir(f"/proc/{pid}/task")
        except (OSError, ValueError, IndexError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            threads[tid] = [int(pid), ppid, comm, ns]
    return threads


def descendants(threads, root):
    parent = {pid: ppid for pid, ppid, _, _ in threads.values()}
    out = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def diff(before, after, requests, gh_pid, named):
    used = {}
    for tid, (pid, _, comm, ns) in after.items():
        prev = before.get(tid)
        used[tid] = ns - prev[3] if prev and prev[0] == pid else ns
    parts = {"worker": 0, "audit": 0, "store": 0, "other": 0}
    for tid, (pid, _, comm, _) in after.items():
        if pid == gh_pid:
            parts[PARTS.get(comm, "other")] += used[tid]
    for name, root in named:
        procs = descendants(after, root)
        parts[name] = sum(used[tid] for tid, (pid, _, _, _) in after.items() if pid in procs)
    return " ".join(f"{k}={v / requests / 1000:.2f}" for k, v in parts.items())


def main(argv):
    if len(argv) == 3 and argv[1] == "snap":
        with open(argv[2], "w") as f:
            json.dump(snap(), f)
        return 0
    if len(argv) >= 6 and argv[1] == "diff":
        with open(argv[2]) as f:
            before = json.load(f)
        with open(argv[3]) as f:
            after = json.load(f)
        requests = int(argv[4])
        if requests <= 0:
            print("no requests", file=sys.stderr)
            return 1
        named = []
        for kv in argv[6:]:
            name, _, pid = kv.partition("=")
            named.append((name, int(pid)))
        print(diff(before, after, requests, int(argv[5]), named))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
