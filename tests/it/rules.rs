//! The Prometheus rules in `alerts/`: they load and pass their unit tests under promtool,
//! every alert is tested both firing and quiet, carries a severity, a summary, a
//! description and a runbook link to its own section of `alerts/README.md`, and the
//! rules use only metrics this exporter declares.
//!
//! No YAML parser is a dependency, so the structure is checked line by line, following
//! the convention written at the top of `alerts/tests.yml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use claude_sessions::state::metrics::{Type, all_defs};

use super::prom::which;
use super::support::require_tool;

const RULES: &str = "alerts/claude-sessions.rules.yml";
const TESTS: &str = "alerts/tests.yml";
const RUNBOOK: &str = "alerts/README.md";
/// Relative to the repository's root; alerts/render.sh makes them absolute (tests/it/runbooks.rs).
const RUNBOOK_URL: &str = "alerts/README.md";
const SEVERITIES: &[&str] = &["info", "warning", "critical"];

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// Runs `promtool <args> <file>` in the crate's folder; returns whether it succeeded and
/// everything it printed.
fn promtool(promtool: &Path, args: &[&str], file: &str) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .arg(file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("spawn promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn promtool_check_rules_passes_without_warnings() {
    let Some(bin) = require_tool("promtool", which("promtool")) else { return };
    let (ok, out) = promtool(&bin, &["check", "rules"], RULES);
    assert!(ok, "promtool check rules {RULES} failed:\n{out}");
    // Nothing but "Checking <file>" and "SUCCESS: N rules found": no lint or warning line.
    let checking = format!("Checking {RULES}");
    let extra: Vec<&str> =
        out.lines().map(str::trim).filter(|l| !l.is_empty() && *l != checking && !l.starts_with("SUCCESS:")).collect();
    assert!(
        out.contains("SUCCESS:") && extra.is_empty(),
        "promtool check rules {RULES} printed more than success:\n{out}"
    );
}

#[test]
fn promtool_test_rules_passes() {
    let Some(bin) = require_tool("promtool", which("promtool")) else { return };
    let (ok, out) = promtool(&bin, &["test", "rules"], TESTS);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules {TESTS} failed:\n{out}");
}

/// One rule of the rules file: `- alert: X` or `- record: x` and its lines up to the
/// next rule or group, comment lines left out.
struct Rule<'a> {
    alert: bool,
    name: &'a str,
    lines: Vec<&'a str>,
}

fn rules(text: &str) -> Vec<Rule<'_>> {
    let mut out: Vec<Rule> = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push(Rule { alert: true, name: name.trim(), lines: Vec::new() });
            inside = true;
        } else if let Some(name) = t.strip_prefix("- record:") {
            out.push(Rule { alert: false, name: name.trim(), lines: Vec::new() });
            inside = true;
        } else if t.starts_with("- name:") {
            inside = false;
        } else if inside {
            out.last_mut().expect("a rule is open").lines.push(line);
        }
    }
    out
}

/// Distinct alert names, in file order (one alert may have several rules).
fn alert_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rules(text).into_iter().filter(|r| r.alert) {
        if !names.iter().any(|n| n == r.name) {
            names.push(r.name.to_owned());
        }
    }
    names
}

