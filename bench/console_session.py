#!/usr/bin/env python3
"""Append a synthetic Claude Code session of N tool calls to a transcript (for bench/console.sh).

    python3 bench/console_session.py --projects DIR --session ID --calls N [--start K]
        [--errors-every 50] [--prompt-every 100] [--agent]

Writes `DIR/-bench-console/ID.jsonl` (appending): a prompt, then N pairs of an assistant
line with one `Bash` tool_use (usage with a growing cache, so the context chart moves)
and a user line with its tool_result (`is_error` every `--errors-every`-th call), a new
prompt every `--prompt-every` calls. `--agent`: call 1 is an `Agent` call whose
sub-agent writes three tool calls of its own to `ID/subagents/agent-<id>.jsonl`.
Timestamps are now (the daemon only follows lines stamped after its start), 1 ms apart.
Call numbers start at `--start` (default 0), so a second run appends new calls with new
ids (`toolu_<first 8 hex digits of the session id><call number, 16 digits>m`). Prints one
JSON line: the calls, errors and lines written.
"""

import argparse
import datetime
import json
import pathlib
import sys
import uuid

SLUG = "-bench-console"
CWD = "/bench/console"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--projects", required=True, type=pathlib.Path)
    p.add_argument("--session", required=True)
    p.add_argument("--calls", required=True, type=int)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--errors-every", type=int, default=50)
    p.add_argument("--prompt-every", type=int, default=100)
    p.add_argument("--agent", action="store_true")
    a = p.parse_args()

    t = datetime.datetime.now(datetime.timezone.utc)
    step = datetime.timedelta(milliseconds=1)

    def stamp() -> str:
        nonlocal t
        t += step
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

    sid = a.session
    main_lines: list[dict] = []
    agent_lines: list[dict] = []
    errors = 0
    # Ids are unique across sessions (the daemon deduplicates calls and responses globally).
    tag = sid.replace("-", "")[:8]
    agent_id = f"a{uuid.uuid5(uuid.NAMESPACE_URL, sid).hex[:16]}"

    def base(kind: str, agent: bool = False) -> dict:
        d = {"type": kind, "sessionId": sid, "uuid": str(uuid.uuid4()), "timestamp": stamp(), "cwd": CWD,
             "gitBranch": "main", "version": "2.1.0", "isSidechain": agent}
        if agent:
            d["agentId"] = agent_id
        return d

    def prompt(n: int, agent: bool = False) -> dict:
        d = base("user", agent)
        d["message"] = {"role": "user", "content": f"bench prompt {n}"}
        return d

    def call(i: int, name: str, inp: dict, error: bool, agent: bool = False) -> tuple[dict, dict]:
        tid = f"toolu_{tag}{i:016d}{'a' if agent else 'm'}"
        use = base("assistant", agent)
        use["requestId"] = f"req_{tag}{i:016d}{'a' if agent else 'm'}"
        use["message"] = {
            "id": f"msg_{tag}{i:016d}{'a' if agent else 'm'}", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": tid, "name": name, "input": inp}],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 20,
                      "cache_read_input_tokens": 1000 + 20 * (i % 100_000)},
        }
        res = base("user", agent)
        res["message"] = {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tid, "content": f"output {i}", "is_error": error}]}
        return use, res

    if a.start == 0:
        main_lines.append(prompt(0))
    agent_result = None
    for i in range(a.start, a.start + a.calls):
        if i > a.start and i % a.prompt_every == 0:
            main_lines.append(prompt(i // a.prompt_every))
        if a.agent and i == a.start + 1:
            use, res = call(i, "Agent", {"description": "bench sub-agent", "subagent_type": "general-purpose",
                                         "prompt": "look around"}, False)
            main_lines.append(use)
            agent_lines.append(prompt(0, agent=True))
            for j in range(3):
                agent_lines.extend(call(10_000_000 + i * 10 + j, "Read", {"file_path": f"/bench/f{j}.txt"},
                                        False, agent=True))
            agent_result = res
            continue
        error = a.errors_every > 0 and i % a.errors_every == a.errors_every - 1
        errors += error
        main_lines.extend(call(i, "Bash", {"command": f"echo {i}"}, error))
        if agent_result is not None and i >= a.start + 4:
            main_lines.append(agent_result)
            agent_result = None
    if agent_result is not None:
        main_lines.append(agent_result)

    folder = a.projects / SLUG
    folder.mkdir(parents=True, exist_ok=True)
    if agent_lines:
        sub = folder / sid / "subagents"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"agent-{agent_id}.meta.json").write_text(
            json.dumps({"agentType": "general-purpose", "description": "bench sub-agent"}))
        with open(sub / f"agent-{agent_id}.jsonl", "a") as f:
            f.write("".join(json.dumps(line) + "\n" for line in agent_lines))
    with open(folder / f"{sid}.jsonl", "a") as f:
        f.write("".join(json.dumps(line) + "\n" for line in main_lines))
    print(json.dumps({"session": sid, "calls": a.calls + (3 if agent_lines else 0), "errors": errors,
                      "lines": len(main_lines) + len(agent_lines), "agent": agent_id if agent_lines else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
