#!/usr/bin/env python3
"""Latency of `claude-sessions hook pre-tool-use`, process start included.

    cargo build --release && bench/hook.py            # 300 runs per input
    HOOK_RUNS=1000 CS_BIN=target/release/claude-sessions bench/hook.py

Claude Code starts the hook as a new process for every tool call, so the figure
that matters is the whole process: exec, loading the rules, parsing the command,
answering. Each input is run HOOK_RUNS times (interleaved, so that noise on this
shared machine hits them alike), with `/bin/true` (a process that does nothing)
as the baseline measured in the same loop. Prints p50/p95/p99/max per input.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CS_BIN", os.path.join(ROOT, "target", "release", "claude-sessions"))
RUNS = int(os.environ.get("HOOK_RUNS", "300"))


def call(cmd):
    return json.dumps({
        "session_id": "bench", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
        "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": cmd},
    }).encode()


INPUTS = {
    "ls -la (allow)": call("ls -la"),
    "rm -rf / (deny)": call("rm -rf /"),
    "nested bash -c (deny)": call("echo hi; bash -c \"sudo env timeout 5 sh -c 'r\\'\\'m -rf -- //'\" | cat"),
    "cargo build (no answer)": call("cd src && cargo build --release 2>&1 | tail -20"),
    "4 KiB script (ask)": call("\n".join(f"echo step {i} && make target{i} > log{i}.txt" for i in range(100)) + "\nsudo make install"),
}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"no binary at {BIN}: cargo build --release")
    times = {name: [] for name in ["/bin/true (baseline)", *INPUTS]}
    for _ in range(RUNS):
        for name in times:
            if name.startswith("/bin/true"):
                argv, stdin = ["/bin/true"], b""
            else:
                argv, stdin = [BIN, "hook", "pre-tool-use"], INPUTS[name]
            t = time.perf_counter()
            r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            times[name].append((time.perf_counter() - t) * 1000)
            if r.returncode != 0:
                sys.exit(f"{name}: exit {r.returncode}: {r.stderr.decode()}")
    print(f"hook latency, {RUNS} runs each, ms (process start included)")
    print(f"{'input':28} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}")
    for name, xs in times.items():
        print(f"{name:28} {statistics.median(xs):7.2f} {pct(xs, 95):7.2f} {pct(xs, 99):7.2f} {max(xs):7.2f}")


if __name__ == "__main__":
    main()