/// The value of `key:` in a rule's lines: inline, or the lines of a block scalar
/// (`>-`, `|` …) indented below it. `None` if the key is absent.
fn value(lines: &[&str], key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    let i = lines.iter().position(|l| l.trim_start().starts_with(&prefix))?;
    let indent = lines[i].len() - lines[i].trim_start().len();
    let inline = lines[i].trim_start()[prefix.len()..].trim();
    if !inline.starts_with(['>', '|']) {
        return Some(inline.trim_matches(['\'', '"']).to_owned());
    }
    let block: Vec<&str> = lines[i + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(|l| l.trim())
        .collect();
    Some(block.join(" ").trim().to_owned())
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_case() {
    let alerts = alert_names(&read(RULES));
    assert!(alerts.len() >= 14, "expected the 14 documented alerts, found {alerts:?}");
    let tests = read(TESTS);
    let lines: Vec<&str> = tests.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut firing: BTreeMap<&str, usize> = BTreeMap::new();
    let mut quiet: BTreeMap<&str, usize> = BTreeMap::new();
    let mut current: Option<&str> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("- eval_time:") || line.starts_with("- name:") || line.starts_with("- expr:") {
            current = None;
        } else if let Some(name) = line.strip_prefix("alertname:") {
            let name = name.trim();
            assert!(alerts.iter().any(|a| a == name), "{TESTS} tests {name}, which is not an alert of {RULES}");
            current = Some(name);
        } else if *line == "exp_alerts: []" {
            let name = current.unwrap_or_else(|| panic!("{TESTS}: `exp_alerts: []` without `alertname:` before it"));
            *quiet.entry(name).or_default() += 1;
        } else if *line == "exp_alerts:" {
            let name = current.unwrap_or_else(|| panic!("{TESTS}: `exp_alerts:` without `alertname:` before it"));
            // The case runs to the next test case or test group.
            let case: Vec<&str> = lines[i + 1..]
                .iter()
                .copied()
                .take_while(|l| !l.starts_with("- eval_time:") && !l.starts_with("- name:"))
                .collect();
            assert!(
                case.first().is_some_and(|l| l.starts_with("- exp_labels:")),
                "{TESTS}: the firing case of {name} must list `- exp_labels:` right after `exp_alerts:`"
            );
            assert!(
                case.iter().any(|l| l.starts_with("exp_annotations:"))
                    && case.iter().any(|l| l.starts_with("summary:")),
                "{TESTS}: the firing case of {name} must assert its annotations, summary included"
            );
            *firing.entry(name).or_default() += 1;
        } else if line.starts_with("exp_alerts:") {
            panic!("{TESTS}: write `exp_alerts: []` or `exp_alerts:` and a list, not {line:?}");
        }
    }
    let no_firing: Vec<&String> = alerts.iter().filter(|a| !firing.contains_key(a.as_str())).collect();
    let no_quiet: Vec<&String> = alerts.iter().filter(|a| !quiet.contains_key(a.as_str())).collect();
    assert!(
        no_firing.is_empty() && no_quiet.is_empty(),
        "alerts without a firing case: {no_firing:?}; without a quiet case (`exp_alerts: []`): {no_quiet:?}"
    );
}

#[test]
fn every_alert_has_summary_description_runbook_and_severity() {
    let text = read(RULES);
    let all = rules(&text);
    assert!(all.iter().filter(|r| r.alert).count() >= 14, "too few alert rules found in {RULES}");
    let mut problems = Vec::new();
    for rule in all.iter().filter(|r| r.alert) {
        let name = rule.name;
        match value(&rule.lines, "severity") {
            Some(s) if SEVERITIES.contains(&s.as_str()) => {}
            other => problems.push(format!("{name}: severity must be one of {SEVERITIES:?}, is {other:?}")),
        }
        for key in ["summary", "description"] {
            if value(&rule.lines, key).is_none_or(|v| v.is_empty()) {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        let expected = format!("{RUNBOOK_URL}#{}", name.to_lowercase());
        match value(&rule.lines, "runbook_url") {
            Some(url) if url == expected => {}
            other => problems.push(format!("{name}: runbook_url must be {expected}, is {other:?}")),
        }
        if !name.starts_with("ClaudeSessions") {
            problems.push(format!("{name}: alert names start with ClaudeSessions"));
        }
    }
    for rule in all.iter().filter(|r| !r.alert) {
        if !rule.name.starts_with("claude_sessions:") {
            problems.push(format!("recording rule {}: names start with `claude_sessions:`", rule.name));
        }
    }
    assert!(problems.is_empty(), "{RULES}:\n{}", problems.join("\n"));
}

#[test]
fn runbook_has_a_section_per_alert() {
    let alerts: BTreeSet<String> = alert_names(&read(RULES)).into_iter().collect();
    let runbook = read(RUNBOOK);
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_owned())
        .filter(|h| h.starts_with("ClaudeSessions"))
        .collect();
    let missing: Vec<_> = alerts.difference(&sections).collect();
    let stale: Vec<_> = sections.difference(&alerts).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{RUNBOOK}: alerts without a `### <alert>` section: {missing:?}; sections of no alert: {stale:?}"
    );
    // The sections' anchors are what the runbook_url links point at.
    for alert in &alerts {
        assert!(
            runbook.contains(&format!("(#{})", alert.to_lowercase())),
            "{RUNBOOK}: the alert table should link to #{}",
            alert.to_lowercase()
        );
    }
}

#[test]
fn rules_use_only_declared_metrics() {
    // The store's families, and those of the OTLP sink's own collector.
    let declared: BTreeSet<String> =
        all_defs().chain(&claude_sessions::sinks::otlp::FAMILIES).map(|d| d.exposed_name()).collect();
    let histograms: BTreeSet<String> =
        all_defs().filter(|d| d.kind == Type::Histogram).map(|d| d.exposed_name()).collect();
    let text = read(RULES);
    let bytes = text.as_bytes();
    let mut used = BTreeSet::new();
    for (at, _) in text.match_indices("claude_sessions_") {
        // Part of a longer identifier or of a recording rule name (`…:claude_sessions_x`)?
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'_' | b':')) {
            continue;
        }
        let rest = &text[at..];
        let end =
            rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(rest.len());
        // Followed by ':', it is the start of a recording rule's name, not a metric.
        if !rest[end..].starts_with(':') {
            used.insert(rest[..end].to_owned());
        }
    }
    assert!(used.len() >= 10, "found too few metric names in {RULES}: {used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|t| {
            !declared.contains(*t)
                && !["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| t.strip_suffix(s).is_some_and(|base| histograms.contains(base)))
        })
        .collect();
    assert!(unknown.is_empty(), "{RULES} uses metrics the exporter does not declare: {unknown:?}");
}
