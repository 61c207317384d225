#!/usr/bin/env python3
"""Build a large Claude Code transcript corpus by replicating the real fixtures.

Every copy k (0 <= k < K) of the fixture set is written with *all* identifiers
rewritten by a per-copy bijection, so that

  (a) identifiers never collide across copies (checked at generation time),
  (b) references inside one copy stay consistent (same id -> same new id),
  (c) every line stays valid JSON with exactly the same byte length
      (replacements are same-length, same-alphabet, ASCII-only),
  (d) token totals, session counts, request counts and project counts of the
      corpus are exactly K x those of one copy.

Identifier tokens are found in the raw text (file content and path names):

  * UUIDs            xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex):
                     session ids, uuid/parentUuid/logicalParentUuid/leafUuid,
                     sourceToolAssistantUUID, messageId, promptId, uuid-like
                     toolUseID/parentToolUseID, session folder names
  * msg_<b62>        message.id (also inside "agent_msg_..." toolUseIDs)
  * req_<b62>        requestId
  * toolu_<b62>      tool_use.id, tool_use_id, toolUseID, parentToolUseID
    srvtoolu_<b62>   server tool use ids
  * agent ids        the exact set of ids that occur in `agent-<id>.jsonl` /
                     `agent-<id>.meta.json` file names and in "agentId":"<id>"
                     values of the source files (e.g. a2898e3,
                     a4ca7529859c158c2, ea02459f, acompact-e1f845), replaced
                     wherever they occur as a whole word

Mapping for copy k: a Vigenere-style shift of each "free" character inside its
alphabet (hex for UUIDs and agent ids, base62 for msg_/req_/toolu_ ids) by a
key stream derived from sha256("claude-sessions-bench/<k>"). Fixed parts are
kept: the token prefix (msg_01, req_01, toolu_01, srvtoolu_01, acompact-, the
leading 'a' of 2.1.x agent ids), UUID dashes and the UUID version/variant
nibbles. A per-position shift is a bijection on strings of a given shape, so
distinct ids stay distinct within a copy; cross-copy collisions are
astronomically unlikely and are nevertheless checked (the script aborts).

Layout: every fixture project folder `<slug>` becomes `<slug>-c<g>` where
g = k // --copies-per-project (default 1: one project folder per copy, so the
project count scales K x). Source folders that are not under a `projects/`
directory (spotter's `transcripts/`) become the project `-spotter-transcripts`.
File/dir names that are UUIDs or agent ids are mapped like the content; other
file stems (spotter's `short.jsonl`) get a `-c<k>` suffix.

A manifest `corpus.json` is written at the corpus root (outside `projects/`).

Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import math
import os
import re
import shutil
import string
import sys
import time
from pathlib import Path

GENERATOR_VERSION = 2

HEX = "0123456789abcdef"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
HEX_IDX = {c: i for i, c in enumerate(HEX)}
B62_IDX = {c: i for i, c in enumerate(B62)}

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PREFIXED_RE = r"(?:srvtoolu|toolu|msg|req)_[A-Za-z0-9]{16,}"
UUID_FULL = re.compile(rf"^{UUID_RE}$")
AGENT_FILE = re.compile(r"^agent-(.+?)(\.jsonl|\.meta\.json)$")
AGENT_ID_VALUE = re.compile(r'"agentId"\s*:\s*"([A-Za-z0-9_-]+)"')
# keep these many characters after the '_' of prefixed ids (msg_01..., req_01...)
PREFIX_KEEP = 2


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_src() -> Path:
    root = repo_root()
    p = root / "tests" / "fixtures" / "real"
    if p.is_dir():
        return p
    return (root / ".." / "shared" / "fixtures" / "real").resolve()


class Mapper:
    """Per-copy identifier mapping (bijection on each id shape)."""

    def __init__(self, agent_ids: set[str]):
        self.agent_ids = agent_ids
        alts = [UUID_RE, PREFIXED_RE]
        if agent_ids:
            # longest first so that e.g. acompact-xxx wins over a prefix
            alts.append("|".join(re.escape(a) for a in sorted(agent_ids, key=len, reverse=True)))
        self.token_re = re.compile(
            r"(?<![A-Za-z0-9])(?:" + "|".join(f"(?:{a})" for a in alts) + r")(?![A-Za-z0-9])"
        )
        self.copy = -1
        self.key: bytes = b""
        self.cache: dict[str, str] = {}

    def set_copy(self, k: int) -> None:
        self.copy = k
        seed = f"claude-sessions-bench/{k}".encode()
        # 128 key bytes; ids are at most ~40 chars long
        self.key = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(4))
        self.cache = {}

    def _shift(self, s: str, start: int, alpha: str, idx: dict[str, int], skip=()) -> str:
        key = self.key
        n = len(alpha)
        out = list(s)
        for i in range(start, len(s)):
            c = s[i]
            j = idx.get(c)
            if j is None or i in skip:
                continue
            out[i] = alpha[(j + key[i]) % n]
        return "".join(out)

    def map_token(self, tok: str) -> str:
        r = self.cache.get(tok)
        if r is not None:
            return r
        if len(tok) == 36 and tok[8] == "-" and UUID_FULL.match(tok):
            # keep dashes (not in alphabet) and version (14) / variant (19) nibbles
            r = self._shift(tok, 0, HEX, HEX_IDX, skip=(14, 19))
        elif tok in self.agent_ids:
            if tok.startswith("acompact-"):
                start = len("acompact-")
            elif tok.startswith("a") and len(tok) in (7, 17):
                start = 1
            else:
                start = 0
            r = self._shift(tok, start, HEX, HEX_IDX)
        else:
            us = tok.index("_")
            r = self._shift(tok, us + 1 + PREFIX_KEEP, B62, B62_IDX)
        self.cache[tok] = r
        return r

    def rewrite_text(self, text: str) -> str:
        return self.token_re.sub(lambda m: self.map_token(m.group(0)), text)

    def map_name(self, name: str, is_file: bool) -> str:
        """Map one path component below the project folder."""
        if is_file:
            m = AGENT_FILE.match(name)
            if m and m.group(1) in self.agent_ids:
                return f"agent-{self.map_token(m.group(1))}{m.group(2)}"
            for ext in (".meta.json", ".jsonl"):
                if name.endswith(ext):
                    stem = name[: -len(ext)]
                    break
            else:
                stem, ext = name, ""
            if UUID_FULL.match(stem) or stem in self.agent_ids:
                return self.map_token(stem) + ext
            return f"{stem}-c{self.copy}{ext}"
        if UUID_FULL.match(name) or name in self.agent_ids:
            return self.map_token(name)
        return name


def discover(src: Path, include: list[str]) -> list[tuple[Path, str, tuple[str, ...]]]:
    """Return (abs_path, project_slug, rel_parts_below_project) for every
    *.jsonl / agent-*.meta.json file under src."""
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in sorted(filenames):
            if not (fn.endswith(".jsonl") or (fn.startswith("agent-") and fn.endswith(".meta.json"))):
                continue
            p = Path(dirpath) / fn
            rel = p.relative_to(src)
            if include and not any(fnmatch.fnmatch(str(rel), g) for g in include):
                continue
            files.append((p, rel))
    # project roots for files not under a projects/ dir: the shallowest
    # directory that directly contains a *.jsonl file
    jsonl_dirs = {rel.parent for _, rel in files if rel.name.endswith(".jsonl")}
    out = []
    for p, rel in files:
        parts = rel.parts
        if "projects" in parts[:-1]:
            i = parts.index("projects")
            slug = parts[i + 1]
            below = parts[i + 2 :]
        else:
            root = None
            for d in sorted(jsonl_dirs, key=lambda d: len(d.parts)):
                if rel.parent == d or d in rel.parents:
                    root = d
                    break
            if root is None:
                root = rel.parent
            slug = "-" + "-".join(root.parts) if root.parts else "-root"
            below = rel.relative_to(root).parts
        out.append((p, slug, below))
    return out


def collect_agent_ids(files) -> set[str]:
    ids: set[str] = set()
    for p, _slug, below in files:
        m = AGENT_FILE.match(below[-1])
        if m:
            ids.add(m.group(1))
        with open(p, encoding="utf-8", errors="surrogateescape") as f:
            for m in AGENT_ID_VALUE.finditer(f.read()):
                ids.add(m.group(1))
    # never treat UUIDs / prefixed ids as agent ids (they are mapped anyway)
    return {a for a in ids if not UUID_FULL.match(a) and not re.fullmatch(PREFIXED_RE, a)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=None, help="fixtures root (default: <repo>/tests/fixtures/real, else ../shared/fixtures/real)")
    ap.add_argument("--out", type=Path, required=True, help="corpus root; files go to OUT/projects/...")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--target-mb", type=float, help="write whole copies until at least N MB (10^6 bytes) are written")
    g.add_argument("--copies", type=int, help="number of copies K")
    ap.add_argument("--copies-per-project", type=int, default=1, help="copies sharing one project folder <slug>-c<k//N> (default 1)")
    ap.add_argument("--include", action="append", default=[], help="glob on the path relative to --src; only matching files are replicated (repeatable)")
    ap.add_argument("--force", action="store_true", help="delete OUT/projects first if it exists")
    ap.add_argument("--verify", action="store_true", help="run bench/check_corpus.py on the result")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    src = (args.src or default_src()).resolve()
    if not src.is_dir():
        ap.error(f"source dir not found: {src}")
    files = discover(src, args.include)
    if not files:
        ap.error(f"no transcript files under {src} (include={args.include})")
    agent_ids = collect_agent_ids(files)
    contents = []
    for p, slug, below in files:
        with open(p, encoding="utf-8", errors="surrogateescape", newline="") as f:
            contents.append(f.read())
    copy_bytes = sum(p.stat().st_size for p, _, _ in files)
    if args.copies is not None:
        k_total = args.copies
    else:
        k_total = max(1, math.ceil(args.target_mb * 1e6 / copy_bytes))
    if k_total < 1:
        ap.error("--copies must be >= 1")
    cpp = max(1, args.copies_per_project)

    out = args.out.resolve()
    proj_root = out / "projects"
    if proj_root.exists():
        if not args.force:
            ap.error(f"{proj_root} exists (use --force to replace it)")
        shutil.rmtree(proj_root)
    proj_root.mkdir(parents=True)
    manifest_path = out / "corpus.json"
    if manifest_path.exists():
        manifest_path.unlink()

    mapper = Mapper(agent_ids)
    seen: dict[str, int] = {}  # mapped id -> copy (cross-copy collision check)
    written_bytes = 0
    written_files = 0
    made_dirs: set[Path] = set()
    t0 = time.monotonic()
    for k in range(k_total):
        mapper.set_copy(k)
        suffix = f"-c{k // cpp}"
        for (p, slug, below), text in zip(files, contents):
            new_text = mapper.rewrite_text(text)
            parts = [mapper.map_name(c, is_file=(i == len(below) - 1)) for i, c in enumerate(below)]
            dst = proj_root.joinpath(slug + suffix, *parts)
            d = dst.parent
            if d not in made_dirs:
                d.mkdir(parents=True, exist_ok=True)
                made_dirs.add(d)
            if dst.exists():
                raise SystemExit(f"internal error: path collision {dst}")
            data = new_text.encode("utf-8", errors="surrogateescape")
            with open(dst, "wb") as f:
                f.write(data)
            written_bytes += len(data)
            written_files += 1
        for orig, new in mapper.cache.items():
            prev = seen.get(new)
            if prev is not None and prev != k:
                raise SystemExit(f"id collision across copies {prev} and {k}: {new} (from {orig})")
            seen[new] = k
        if not args.quiet and (k + 1) % max(1, k_total // 10) == 0:
            print(f"  copy {k + 1}/{k_total}: {written_bytes / 1e6:.1f} MB", file=sys.stderr)
    dt = time.monotonic() - t0

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "src": str(src),
        "include": args.include,
        "copies": k_total,
        "copies_per_project": cpp,
        "target_mb": args.target_mb,
        "files_per_copy": len(files),
        "bytes_per_copy": copy_bytes,
        "files": written_files,
        "bytes": written_bytes,
        "agent_ids": sorted(agent_ids),
        "distinct_ids_per_copy": len(mapper.cache),
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    assert written_bytes == k_total * copy_bytes, "byte size changed while rewriting"
    print(
        f"wrote {written_files} files, {written_bytes / 1e6:.1f} MB ({written_bytes} bytes), "
        f"{k_total} copies x {len(files)} files x {copy_bytes} bytes, "
        f"{len(mapper.cache)} ids rewritten per copy, {len(agent_ids)} agent ids, "
        f"project folders <slug>-c<k//{cpp}>, into {proj_root} in {dt:.1f}s"
    )
    if args.verify:
        import subprocess

        chk = Path(__file__).resolve().parent / "check_corpus.py"
        return subprocess.call([sys.executable, str(chk), str(out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
