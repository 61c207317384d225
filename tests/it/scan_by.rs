//! `scan --by`: the reports ccusage users read first (issue 14), checked against ccusage's
//! own `daily` and `session` reports on the real fixtures and against plain `scan`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{bin, ccusage_bin, real_config_root, require_tool, run_ccusage, run_scan_json};

const TOKENS: [(&str, &str); 4] = [
    ("input", "inputTokens"),
    ("output", "outputTokens"),
    ("cache_creation", "cacheCreationTokens"),
    ("cache_read", "cacheReadTokens"),
];

type Rows = BTreeMap<String, [u64; 4]>;

fn scan(root: &Path, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(bin())
        .arg("scan")
        .args(args)
        .env("CLAUDE_CONFIG_DIR", root)
        .env("NO_COLOR", "1")
        .output()
        .expect("spawn claude-sessions");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn scan_by(root: &Path, by: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--by", by, "--timezone", "UTC", "--format", "json"];
    args.extend(extra);
    let (stdout, stderr, ok) = scan(root, &args);
    assert!(ok, "scan --by {by} failed:\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn our_rows(report: &Value, by: &str) -> Rows {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[by].as_str().expect("key").to_owned(), TOKENS.map(|(ours, _)| r[ours].as_u64().expect(ours))))
        .collect()
}

fn ccusage_rows(report: &Value, list: &str) -> Rows {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("ccusage JSON has no {list}:\n{report:#}"))
        .iter()
        .map(|r| {
            let key = r["period"].as_str().expect("period").to_owned();
            (key, TOKENS.map(|(_, theirs)| r[theirs].as_u64().expect(theirs)))
        })
        .collect()
}

fn add(into: &mut [u64; 4], v: &[u64; 4]) {
    into.iter_mut().zip(v).for_each(|(a, b)| *a += b);
}

/// The session id a transcript file's lines carry (read with serde_json, not our reader).
fn session_of(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["sessionId"].as_str().map(str::to_owned))
}

fn jsonl_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            jsonl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

/// Usage that only `agent_progress` lines carry, by UTC day: copies of a sub-agent's
/// responses inside its parent's file (Claude Code 2.1.x, transcript-format.md §6),
/// whose response ids appear in no transcript line of their own. We do not count such
/// copies (the sub-agent's own file holds the responses; the fixture `subagent.jsonl`
/// comes without it) and neither does `ccusage session`; `ccusage daily` does. Read
/// with serde_json, keyed by `message.id` + `requestId`, first copy kept.
fn progress_only_usage(projects: &Path) -> Rows {
    let mut files = Vec::new();
    jsonl_files(projects, &mut files);
    let lines: Vec<Value> = files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let key = |m: &Value, req: &Value| format!("{}/{}", m["id"].as_str().unwrap_or(""), req.as_str().unwrap_or(""));
    let own: std::collections::BTreeSet<String> = lines
        .iter()
        .filter(|v| v["message"]["usage"].is_object())
        .map(|v| key(&v["message"], &v["requestId"]))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Rows::new();
    for v in lines.iter().filter(|v| v["type"] == "progress" && v["data"]["type"] == "agent_progress") {
        let (outer, m) = (&v["data"]["message"], &v["data"]["message"]["message"]);
        let k = key(m, &outer["requestId"]);
        if !m["usage"].is_object() || own.contains(&k) || !seen.insert(k) {
            continue;
        }
        let u = &m["usage"];
        let day = v["timestamp"].as_str().expect("timestamp")[..10].to_owned();
        let n = |f: &str| u[f].as_u64().unwrap_or(0);
        add(
            rows.entry(day).or_default(),
            &[n("input_tokens"), n("output_tokens"), n("cache_creation_input_tokens"), n("cache_read_input_tokens")],
        );
    }
    rows
}

