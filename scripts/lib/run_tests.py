#!/usr/bin/env python3
"""Runs the workspace's compiled test binaries in two lanes at once.

cargo test runs one test binary after another; most of the suite's running
time is a few binaries that mostly wait (processes killed and restarted,
partitions healed, a browser). Here the slow binaries (SLOW) run one after
another in one lane while every other binary runs in the other, each binary
exactly as cargo would run it (from its package's directory, with its
arguments). Every binary's output is printed whole when it ends; the exit
status is 1 if any binary failed.

Usage: run_tests.py ARTIFACTS.json [ARGS FOR EVERY TEST BINARY...]
where ARTIFACTS.json is `cargo test --no-run --message-format=json`'s output.
"""

import json
import os
import subprocess
import sys
import threading
import time

# The binaries that take the longest (see BENCHMARKS.md, "The suite"), slowest first.
SLOW = ["chaos", "partitions", "browser", "durability"]


def binaries(artifacts_path):
    found = []
    with open(artifacts_path) as artifacts:
        for line in artifacts:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("reason") != "compiler-artifact":
                continue
            if not message.get("profile", {}).get("test") or not message.get("executable"):
                continue
            target = message["target"]
            name = target["name"] if target["kind"] != ["lib"] else target["name"] + " (unit)"
            directory = os.path.dirname(message["manifest_path"])
            found.append((name, directory, message["executable"]))
    return found


def main():
    artifacts, extra = sys.argv[1], sys.argv[2:]
    every = binaries(artifacts)
    slow = sorted(
        (b for b in every if b[0] in SLOW), key=lambda b: SLOW.index(b[0])
    )
    rest = [b for b in every if b[0] not in SLOW]
    print_lock = threading.Lock()
    failed = []

    def run(binary):
        name, directory, executable = binary
        started = time.monotonic()
        result = subprocess.run(
            [executable] + extra,
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        took = time.monotonic() - started
        with print_lock:
            status = "ok" if result.returncode == 0 else "FAILED"
            print(f"---- {name} ({os.path.basename(executable)}): {status} in {took:.1f}s")
            sys.stdout.write(result.stdout.decode("utf-8", "replace"))
            sys.stdout.flush()
            if result.returncode != 0:
                failed.append(name)

    def lane(batch):
        for binary in batch:
            run(binary)

    lanes = [threading.Thread(target=lane, args=(batch,)) for batch in (slow, rest)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    print(f"== {len(every)} test binaries, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
