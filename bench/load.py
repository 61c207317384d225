#!/usr/bin/env python3
"""Load test of `claude-sessions serve`: idle cost, append -> visible under many
writers, and /metrics latency at many series. Loopback only, bounded in time.

Three phases, each with its own `serve` (free 127.0.0.1 port, fresh --state-dir):

  idle     ${LOAD_IDLE_FILES:-20000} small transcripts (copies of a real fixture with
           fresh ids, 100 per project folder, built once into bench/out/), serve
           ready, settled, then CPU time (utime+stime from /proc) over
           ${LOAD_IDLE_SECONDS:-30} s as a percentage of one core; RSS; the threads
           that used the CPU.
  writers  ${LOAD_WRITERS:-200} sessions in their own projects, each appending a
           real assistant line (fresh ids, known usage) every
           ${LOAD_INTERVAL_MS:-250} ms (jittered) for ${LOAD_WRITE_SECONDS:-20} s,
           all at once. One reader scrapes /metrics back to back; an append is
           visible at the end of the first scrape whose tokens for its project
           include it. Prints p50/p90/p99/max of append -> visible.
  metrics  projects (copies of a real session, each with its own working
           directory) are added until /metrics holds ${LOAD_SERIES:-10000} series;
           then ${LOAD_SCRAPES:-500} scrapes one after another, and the same number
           from 4 clients at once: p50/p99/max per scrape, and the body size.

  python3 bench/load.py                    # all phases
  python3 bench/load.py --only writers     # one phase
  python3 bench/load.py --json out.json    # also write the figures as JSON

Environment: CS_BIN (default target/release/claude-sessions), FIXTURES, and the
LOAD_* settings above. Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import latency  # noqa: E402  (shared helpers: template line, ids, HTTP client, percentiles)

BIN = Path(os.environ.get("CS_BIN", ROOT / "target" / "release" / "claude-sessions"))
SRC = Path(os.environ["FIXTURES"]) if os.environ.get("FIXTURES") else latency.fixtures_dir()
OUT = HERE / "out"
TOKENS_RE = re.compile(r'^claude_sessions_tokens_total\{([^}]*)\}\s+(\S+)', re.M)
PROJECT_RE = re.compile(r'project="([^"]*)"')
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Serve:
    """`serve` on a free loopback port with `config` as CLAUDE_CONFIG_DIR; stopped on exit."""

    def __init__(self, config: Path, extra: list[str] | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="cs-load."))
        self.port = latency.free_port()
        self.log = open(self.tmp / "serve.log", "wb")
        cmd = [str(BIN), "serve", "--web.listen-address", f"127.0.0.1:{self.port}",
               "--state-dir", str(self.tmp / "state")] + (extra or [])
        env = dict(os.environ, CLAUDE_CONFIG_DIR=str(config), RUST_LOG="warn")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = latency.Client(self.port)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited with {self.proc.returncode}:\n"
                                 + (self.tmp / "serve.log").read_text(errors="replace")[-2000:])
            try:
                if self.client.get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 300:
                raise SystemExit("serve not ready after 300 s")
            time.sleep(0.05)
        self.ready_s = time.monotonic() - t0

    def ticks(self) -> int:
        f = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    def thread_ticks(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                name = (t / "comm").read_text().strip()
                f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[name] = out.get(name, 0) + int(f[11]) + int(f[12])
        return out

    def rss_mib(self) -> float:
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- idle
def idle(res: dict) -> None:
    files, per = env_int("LOAD_IDLE_FILES", 20000), 100
    seconds = env_int("LOAD_IDLE_SECONDS", 30)
    template = "spotter/transcripts/short.jsonl"
    corpus = OUT / f"idle-{files}"
    manifest = corpus / "corpus.json"
    try:
        m = json.loads(manifest.read_text())
        ok = m["copies"] == files and m["copies_per_project"] == per and m["include"] == [template]
    except (OSError, ValueError, KeyError):
        ok = False
    if not ok:
        print(f"building {files} files ({per} per project folder) in {corpus} ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), "--src", str(SRC), "--out", str(corpus),
                        "--copies", str(files), "--copies-per-project", str(per), "--include", template,
                        "--force", "--quiet"], check=True)
    # The same files with their dates moved into the last 30 days, so every session
    # is within the retention and kept live (the fixture's own dates are older).
    recent = OUT / f"idle-{files}-recent"
    if not (recent / "done").exists() or (recent / "done").read_text() != manifest.read_text():
        print(f"dating the copies within the last 30 days in {recent} ...", flush=True)
        shutil.rmtree(recent, ignore_errors=True)
        date_re = re.compile(r'"timestamp":"\d{4}-\d\d-\d\d')
        today = time.time()
        for k, f in enumerate(sorted((corpus / "projects").rglob("*.jsonl"))):
            day = time.strftime("%Y-%m-%d", time.gmtime(today - 86400 * (1 + k % 30)))
            dst = recent / f.relative_to(corpus)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(date_re.sub(f'"timestamp":"{day}', f.read_text(encoding="utf-8")), encoding="utf-8")
        (recent / "done").write_text(manifest.read_text())
    n = sum(1 for _ in (corpus / "projects").rglob("*.jsonl"))
    for name, root in (("idle", corpus), ("idle_recent", recent)):
        measure_idle(res, name, root, n, seconds)


def measure_idle(res: dict, name: str, root: Path, n: int, seconds: int) -> None:
    s = Serve(root)
    try:
        time.sleep(5)  # settle: the first checkpoint, the first process check
        t0, c0, th0 = time.monotonic(), s.ticks(), s.thread_ticks()
        time.sleep(seconds)
        t1, c1, th1 = time.monotonic(), s.ticks(), s.thread_ticks()
        cpu = (c1 - c0) / CLK_TCK / (t1 - t0) * 100
        busy = sorted(((th1[k] - th0.get(k, 0)) / CLK_TCK, k) for k in th1 if th1[k] > th0.get(k, 0))[::-1]
        res[name] = {"files": n, "seconds": round(t1 - t0, 1), "cpu_pct_of_core": round(cpu, 3),
                       "rss_mib": round(s.rss_mib(), 1), "ready_s": round(s.ready_s, 2),
                       "busy_threads_cpu_s": {k: v for v, k in busy[:5]}}
        what = "sessions within the retention" if name == "idle_recent" else "sessions older than the retention"
        print(f"{name}: {n} files ({what}), ready in {s.ready_s:.1f} s; over {t1 - t0:.0f} s: {cpu:.3f} % of a core, "
              f"RSS {s.rss_mib():.1f} MiB; busiest threads: "
              + (", ".join(f"{k} {v:.2f} s" for v, k in busy[:3]) or "none"), flush=True)
    finally:
        s.stop()


# ---------------------------------------------------------------- writers
def writers(res: dict) -> None:
    count = env_int("LOAD_WRITERS", 200)
    seconds = env_int("LOAD_WRITE_SECONDS", 20)
    interval = env_int("LOAD_INTERVAL_MS", 250) / 1000
    tmpl = latency.find_template(SRC)
    usage = tmpl["message"]["usage"]
    per_line = sum(int(usage.get(f, 0) or 0) for f in latency.FIELDS)
    tmp = Path(tempfile.mkdtemp(prefix="cs-load-writers."))
    paths, sessions = [], []
    for w in range(count):
        cwd = f"/home/bench/load/w{w}"
        d = tmp / "projects" / cwd.replace("/", "-")
        d.mkdir(parents=True)
        sid = str(uuid.uuid4())
        p = d / f"{sid}.jsonl"
        p.write_text(json.dumps({
            "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": cwd, "sessionId": sid,
            "version": tmpl.get("version", "2.0.37"), "type": "user", "uuid": str(uuid.uuid4()),
            "timestamp": latency.now_iso(), "message": {"role": "user", "content": "load test"},
        }, separators=(",", ":")) + "\n")
        paths.append(p)
        sessions.append(sid)
    s = Serve(tmp)
    appends: list[list[tuple[float, float]]] = [[] for _ in range(count)]  # (time, expected tokens)
    lock = threading.Lock()
    stop = threading.Event()
    seen: dict[str, float] = {}
    visible: list[list[float | None]] = [[] for _ in range(count)]

    def line(w: int) -> bytes:
        o = json.loads(json.dumps(tmpl))
        o.update(sessionId=sessions[w], uuid=str(uuid.uuid4()), timestamp=latency.now_iso(),
                 requestId=latency.rid("req_011C", 20), isSidechain=False, cwd=f"/home/bench/load/w{w}")
        o.pop("agentId", None)
        o["message"]["id"] = latency.rid("msg_01", 22)
        return (json.dumps(o, separators=(",", ":")) + "\n").encode()

    def writer(w: int) -> None:
        fd = os.open(paths[w], os.O_WRONLY | os.O_APPEND)
        rng = random.Random(w)
        time.sleep(rng.uniform(0, interval))
        total = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            data = line(w)
            total += per_line
            with lock:
                appends[w].append((time.perf_counter(), total))
            os.write(fd, data)
            time.sleep(interval * rng.uniform(0.5, 1.5))
        os.close(fd)

    def reader() -> None:
        cl = latency.Client(s.port)
        while not stop.is_set():
            st, body = cl.get("/metrics")
            t = time.perf_counter()
            if st != 200:
                continue
            by_project: dict[str, float] = {}
            for m in TOKENS_RE.finditer(body.decode("utf-8", "replace")):
                pm = PROJECT_RE.search(m.group(1))
                if pm:
                    by_project[pm.group(1)] = by_project.get(pm.group(1), 0.0) + float(m.group(2))
            with lock:
                for w in range(count):
                    got = by_project.get(f"w{w}", 0.0)
                    v = visible[w]
                    while len(v) < len(appends[w]) and got >= appends[w][len(v)][1]:
                        v.append(t)
            seen["scrapes"] = seen.get("scrapes", 0) + 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(count)]
    rd = threading.Thread(target=reader)
    try:
        t0, c0 = time.monotonic(), s.ticks()
        rd.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Give the last appends time to show.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                if all(len(visible[w]) == len(appends[w]) for w in range(count)):
                    break
            time.sleep(0.05)
        stop.set()
        rd.join()
        cpu = (s.ticks() - c0) / CLK_TCK / (time.monotonic() - t0) * 100
    finally:
        stop.set()
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lat = [(visible[w][k] - appends[w][k][0]) * 1000 for w in range(count) for k in range(len(visible[w]))]
    missing = sum(len(appends[w]) - len(visible[w]) for w in range(count))
    n = sum(len(a) for a in appends)
    res["writers"] = {"writers": count, "seconds": seconds, "appends": n, "not_visible": missing,
                      "scrapes": seen.get("scrapes", 0), "serve_cpu_pct_of_core": round(cpu, 1),
                      "p50_ms": round(latency.pct(lat, 50), 1), "p90_ms": round(latency.pct(lat, 90), 1),
                      "p99_ms": round(latency.pct(lat, 99), 1), "max_ms": round(max(lat, default=float("nan")), 1)}
    r = res["writers"]
    print(f"writers: {count} sessions appending for {seconds} s, {n} lines ({n / seconds:.0f}/s), "
          f"{r['scrapes']} scrapes; append -> visible in /metrics: p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, "
          f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms; {missing} not visible; serve used {cpu:.0f} % of a core",
          flush=True)


# ---------------------------------------------------------------- metrics
def series_count(body: bytes) -> int:
    return sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#"))


def metrics(res: dict) -> None:
    target = env_int("LOAD_SERIES", 10000)
    scrapes = env_int("LOAD_SCRAPES", 500)
    # One real session with many tools and both chains, copied per project.
    src = max((p for p in SRC.rglob("*.jsonl") if "subagents" not in p.parts), key=lambda p: p.stat().st_size)
    lines = src.read_text(encoding="utf-8").splitlines()
    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    id_re = re.compile(r"\b(msg_|req_|toolu_|srvtoolu_)([A-Za-z0-9]{8,})")
    cwd_re = re.compile(r'"cwd":"[^"]*"')
    tmp = Path(tempfile.mkdtemp(prefix="cs-load-series."))
    (tmp / "projects").mkdir()
    s = Serve(tmp)
    added = 0

    def add(k: int) -> None:
        d = tmp / "projects" / f"-home-bench-series-p{k}"
        d.mkdir()
        ns = uuid.uuid5(uuid.NAMESPACE_OID, f"series-{k}")
        out = []
        for ln in lines:
            ln = uuid_re.sub(lambda m: str(uuid.uuid5(ns, m.group(0))), ln)
            ln = id_re.sub(lambda m: f"{m.group(1)}{m.group(2)}P{k}", ln)
            out.append(cwd_re.sub(f'"cwd":"/home/bench/series/p{k}"', ln))
        (d / f"{uuid.uuid5(ns, 'file')}.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")

    try:
        n = series_count(s.client.get("/metrics")[1])
        step = 10
        while n < target:
            for _ in range(step):
                add(added)
                added += 1
            # Wait until serve has read them (the count stops growing).
            last, stable = -1, 0
            while stable < 3:
                time.sleep(0.2)
                n = series_count(s.client.get("/metrics")[1])
                stable = stable + 1 if n == last else 0
                last = n
            per = max(1.0, n / added)
            step = max(1, min(200, int((target - n) / per) + 1))
        body = s.client.get("/metrics")[1]

        def timed(cl: latency.Client, k: int, out: list[float]) -> None:
            for _ in range(k):
                t = time.perf_counter()
                st, b = cl.get("/metrics")
                out.append((time.perf_counter() - t) * 1000)
                assert st == 200 and len(b) > 0

        seq: list[float] = []
        timed(latency.Client(s.port), scrapes, seq)
        conc: list[list[float]] = [[] for _ in range(4)]
        ts = [threading.Thread(target=timed, args=(latency.Client(s.port), scrapes // 4, conc[i])) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        par = [x for c in conc for x in c]
        res["metrics"] = {"series": n, "projects": added, "body_kib": round(len(body) / 1024, 1),
                          "sequential": {"n": len(seq), "p50_ms": round(latency.pct(seq, 50), 2),
                                         "p99_ms": round(latency.pct(seq, 99), 2), "max_ms": round(max(seq), 2)},
                          "four_clients": {"n": len(par), "p50_ms": round(latency.pct(par, 50), 2),
                                           "p99_ms": round(latency.pct(par, 99), 2), "max_ms": round(max(par), 2)}}
        r = res["metrics"]
        print(f"metrics: {n} series ({added} projects), body {r['body_kib']} KiB; {len(seq)} scrapes one after "
              f"another: p50 {r['sequential']['p50_ms']} ms, p99 {r['sequential']['p99_ms']} ms, max "
              f"{r['sequential']['max_ms']} ms; from 4 clients at once: p50 {r['four_clients']['p50_ms']} ms, "
              f"p99 {r['four_clients']['p99_ms']} ms, max {r['four_clients']['max_ms']} ms", flush=True)
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("idle", "writers", "metrics"), action="append")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not BIN.exists():
        print(f"error: {BIN} not found (cargo build --release)", file=sys.stderr)
        return 2
    res: dict = {"bin": str(BIN), "nproc": os.cpu_count(), "loadavg_before": open("/proc/loadavg").read().split()[:3]}
    for phase in args.only or ["idle", "writers", "metrics"]:
        {"idle": idle, "writers": writers, "metrics": metrics}[phase](res)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