#[test]
fn by_day_equals_ccusage_daily_per_day() {
    let Some(ccusage) = require_tool("ccusage", ccusage_bin()) else { return };
    let root = real_config_root();
    let ours = our_rows(&scan_by(root.path(), "day", &[]), "day");
    let mut theirs = ccusage_rows(&run_ccusage(&ccusage, root.path(), "daily"), "daily");
    assert!(theirs.len() >= 5, "ccusage found too few days: {theirs:?}");
    let copies = progress_only_usage(&root.path().join("projects"));
    for (day, v) in &copies {
        let row = theirs.get_mut(day).unwrap_or_else(|| panic!("ccusage has no {day}"));
        row.iter_mut().zip(v).for_each(|(a, b)| *a -= b);
    }
    eprintln!("ccusage daily also counts agent_progress copies: {copies:?}");
    assert_eq!(ours, theirs, "tokens per day (UTC): scan --by day (left) vs ccusage daily without the copies (right)");
}

/// Weeks (from Monday) and months are ccusage's days added up.
#[test]
fn weeks_and_months_are_the_days_added_up() {
    let Some(ccusage) = require_tool("ccusage", ccusage_bin()) else { return };
    let root = real_config_root();
    let mut days = ccusage_rows(&run_ccusage(&ccusage, root.path(), "daily"), "daily");
    for (day, v) in progress_only_usage(&root.path().join("projects")) {
        days.get_mut(&day).unwrap().iter_mut().zip(v).for_each(|(a, b)| *a -= b);
    }
    let (mut weeks, mut months) = (Rows::new(), Rows::new());
    for (day, v) in &days {
        let d: jiff::civil::Date = day.parse().expect("ccusage day");
        let monday = d.checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset()))).unwrap();
        add(weeks.entry(monday.to_string()).or_default(), v);
        add(months.entry(day[..7].to_owned()).or_default(), v);
    }
    assert_eq!(our_rows(&scan_by(root.path(), "week", &[]), "week"), weeks);
    assert_eq!(our_rows(&scan_by(root.path(), "month", &[]), "month"), months);
}

/// ccusage lists a session's main file and its `subagents/` folder as one row, and a
/// top-level `agent-*.jsonl` as a row of its own; each of our sessions is the sum of
/// the ccusage rows whose files carry its `sessionId`.
#[test]
fn by_session_is_ccusage_sessions_with_their_sub_agent_files() {
    let Some(ccusage) = require_tool("ccusage", ccusage_bin()) else { return };
    let root = real_config_root();
    let mut files = Vec::new();
    jsonl_files(&root.path().join("projects"), &mut files);
    let mut session_of_period: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let parent = f.parent().unwrap();
        let period = if parent.file_name().is_some_and(|n| n == "subagents") {
            parent.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()
        } else {
            f.file_stem().unwrap().to_string_lossy().into_owned()
        };
        if let Some(s) = session_of(f) {
            session_of_period.entry(period).or_insert(s);
        }
    }
    let theirs = ccusage_rows(&run_ccusage(&ccusage, root.path(), "session"), "session");
    let mut expected = Rows::new();
    let mut merged = 0;
    for (period, v) in &theirs {
        let s = session_of_period.get(period).unwrap_or_else(|| panic!("no file for ccusage row {period}"));
        merged += usize::from(s != period);
        add(expected.entry(s.clone()).or_default(), v);
    }
    assert!(merged >= 3, "the fixtures should hold rows ccusage names by file, not by session: {merged}");
    assert_eq!(our_rows(&scan_by(root.path(), "session", &[]), "session"), expected);
}

/// Every grouping has the totals of plain `scan`, and its rows add up to its totals row.
#[test]
fn every_grouping_adds_up_to_the_plain_totals() {
    let root = real_config_root();
    let plain = run_scan_json(root.path());
    let totals = &plain["totals"];
    let sum_models: u64 = plain["models"].as_object().unwrap().values().map(|m| m["input"].as_u64().unwrap()).sum();
    assert_eq!(totals["input"].as_u64(), Some(sum_models), "plain totals = sum of models");
    for by in ["day", "week", "month", "session", "project", "model"] {
        let r = scan_by(root.path(), by, &[]);
        for (k, _) in TOKENS {
            assert_eq!(r["totals"][k], totals[k], "{by}: totals.{k}");
            let rows: u64 = r["rows"].as_array().unwrap().iter().map(|row| row[k].as_u64().unwrap()).sum();
            assert_eq!(Some(rows), totals[k].as_u64(), "{by}: rows of {k}");
        }
        assert_eq!(r["totals"]["requests"], totals["requests"], "{by}: requests");
        let cost = |v: &Value| v["cost_usd"].as_f64().unwrap();
        assert!((cost(&r["totals"]) - cost(totals)).abs() < 2e-6, "{by}: cost {} vs {}", r["totals"], totals);
    }
}

