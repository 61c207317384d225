#!/usr/bin/env python3
"""Append -> visible-in-/metrics latency of `claude-sessions serve`.

Starts `claude-sessions serve` on 127.0.0.1 (free port) with a temporary
CLAUDE_CONFIG_DIR, waits for /readyz == 200, then appends N complete assistant
lines (a real assistant line from the fixtures with fresh message.id,
requestId and uuid, i.e. N new API responses with known usage) one at a time,
~20 ms apart, to a transcript file. After each append it polls /metrics in a
tight loop (1 ms sleep) until the sum over all series of
`claude_sessions_tokens_total` reaches the expected value and records the
append -> visible latency. Prints p50/p90/p99/max in ms.

Modes:
  --mode existing  (default) the transcript file exists (one user line) before
                   serve starts, lines are appended to it
  --mode new       the project folder and file are created after /readyz
                   (first sample includes new-file discovery)

Python 3.11 stdlib only; network limited to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
METRIC = "claude_sessions_tokens_total"
METRIC_RE = re.compile(r"^" + METRIC + r"(?:\{.*\})?\s+(\S+)")
FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

FALLBACK_TEMPLATE = {
    "parentUuid": None, "isSidechain": False, "userType": "external",
    "cwd": "/home/bench/latency", "sessionId": "", "version": "2.0.37", "gitBranch": "main",
    "message": {"model": "claude-sonnet-4-5-20250929", "id": "", "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 9, "cache_creation_input_tokens": 281, "cache_read_input_tokens": 29336,
                          "cache_creation": {"ephemeral_5m_input_tokens": 281, "ephemeral_1h_input_tokens": 0},
                          "output_tokens": 367, "service_tier": "standard"}},
    "requestId": "", "type": "assistant", "uuid": "", "timestamp": "",
}


def fixtures_dir() -> Path:
    p = ROOT / "tests" / "fixtures" / "real"
    return p if p.is_dir() else (ROOT / ".." / "shared" / "fixtures" / "real").resolve()


def find_template(src: Path) -> dict:
    """First real 2.x assistant line with final usage (stop_reason set), non-synthetic."""
    for p in sorted(src.rglob("*.jsonl")):
        with open(p, encoding="utf-8") as f:
            for line in f:
                if '"assistant"' not in line or '"usage"' not in line:
                    continue
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                m = o.get("message") or {}
                if (o.get("type") == "assistant" and isinstance(m.get("usage"), dict)
                        and m.get("stop_reason") and m.get("model", "").startswith("claude-")
                        and str(o.get("version", "")).startswith("2.") and not o.get("isSidechain")
                        and len(line) < 4000):
                    return o
    return FALLBACK_TEMPLATE


def rid(prefix: str, n: int) -> str:
    return prefix + "".join(random.choice(B62) for _ in range(n))


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, body
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError

    def tokens(self) -> float | None:
        st, body = self.get("/metrics")
        if st != 200:
            return None
        total, seen = 0.0, False
        for line in body.decode("utf-8", "replace").splitlines():
            m = METRIC_RE.match(line)
            if m:
                total += float(m.group(1))
                seen = True
        return total if seen else 0.0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="append -> /metrics latency of claude-sessions serve")
    ap.add_argument("-n", type=int, default=int(os.environ.get("LATENCY_N", 200)), help="lines to append (default 200)")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="pause between appends (default 20)")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="sleep between /metrics polls (default 1)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-line visibility timeout, s (default 10)")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--mode", choices=("existing", "new"), default="existing")
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "claude-sessions")
    ap.add_argument("--src", type=Path, default=None, help="fixture root for the template line")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--json", type=Path, help="write results as JSON to this file")
    args = ap.parse_args(argv)

    if not args.bin.exists():
        print(f"error: {args.bin} not found (cargo build --release)", file=sys.stderr)
        return 2
    tmpl = find_template(args.src or fixtures_dir())
    usage = tmpl["message"]["usage"]
    per_line = sum(int(usage.get(f, 0) or 0) for f in FIELDS)

    tmp = Path(tempfile.mkdtemp(prefix="cs-latency."))
    cfg, state = tmp / "config", tmp / "state"
    proj = cfg / "projects" / "-home-bench-latency"
    (cfg / "projects").mkdir(parents=True)
    state.mkdir()
    session = str(uuid.uuid4())
    path = proj / f"{session}.jsonl"
    first_uuid = str(uuid.uuid4())
    user_line = json.dumps({
        "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": tmpl.get("cwd", "/home/bench/latency"),
        "sessionId": session, "version": tmpl.get("version", "2.0.37"), "type": "user",
        "message": {"role": "user", "content": "latency benchmark"}, "uuid": first_uuid, "timestamp": now_iso(),
    }, separators=(",", ":")) + "\n"
    if args.mode == "existing":
        proj.mkdir()
        path.write_text(user_line)

    port = free_port()
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(cfg))
    log = open(tmp / "serve.log", "wb")
    cmd = [str(args.bin), "serve", "--web.listen-address", f"127.0.0.1:{port}", "--state-dir", str(state)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    cl = Client(port)
    lat: list[float] = []
    timeouts = 0
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}; log: {tmp / 'serve.log'}\n"
                                 + (tmp / "serve.log").read_text(errors="replace")[-2000:])
            try:
                st, _ = cl.get("/readyz")
                if st == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > args.ready_timeout:
                raise SystemExit("timeout waiting for /readyz")
            time.sleep(0.05)
        ready_s = time.monotonic() - t0
        base = cl.tokens()
        if base is None:
            raise SystemExit("/metrics did not return 200")
        if args.mode == "new":
            proj.mkdir()
            path.write_text(user_line)
        print(f"serve ready in {ready_s:.2f}s on 127.0.0.1:{port}; baseline {METRIC} = {base:g}; "
              f"{args.n} lines of {per_line} tokens each ({tmpl['message'].get('model')}) -> {path.name}")

        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        parent = first_uuid
        expected = base
        poll = args.poll_ms / 1000
        last_append = 0.0
        for i in range(args.n):
            o = json.loads(json.dumps(tmpl))
            u = str(uuid.uuid4())
            o.update(parentUuid=parent, sessionId=session, uuid=u, timestamp=now_iso(),
                     requestId=rid("req_011C", 20), isSidechain=False)
            o.pop("agentId", None)
            o["message"]["id"] = rid("msg_01", 22)
            parent = u
            data = (json.dumps(o, separators=(",", ":")) + "\n").encode()
            expected += per_line
            wait = last_append + args.interval_ms / 1000 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            ta = time.perf_counter()
            os.write(fd, data)
            last_append = ta
            while True:
                v = cl.tokens()
                tv = time.perf_counter()
                if v is not None and v >= expected:
                    if v > expected:
                        print(f"  note: line {i}: {METRIC} = {v:g} > expected {expected:g}", file=sys.stderr)
                        expected = v
                    lat.append((tv - ta) * 1000)
                    break
                if tv - ta > args.timeout:
                    timeouts += 1
                    print(f"  line {i}: not visible after {args.timeout}s ({METRIC} = {v}, expected {expected:g})",
                          file=sys.stderr)
                    if v is not None and v > expected - per_line and i == 0:
                        # the exporter counts a different subset of token types: recalibrate
                        per_line = v - (expected - per_line)
                        print(f"  recalibrated per-line tokens to {per_line:g}", file=sys.stderr)
                    expected = v if v is not None else expected
                    break
                time.sleep(poll)
            if timeouts >= 3 and not lat:
                print("giving up: nothing became visible", file=sys.stderr)
                break
        os.close(fd)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    res = {"n": len(lat), "timeouts": timeouts, "mode": args.mode, "interval_ms": args.interval_ms,
           "poll_ms": args.poll_ms}
    if lat:
        res.update({"p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
                    "max_ms": max(lat), "min_ms": min(lat), "mean_ms": statistics.fmean(lat),
                    "first_ms": lat[0]})
        print(f"append -> visible in /metrics over {len(lat)} lines (mode {args.mode}, {timeouts} timeouts): "
              f"p50 {res['p50_ms']:.1f} ms, p90 {res['p90_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, "
              f"max {res['max_ms']:.1f} ms (min {res['min_ms']:.1f}, mean {res['mean_ms']:.1f}, "
              f"first line {lat[0]:.1f})")
    else:
        print(f"no line became visible ({timeouts} timeouts)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0 if lat and not timeouts else 1


if __name__ == "__main__":
    sys.exit(main())
