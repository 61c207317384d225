//! Accuracy on the real corpus: `claude-sessions scan --format json` against the independent
//! oracle (`oracle.rs`) and against ccusage; and the oracle against ccusage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::oracle;
use crate::support::{ccusage_bin, real_config_root, require_tool, run_ccusage, run_scan_json};

/// (row, column) → value. Rows are models or tool labels; columns are token types etc.
type Table = BTreeMap<(String, String), u64>;

const TOKEN_FIELDS: [&str; 4] = ["input", "output", "cache_creation", "cache_read"];

fn rows(table: &Table) -> BTreeSet<String> {
    table.keys().map(|(row, _)| row.clone()).collect()
}

/// Prints both tables side by side and panics if any cell differs or is missing on one side.
fn assert_tables_equal(what: &str, left_name: &str, left: &Table, right_name: &str, right: &Table) {
    let cells: BTreeSet<&(String, String)> = left.keys().chain(right.keys()).collect();
    let show = |v: Option<&u64>| v.map_or_else(|| "-".to_string(), u64::to_string);
    let mut report = format!("{what}\n{:<34} {:<16} {:>14} {:>14}\n", "row", "column", left_name, right_name);
    let mut mismatches = 0;
    for cell in cells {
        let (l, r) = (left.get(cell), right.get(cell));
        let mark = if l == r {
            ""
        } else {
            mismatches += 1;
            "   <-- differs"
        };
        report += &format!("{:<34} {:<16} {:>14} {:>14}{mark}\n", cell.0, cell.1, show(l), show(r));
    }
    eprintln!("{report}");
    assert_eq!(rows(left), rows(right), "{what}: different sets of rows\n{report}");
    assert_eq!(mismatches, 0, "{what}: {mismatches} cells differ\n{report}");
}

fn u64_at(obj: &Value, key: &str, context: &str) -> u64 {
    obj.get(key).and_then(Value::as_u64).unwrap_or_else(|| panic!("{context}: `{key}` is not an unsigned integer"))
}

fn object<'a>(json: &'a Value, key: &str) -> &'a serde_json::Map<String, Value> {
    json.get(key).and_then(Value::as_object).unwrap_or_else(|| panic!("scan JSON: `{key}` is not an object:\n{json:#}"))
}

// ---- scan JSON ----

/// `models.<model>.{requests,input,output,cache_creation,cache_read}`; `requests` only when
/// `with_requests` (ccusage has no request count).
fn scan_tokens(scan: &Value, with_requests: bool) -> Table {
    let mut table = Table::new();
    for (model, t) in object(scan, "models") {
        let context = format!("scan models.{model}");
        for field in TOKEN_FIELDS {
            table.insert((model.clone(), field.to_string()), u64_at(t, field, &context));
        }
        if with_requests {
            table.insert((model.clone(), "requests".to_string()), u64_at(t, "requests", &context));
        }
    }
    table
}

fn scan_costs(scan: &Value) -> BTreeMap<String, f64> {
    object(scan, "models")
        .iter()
        .map(|(model, t)| (model.clone(), t.get("cost_usd").and_then(Value::as_f64).unwrap_or(f64::NAN)))
        .collect()
}

fn scan_tools(scan: &Value) -> Table {
    let mut table = Table::new();
    for (label, t) in object(scan, "tools") {
        let context = format!("scan tools.{label}");
        table.insert((label.clone(), "calls".to_string()), u64_at(t, "calls", &context));
        table.insert((label.clone(), "errors".to_string()), u64_at(t, "errors", &context));
    }
    table
}

// ---- oracle ----

fn oracle_tokens(o: &oracle::Oracle, with_requests: bool) -> Table {
    let mut table = Table::new();
    for (model, t) in &o.tokens {
        let values = [t.input, t.output, t.cache_creation, t.cache_read];
        for (field, value) in TOKEN_FIELDS.into_iter().zip(values) {
            table.insert((model.clone(), field.to_string()), value);
        }
        if with_requests {
            table.insert((model.clone(), "requests".to_string()), t.requests);
        }
    }
    table
}

fn oracle_tools(o: &oracle::Oracle) -> Table {
    let mut table = Table::new();
    for (label, (calls, errors)) in &o.tools {
        table.insert((label.clone(), "calls".to_string()), *calls);
        table.insert((label.clone(), "errors".to_string()), *errors);
    }
    table
}

// ---- ccusage ----

fn run_ccusage_sessions(ccusage: &Path, config_root: &Path) -> Value {
    run_ccusage(ccusage, config_root, "session")
}