/// Money in JSON has at most 6 decimals (`1.9525576999999998` was printed before).
#[test]
fn json_money_is_rounded_to_micro_dollars() {
    let root = real_config_root();
    let texts = [
        serde_json::to_string(&run_scan_json(root.path())).unwrap(),
        serde_json::to_string(&scan_by(root.path(), "day", &[])).unwrap(),
    ];
    for text in texts {
        for (i, _) in text.match_indices("\"cost_usd\":") {
            let n: String = text[i + 11..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let decimals = n.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 6, "{n} has {decimals} decimals");
        }
    }
}

#[test]
fn since_and_until_keep_whole_days() {
    let root = real_config_root();
    let all = our_rows(&scan_by(root.path(), "day", &[]), "day");
    let days: Vec<&String> = all.keys().collect();
    assert!(days.len() >= 4);
    let (from, to) = (days[1].as_str(), days[2].as_str());
    let compact = to.replace('-', "");
    let window = our_rows(&scan_by(root.path(), "day", &["--since", from, "--until", &compact]), "day");
    let expected: Rows =
        all.iter().filter(|(d, _)| d.as_str() >= from && d.as_str() <= to).map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(window, expected);
    let r = scan_by(root.path(), "session", &["--since", "2100-01-01"]);
    assert_eq!(r["rows"].as_array().unwrap().len(), 0);
    assert_eq!(r["totals"]["input"], 0);
}

#[test]
fn tables_have_separators_totals_and_csv_parses() {
    let root = real_config_root();
    let (table, _, ok) = scan(root.path(), &["--by", "day", "--timezone", "UTC"]);
    assert!(ok);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("day") && lines[0].contains("total tokens") && lines[0].ends_with("cost $"),
        "{table}"
    );
    let total = lines.iter().find(|l| l.starts_with("total")).unwrap_or_else(|| panic!("no totals row:\n{table}"));
    let json = scan_by(root.path(), "day", &[]);
    let sep = |n: u64| {
        let s = n.to_string();
        let mut o = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                o.push(',');
            }
            o.push(c);
        }
        o
    };
    let cache_read = json["totals"]["cache_read"].as_u64().unwrap();
    assert!(cache_read >= 1_000_000 && total.contains(&sep(cache_read)), "{total} lacks {}", sep(cache_read));
    // Right-aligned numbers: every data line ends in the same column.
    let width = lines[0].len();
    assert!(
        lines.iter().take_while(|l| !l.is_empty()).filter(|l| !l.starts_with('-')).all(|l| l.len() == width),
        "{table}"
    );

    let (csv, _, ok) = scan(root.path(), &["--by", "project", "--format", "csv"]);
    assert!(ok);
    let mut rows = csv.lines();
    let head: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(head[0], "project");
    let last = csv.lines().last().unwrap();
    assert!(last.starts_with("total,"), "{csv}");
    let col = head.iter().position(|h| *h == "cache_read").unwrap();
    let sum: u64 = csv
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total,"))
        .map(|l| l.split(',').nth(col).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, cache_read, "{csv}");

    let (plain, _, ok) = scan(root.path(), &[]);
    assert!(ok && plain.contains("total tokens") && plain.contains(&sep(cache_read)), "{plain}");
}

#[test]
fn formats_that_cannot_group_are_refused_with_a_hint() {
    let root = real_config_root();
    let (_, err, ok) = scan(root.path(), &["--format", "csv"]);
    assert!(!ok && err.contains("--by"), "{err}");
    let (_, err, ok) = scan(root.path(), &["--by", "day", "--format", "prometheus"]);
    assert!(!ok && err.contains("table, json or csv"), "{err}");
    let (_, err, ok) = scan(root.path(), &["--by", "day", "--since", "yesterday-ish"]);
    assert!(!ok && err.contains("neither a date"), "{err}");
    let (_, err, ok) = scan(root.path(), &["--by", "day", "--timezone", "Mars/Olympus"]);
    assert!(!ok && err.contains("unknown time zone"), "{err}");
}
