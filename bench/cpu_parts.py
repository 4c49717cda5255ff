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
      server's backends, nginx's workers), with the children reaped
      meanwhile (the cutime and cstime of /proc/PID/stat: a backend or an
      autovacuum worker that ended in between, less what it had used before
      the first snapshot). A thread is known by its
      id and start time, so an id used again is a new thread, counted
      whole, as is any that started in between. A gatehouse thread that
      ended in between is not counted.
"""
import json
import os
import sys

PARTS = {"gatehouse": "worker", "gh-audit": "audit", "gh-audit-commit": "audit",
         "gh-sqlite-ckpt": "store"}


TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def stat_fields(path):
    """The fields of a /proc stat file after the command's ")"; field N of
    proc(5) is at index N - 3."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def snap():
    """{"tid/start": [pid, ppid, comm, ns on a CPU, ns of reaped children]}"""
    threads = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = stat_fields(f"/proc/{pid}/stat")
            ppid, reaped = int(st[1]), (int(st[13]) + int(st[14])) * TICK_NS
            tids = os.listdir(f"/proc/{pid}/task")
        except (OSError, ValueError, IndexError):
            continue
        for tid in tids:
            try:
                start = stat_fields(f"/proc/{pid}/task/{tid}/stat")[19]
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            threads[f"{tid}/{start}"] = [int(pid), ppid, comm, ns, reaped if tid == pid else 0]
    return threads


def descendants(threads, root):
    parent = {t[0]: t[1] for t in threads.values()}
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
    for key, (pid, _, comm, ns, reaped) in after.items():
        prev = before.get(key)
        used[key] = ns + reaped - (prev[3] + prev[4] if prev else 0)
    parts = {"worker": 0, "audit": 0, "store": 0, "other": 0}
    for key, (pid, _, comm, _, _) in after.items():
        if pid == gh_pid:
            parts[PARTS.get(comm, "other")] += used[key]
    for name, root in named:
        procs = descendants(after, root)
        parts[name] = sum(used[key] for key, t in after.items() if t[0] in procs)
        # A child reaped in between is in its parent's reaped time with its
        # whole life: what it had used before the window comes off.
        gone = descendants(before, root)
        parts[name] -= sum(t[3] for key, t in before.items() if t[0] in gone and key not in after)
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