/// Per model: summed `modelBreakdowns` tokens over all Claude sessions, and summed cost.
fn ccusage_per_model(report: &Value) -> (Table, BTreeMap<String, f64>) {
    // `ccusage session` (all agents) says "session"; `ccusage claude session` says "sessions".
    let sessions = report
        .get("session")
        .or_else(|| report.get("sessions"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("ccusage JSON has no session array:\n{report:#}"));
    let mut tokens = Table::new();
    let mut costs = BTreeMap::new();
    for session in sessions {
        if session.get("agent").and_then(Value::as_str).is_some_and(|agent| agent != "claude") {
            continue;
        }
        let breakdowns = session.get("modelBreakdowns").and_then(Value::as_array).expect("modelBreakdowns array");
        for b in breakdowns {
            let model = b.get("modelName").and_then(Value::as_str).expect("modelName").to_string();
            let context = format!("ccusage modelBreakdowns {model}");
            let fields = [
                ("input", "inputTokens"),
                ("output", "outputTokens"),
                ("cache_creation", "cacheCreationTokens"),
                ("cache_read", "cacheReadTokens"),
            ];
            for (ours, theirs) in fields {
                *tokens.entry((model.clone(), ours.to_string())).or_default() += u64_at(b, theirs, &context);
            }
            *costs.entry(model).or_default() += b.get("cost").and_then(Value::as_f64).unwrap_or(0.0);
        }
    }
    (tokens, costs)
}

fn ccusage_or_skip() -> Option<PathBuf> {
    require_tool("ccusage", ccusage_bin())
}

fn projects_dir(root: &tempfile::TempDir) -> PathBuf {
    root.path().join("projects")
}

// ---- tests ----

#[test]
fn scan_json_tokens_match_independent_count() {
    let root = real_config_root();
    let scan = run_scan_json(root.path());
    let expected = oracle::count(&projects_dir(&root));
    assert!(!expected.tokens.is_empty(), "oracle found no usage in the real corpus");
    assert_tables_equal(
        "tokens per model: scan vs oracle",
        "scan",
        &scan_tokens(&scan, true),
        "oracle",
        &oracle_tokens(&expected, true),
    );
}

#[test]
fn scan_json_tools_match_independent_count() {
    let root = real_config_root();
    let scan = run_scan_json(root.path());
    let expected = oracle::count(&projects_dir(&root));
    let total =
        |table: &Table, column: &str| table.iter().filter(|((_, c), _)| c == column).map(|(_, v)| v).sum::<u64>();
    let (ours, theirs) = (scan_tools(&scan), oracle_tools(&expected));
    assert!(total(&theirs, "calls") > 0 && total(&theirs, "errors") > 0, "oracle found no tool calls/errors");
    assert!(total(&ours, "calls") > 0 && total(&ours, "errors") > 0, "scan reports no tool calls/errors");
    assert_tables_equal("tool calls/errors per label: scan vs oracle", "scan", &ours, "oracle", &theirs);
}

#[test]
fn scan_json_tokens_match_ccusage() {
    let Some(ccusage) = ccusage_or_skip() else { return };
    let root = real_config_root();
    let scan = run_scan_json(root.path());
    let (ccu_tokens, ccu_costs) = ccusage_per_model(&run_ccusage_sessions(&ccusage, root.path()));

    // Cost is informational only: our pricing intentionally differs from ccusage for 1h cache
    // writes and >200k-token prompts.
    let ours = scan_costs(&scan);
    eprintln!("{:<34} {:>12} {:>12} {:>9}", "model", "scan $", "ccusage $", "diff %");
    for model in ours.keys().chain(ccu_costs.keys()).collect::<BTreeSet<_>>() {
        let (a, b) = (ours.get(model).copied().unwrap_or(f64::NAN), ccu_costs.get(model).copied().unwrap_or(f64::NAN));
        let pct = if b != 0.0 { (a - b) / b * 100.0 } else { f64::NAN };
        let flag = if pct.abs() > 1.0 || pct.is_nan() { "  (differs > 1%)" } else { "" };
        eprintln!("{model:<34} {a:>12.4} {b:>12.4} {pct:>8.2}%{flag}");
    }

    assert_tables_equal(
        "tokens per model: scan vs ccusage",
        "scan",
        &scan_tokens(&scan, false),
        "ccusage",
        &ccu_tokens,
    );
}

#[test]
fn oracle_matches_ccusage() {
    let Some(ccusage) = ccusage_or_skip() else { return };
    let root = real_config_root();
    let expected = oracle::count(&projects_dir(&root));
    let (ccu_tokens, _) = ccusage_per_model(&run_ccusage_sessions(&ccusage, root.path()));
    assert!(!ccu_tokens.is_empty(), "ccusage found no usage in the real corpus");
    assert_tables_equal(
        "tokens per model: oracle vs ccusage",
        "oracle",
        &oracle_tokens(&expected, false),
        "ccusage",
        &ccu_tokens,
    );
}

#[test]
#[should_panic(expected = "different sets of rows")]
fn table_diff_fails_on_missing_row() {
    let mut left = Table::new();
    left.insert(("m".to_string(), "input".to_string()), 1);
    let mut right = left.clone();
    right.insert(("n".to_string(), "input".to_string()), 0);
    assert_tables_equal("self-check", "left", &left, "right", &right);
}

#[test]
#[should_panic(expected = "1 cells differ")]
fn table_diff_fails_on_different_value() {
    let mut left = Table::new();
    left.insert(("m".to_string(), "input".to_string()), 1);
    let mut right = Table::new();
    right.insert(("m".to_string(), "input".to_string()), 2);
    assert_tables_equal("self-check", "left", &left, "right", &right);
}
