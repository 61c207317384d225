#!/usr/bin/env python3
"""The report of bench/run.sh: medians, MB/s and peak RSS per tool and corpus, the
goals (scan at least 2.5x the faster ccusage report, at most a quarter of its peak
RSS, within 2x the time of cat), and the token totals cross-checked.

Arguments (from run.sh): RESULTS_TSV BIG_MB SMALL_MB RUN_DIR REF_TOTAL OUT_JSON
TARGET_MB CCUSAGE REPS. RESULTS_TSV rows: label, rep, wall s, peak RSS KiB, rc.
"""
import json
import os
import platform
import statistics
import sys

res_path, mb, small_mb, run_dir, ref_total, out_json, target_mb, ccu, reps = sys.argv[1:10]
mb, small_mb, ref_total = float(mb), float(small_mb), int(ref_total)
rows: dict = {}
for line in open(res_path):
    label, rep, wall, rss, rc = line.rstrip("\n").split("\t")
    rows.setdefault(label, []).append((float(wall), int(rss), int(rc)))


def stat(label):
    runs = rows.get(label)
    if not runs or any(rc != 0 for *_, rc in runs):
        return None
    return {"median_s": statistics.median(w for w, _, _ in runs),
            "runs_s": [round(w, 4) for w, _, _ in runs],
            "peak_rss_mib": max(r for _, r, _ in runs) / 1024}


stats = {label: stat(label) for label in rows}
names = {"cat": "cat (all files)", "scan": "claude-sessions scan", "scan_warm_state": "scan, reused state-dir",
         "ccusage_session": "ccusage session", "ccusage_daily": "ccusage daily"}
goals = {}
for sfx, size in (("", mb), ("_small", small_mb)):
    print(f"\ncorpus {size:.1f} MB (medians of {reps}):")
    print(f"  {'tool':<24} {'median s':>9} {'MB/s':>8} {'peak RSS MiB':>13}")
    for base in ("cat", "scan", "scan_warm_state", "ccusage_session", "ccusage_daily"):
        s = stats.get(base + sfx)
        if s is None:
            if base + sfx in rows:
                print(f"  {names[base]:<24}   FAILED (see stderr above)")
            continue
        print(f"  {names[base]:<24} {s['median_s']:>9.3f} {size / s['median_s']:>8.1f} {s['peak_rss_mib']:>13.1f}")
    scan, cat = stats.get("scan" + sfx), stats.get("cat" + sfx)
    ccus = [c for c in (stats.get(k + sfx) for k in ("ccusage_session", "ccusage_daily")) if c]
    if scan and ccus and cat:
        best = min(ccus, key=lambda c: c["median_s"])
        speed = best["median_s"] / scan["median_s"]
        rss = best["peak_rss_mib"] / scan["peak_rss_mib"]
        of_cat = scan["median_s"] / cat["median_s"]
        goals[f"{size:.0f}MB"] = {
            "speedup_vs_faster_ccusage": round(speed, 2), "ccusage_rss_over_scan_rss": round(rss, 1),
            "scan_time_over_cat": round(of_cat, 2),
            "meets": {"speed_2_5x": speed >= 2.5, "rss_quarter": rss >= 4, "within_2x_cat": of_cat <= 2}}

        def ok(b):
            return "meets" if b else "MISSES"

        print(f"  scan against the faster ccusage report: {speed:.2f}x as fast ({ok(speed >= 2.5)} the 2.5x goal); "
              f"peak RSS 1/{rss:.1f} of ccusage's ({ok(rss >= 4)} the 1/4 goal); "
              f"{of_cat:.2f}x the time of cat ({ok(of_cat <= 2)} the 2x goal)")


def load(label):
    try:
        with open(os.path.join(run_dir, label + ".out")) as f:
            return json.load(f)
    except Exception as e:  # noqa: BLE001 (reported below)
        return e


totals = {"reference (bench/check_corpus.py)": ref_total}
scan = load("scan") if stats.get("scan") else None
if isinstance(scan, dict):
    try:
        totals["claude-sessions scan"] = sum(
            int(m.get(k, 0)) for m in scan["models"].values()
            for k in ("input", "output", "cache_creation", "cache_read"))
    except Exception as e:  # noqa: BLE001
        print(f"scan JSON has unexpected shape: {e!r}")
elif scan is not None:
    print(f"scan output is not JSON: {scan!r}")
ccj = load("ccusage_session") if stats.get("ccusage_session") else None
if isinstance(ccj, dict):
    totals["ccusage"] = sum(
        m["inputTokens"] + m["outputTokens"] + m["cacheCreationTokens"] + m["cacheReadTokens"]
        for s in ccj["session"] for m in s["modelBreakdowns"])
print("\ntotal tokens on the big corpus (input+output+cache_creation+cache_read):")
for k, v in totals.items():
    print(f"  {k:<36} {v:>16,}")
if "claude-sessions scan" in totals and "ccusage" in totals:
    same = totals["claude-sessions scan"] == totals["ccusage"]
    print(f"scan vs ccusage: {'OK' if same else 'MISMATCH'}"
          + ("" if same else f" (diff {totals['claude-sessions scan'] - totals['ccusage']:+,})"))
else:
    print("scan vs ccusage: not compared (one side missing)")
for k in ("claude-sessions scan", "ccusage"):
    if k in totals:
        print(f"{k} vs reference: {'OK' if totals[k] == ref_total else 'MISMATCH'}")

env = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
       "cpu_busy_pct_before": int(os.environ.get("BENCH_BUSY", "-1")),
       "loadavg_after": open("/proc/loadavg").read().split()[:3]}
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            env["cpu"] = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
with open(out_json, "w") as f:
    json.dump({"target_mb": float(target_mb), "corpus_mb": mb, "small_corpus_mb": small_mb, "reps": int(reps),
               "stats": stats, "goals": goals, "totals": totals, "env": env, "ccusage": ccu}, f, indent=1)
print(f"\nenv: {env}\nsaved {out_json}")
