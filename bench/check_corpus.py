#!/usr/bin/env python3
"""Independent check that a corpus made by make_corpus.py scales exactly.

Counting rule (deliberately simple, independent of src/ and of make_corpus):
  * only top-level lines with type == "assistant" whose message.usage is an
    object; model "<synthetic>" excluded;
  * dedup key = (message.id, requestId), or message.id alone when requestId is
    missing; lines without message.id are all counted;
  * per key keep the line with the largest total
    (input + output + cache_creation + cache_read); dedup is global.

Checks (exit 1 on failure):
  1. every non-empty line of every *.jsonl parses as JSON;
  2. total tokens of the whole corpus == K x total of one copy, where one copy
     is the source fixture set (manifest "src"/"include"), and the same for each
     token type, each model, the number of deduped requests and sessions;
  3. per project-folder group (<slug>-c<g>): group totals == copies-in-group x
     one-copy totals of that slug;
  4. no dedup key and no structured id (uuid, sessionId, message.id,
     requestId, tool ids, agentId) is shared by two groups.

Usage: check_corpus.py CORPUS_DIR [--src DIR] [--json]
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
ID_KEYS = ("uuid", "parentUuid", "logicalParentUuid", "leafUuid", "sessionId", "requestId",
           "toolUseID", "parentToolUseID", "sourceToolAssistantUUID", "agentId")
GROUP_RE = re.compile(r"^(.*)-c(\d+)$")
# values that are real identifiers (toolUseID also holds labels such as
# "bash-progress-4" or "SessionStart" that legitimately repeat)
IDLIKE_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?:msg|req|toolu)_[A-Za-z0-9]{16,}")


def num(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


class Counter:
    def __init__(self, track_ids: bool = False):
        self.best: dict[tuple, tuple[int, tuple, str, str]] = {}  # key -> (total, fields, model, group)
        self.nokey: list[tuple[int, tuple, str, str]] = []
        self.sessions: dict[str, set] = defaultdict(set)  # group -> sessionIds
        self.lines = 0
        self.bad_lines: list[str] = []
        self.files = 0
        self.bytes = 0
        self.track_ids = track_ids
        self.id_group: dict[str, str] = {}
        self.shared_ids: list[tuple[str, str, str]] = []
        self.key_groups: dict[tuple, str] = {}
        # reference consistency: ids defined / referenced per group
        self.defs: dict[str, set] = defaultdict(set)
        self.refs: dict[str, list] = defaultdict(list)
        self.shared_keys: list[tuple] = []

    def _note_id(self, v, group, always=False):
        if not isinstance(v, str) or not v:
            return
        if not always and not IDLIKE_RE.search(v):
            return
        g = self.id_group.setdefault(v, group)
        if g != group and len(self.shared_ids) < 20:
            self.shared_ids.append((v, g, group))

    def add_file(self, path: Path, group: str):
        self.files += 1
        with open(path, "rb") as f:
            data = f.read()
        self.bytes += len(data)
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            self.lines += 1
            try:
                o = json.loads(raw)
            except ValueError as e:
                self.bad_lines.append(f"{path}: {e}")
                continue
            if not isinstance(o, dict):
                continue
            sid = o.get("sessionId")
            if isinstance(sid, str):
                self.sessions[group].add(sid)
            self._refs(o, group)
            if self.track_ids:
                for k in ID_KEYS:
                    if k in o:
                        self._note_id(o[k], group, always=(k in ("agentId", "sessionId")))
                msg = o.get("message")
                if isinstance(msg, dict):
                    self._note_id(msg.get("id"), group)
            if o.get("type") != "assistant":
                continue
            msg = o.get("message")
            if not isinstance(msg, dict):
                continue
            usage = msg.get("usage")
            if not isinstance(usage, dict):
                continue
            model = msg.get("model") or "unknown"
            if model == "<synthetic>":
                continue
            vals = tuple(num(usage.get(f)) for f in FIELDS)
            tot = sum(vals)
            mid = msg.get("id")
            rid = o.get("requestId")
            entry = (tot, vals, model, group)
            if not isinstance(mid, str) or not mid:
                self.nokey.append(entry)
                continue
            key = (mid, rid) if isinstance(rid, str) and rid else (mid,)
            if self.track_ids:
                g = self.key_groups.setdefault(key, group)
                if g != group and len(self.shared_keys) < 20:
                    self.shared_keys.append((key, g, group))
            prev = self.best.get(key)
            if prev is None or tot > prev[0]:
                self.best[key] = entry

    def _refs(self, o: dict, group: str):
        d, r = self.defs[group], self.refs[group]
        for k in ("uuid", "agentId"):
            if isinstance(o.get(k), str):
                d.add(o[k])
        for k in ("parentUuid", "logicalParentUuid", "sourceToolAssistantUUID", "parentToolUseID"):
            if isinstance(o.get(k), str):
                r.append(o[k])
        tur = o.get("toolUseResult")
        if isinstance(tur, dict) and isinstance(tur.get("agentId"), str):
            r.append(tur["agentId"])
        msg = o.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), list):
            for b in msg["content"]:
                if not isinstance(b, dict):
                    continue
                if b.get("type") in ("tool_use", "server_tool_use") and isinstance(b.get("id"), str):
                    d.add(b["id"])
                elif isinstance(b.get("tool_use_id"), str):
                    r.append(b["tool_use_id"])

    def resolved_refs(self) -> tuple[int, int]:
        n = res = 0
        for g, refs in self.refs.items():
            defs = self.defs.get(g, set())
            n += len(refs)
            res += sum(1 for x in refs if x in defs)
        return n, res

    def summary(self) -> dict:
        tot = [0, 0, 0, 0]
        models: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for tot_, vals, model, group in list(self.best.values()) + self.nokey:
            for i, v in enumerate(vals):
                tot[i] += v
                models[model][i] += v
            models[model][4] += 1
            groups[group][0] += tot_
            groups[group][1] += 1
        return {
            "files": self.files,
            "bytes": self.bytes,
            "lines": self.lines,
            "bad_lines": len(self.bad_lines),
            "requests": len(self.best) + len(self.nokey),
            "sessions": sum(len(s) for s in self.sessions.values()),
            "tokens": dict(zip(("input", "output", "cache_creation", "cache_read"), tot)),
            "total_tokens": sum(tot),
            "models": {m: dict(zip(("input", "output", "cache_creation", "cache_read", "requests"), v))
                       for m, v in sorted(models.items())},
            "references": dict(zip(("total", "resolved"), self.resolved_refs())),
            "groups": {g: {"total_tokens": v[0], "requests": v[1], "sessions": len(self.sessions.get(g, ()))}
                       for g, v in sorted(groups.items())},
        }


def walk_jsonl(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".jsonl"):
                yield Path(dirpath) / fn


def count_source(src: Path, include: list[str]) -> dict:
    c = Counter()
    for p in walk_jsonl(src):
        rel = p.relative_to(src)
        if include and not any(fnmatch.fnmatch(str(rel), g) for g in include):
            continue
        parts = rel.parts
        # group = project slug (same derivation as make_corpus, for the per-slug check)
        if "projects" in parts[:-1]:
            slug = parts[parts.index("projects") + 1]
        else:
            slug = None
        c.add_file(p, slug or "?")
    return c.summary()


def count_corpus(corpus: Path) -> tuple[dict, Counter]:
    c = Counter(track_ids=True)
    proj = corpus / "projects"
    for p in walk_jsonl(proj):
        folder = p.relative_to(proj).parts[0]
        m = GROUP_RE.match(folder)
        c.add_file(p, m.group(2) if m else "?")
    return c.summary(), c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="verify exact K x scaling of a make_corpus.py corpus")
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--src", type=Path, help="fixture root of one copy (default: from corpus.json)")
    ap.add_argument("--json", action="store_true", help="print the corpus summary as JSON on stdout")
    args = ap.parse_args(argv)

    man_path = args.corpus / "corpus.json"
    man = json.loads(man_path.read_text()) if man_path.exists() else {}
    K = man.get("copies")
    cpp = man.get("copies_per_project", 1)
    src = args.src or (Path(man["src"]) if "src" in man else None)
    if K is None or src is None:
        print("corpus.json missing (copies/src); cannot check scaling", file=sys.stderr)
        return 2

    one = count_source(src, man.get("include") or [])
    allc, counter = count_corpus(args.corpus)
    ok = True
    log = sys.stderr if args.json else sys.stdout

    def check(name, got, want):
        nonlocal ok
        good = got == want
        ok &= good
        print(f"  {'OK ' if good else 'FAIL'} {name}: {got} {'==' if good else '!='} {want}", file=log)

    print(f"one copy ({src}): {one['files']} files, {one['bytes']} bytes, {one['requests']} requests, "
          f"{one['total_tokens']} tokens {one['tokens']}", file=log)
    print(f"corpus ({args.corpus}, K={K}): {allc['files']} files, {allc['bytes']} bytes, {allc['lines']} lines, "
          f"{allc['requests']} requests, {allc['total_tokens']} tokens", file=log)
    check("lines parse as JSON (bad lines)", allc["bad_lines"], 0)
    for b in counter.bad_lines[:5]:
        print("     ", b, file=log)
    check("files", allc["files"], K * one["files"])
    check("bytes", allc["bytes"], K * one["bytes"])
    check("total tokens", allc["total_tokens"], K * one["total_tokens"])
    for f in one["tokens"]:
        check(f"{f} tokens", allc["tokens"][f], K * one["tokens"][f])
    check("deduped requests", allc["requests"], K * one["requests"])
    check("sessions (distinct sessionId)", allc["sessions"], K * one["sessions"])
    check("id references (total, resolved within copy)",
          (allc["references"]["total"], allc["references"]["resolved"]),
          (K * one["references"]["total"], K * one["references"]["resolved"]))
    check("models", sorted(allc["models"]), sorted(one["models"]))
    for m, v in one["models"].items():
        check(f"model {m}", allc["models"].get(m), {f: K * x for f, x in v.items()})
    # per group: copies in group g = min(cpp, K - g*cpp)
    bad_groups = []
    for g in range(-(-K // cpp)):
        n = min(cpp, K - g * cpp)
        got = allc["groups"].get(str(g), {"total_tokens": 0, "requests": 0})
        if got["total_tokens"] != n * one["total_tokens"] or got["requests"] != n * one["requests"]:
            bad_groups.append((g, got, n))
    check("groups with exact n x one-copy totals", len(bad_groups), 0)
    for b in bad_groups[:5]:
        print("     ", b, file=log)
    check("dedup keys shared between groups", len(counter.shared_keys), 0)
    check("structured ids shared between groups", len(counter.shared_ids), 0)
    for s in (counter.shared_keys + counter.shared_ids)[:5]:
        print("     ", s, file=log)
    print(("VERIFY OK: " if ok else "VERIFY FAILED: ") + f"{K} copies, {allc['total_tokens']} = {K} x {one['total_tokens']} tokens", file=log)
    if args.json:
        allc["one_copy"] = {k: one[k] for k in ("files", "bytes", "requests", "sessions", "tokens", "total_tokens")}
        allc["copies"] = K
        allc["verify_ok"] = ok
        del allc["groups"]
        json.dump(allc, sys.stdout, indent=1)
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
