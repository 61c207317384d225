//! The README is part of the contract: its metric table and its commands must
//! match what the code declares and what CI runs.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn readme_metric_table_matches_the_declared_metrics() {
    let declared: BTreeSet<String> = claude_sessions::metrics::all_defs().map(|d| d.exposed_name()).collect();
    let documented: BTreeSet<String> = readme()
        .lines()
        .filter(|l| l.starts_with("| `claude_sessions_"))
        .map(|l| l.split('`').nth(1).expect("name in backticks").to_owned())
        .collect();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "undocumented: {missing:?}; documented but not declared: {unknown:?}"
    );
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run");
    assert!(ci.contains("scripts/test.sh"), ".ci/run must call the README's test command");
    let quick_start = readme().split("## Quick start").nth(1).expect("quick start section").to_owned();
    assert!(quick_start.contains("scripts/test.sh") && quick_start.contains("-- serve"));
}
