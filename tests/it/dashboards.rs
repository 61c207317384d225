//! The Grafana dashboards in `dashboards/`: they pass the strict schema check
//! (`dashboards/check/check.sh`: tsc --strict against @grafana/schema), every panel
//! has a query on the dashboard's datasource variable (Prometheus; Loki for the team
//! events), every PromQL query names only metrics that `src/state/metrics.rs`
//! declares (with labels they have) and recording rules that
//! `alerts/claude-sessions.rules.yml` records, and every LogQL query filters only on
//! fields the log records carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use claude_sessions::state::metrics::{Type, all_defs};
use serde_json::Value;

use super::prom::which;
use crate::support::require_tool;

/// The dashboards that must exist (file stem → uid).
const EXPECTED: &[(&str, &str)] = &[
    ("exporter-health", "claude-sessions-exporter-health"),
    ("overview", "claude-sessions-overview"),
    ("sessions-context", "claude-sessions-sessions-context"),
    ("team-events", "claude-sessions-team-events"),
    ("tokens-cost", "claude-sessions-tokens-cost"),
    ("tools", "claude-sessions-tools"),
];

/// Every panel, target and query variable reads from the Prometheus (or Loki) chosen in
/// the dashboard's `datasource` variable.
const DS_UID: &str = "${datasource}";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `dashboards/*.json`, parsed, by file stem.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = repo().join("dashboards");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            out.insert(path.file_stem().unwrap().to_string_lossy().into_owned(), value);
        }
    }
    let names: Vec<&str> = out.keys().map(String::as_str).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected, "dashboards/*.json");
    out
}

/// All panels, rows included, with the panels nested in (collapsed) rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

/// The type of data source the dashboard's `datasource` variable chooses (`prometheus`, `loki`).
fn source_type(dashboard: &Value) -> &str {
    variable(dashboard, "datasource").map(variable_query).unwrap_or_default()
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    dashboard["templating"]["list"].as_array()?.iter().find(|v| v["name"] == name)
}

/// The query text of a template variable (a string, or `{ "query": … }`).
fn variable_query(var: &Value) -> &str {
    var["query"].as_str().or_else(|| var["query"]["query"].as_str()).unwrap_or_default()
}

/// Every PromQL text of a dashboard: panel targets and query variables, with where it is.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            out.push((format!("panel {:?}", panel["title"].as_str().unwrap_or_default()), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            out.push((format!("variable {}", var["name"]), variable_query(var).to_owned()));
        }
    }
    out
}

#[test]
fn dashboards_pass_the_grafana_schema_check() {
    if require_tool("npm", which("npm")).is_none() || require_tool("node", which("node")).is_none() {
        return;
    }
    let script = repo().join("dashboards/check/check.sh");
    let output = Command::new("bash").arg(&script).output().expect("run dashboards/check/check.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} failed ({}):\n{stdout}\n{stderr}", script.display(), output.status);
    assert!(stdout.contains("6 dashboards"), "check.sh did not check all six dashboards:\n{stdout}");
}

#[test]
fn every_panel_has_a_query_and_datasource() {
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        let expected_uid = EXPECTED.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(d["uid"], expected_uid, "{name}: uid");
        assert!(uids.insert(expected_uid), "{name}: uid used twice");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: title");
        assert!(d["tags"].as_array().is_some_and(|t| t.contains(&"claude-sessions".into())), "{name}: tags");
        assert!(
            d["links"].as_array().into_iter().flatten().any(|l| l["type"] == "dashboards"
                && l["tags"].as_array().is_some_and(|t| t.contains(&"claude-sessions".into()))),
            "{name}: no link to the other claude-sessions dashboards"
        );

        if source_type(&d) == "loki" {
            loki_variables(&name, &d);
        } else {
            prometheus_variables(&name, &d);
        }
        for var in d["templating"]["list"].as_array().unwrap() {
            if var["type"] == "query" {
                assert_eq!(var["datasource"]["uid"], DS_UID, "{name}: variable {}", var["name"]);
            }
        }

        let mut ids = BTreeSet::new();
        let mut queried = 0;
        for panel in panels(&d) {
            let title = panel["title"].as_str().unwrap_or_default();
            let id = panel["id"].as_u64().unwrap_or_else(|| panic!("{name}: panel {title:?} has no numeric id"));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
            assert!(!title.is_empty(), "{name}: panel {id} has no title");
            for key in ["h", "w", "x", "y"] {
                assert!(panel["gridPos"][key].is_u64(), "{name}: panel {title:?}: gridPos.{key}");
            }
            if is_row(panel) {
                continue;
            }
            assert!(
                panel["description"].as_str().is_some_and(|t| !t.is_empty()),
                "{name}: panel {title:?} has no description"
            );
            assert_eq!(panel["datasource"]["uid"], DS_UID, "{name}: panel {title:?}: datasource");
            let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            assert!(!targets.is_empty(), "{name}: panel {title:?} has no query");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{name}: panel {title:?}: a target without expr: {target}");
                assert_eq!(target["datasource"]["uid"], DS_UID, "{name}: panel {title:?}: target datasource");
            }
            queried += 1;
        }
        assert!(queried >= 5, "{name}: only {queried} panels");
        assert_no_overlap(&name, &d);
    }
}

/// A Prometheus dashboard's variables: instance, then project and model (multi, All).
fn prometheus_variables(name: &str, d: &Value) {
    let instance = variable(d, "instance").unwrap_or_else(|| panic!("{name}: no instance variable"));
    assert_eq!(variable_query(instance), "label_values(claude_sessions_exporter_build_info, instance)", "{name}");
    for label in ["project", "model"] {
        let var = variable(d, label).unwrap_or_else(|| panic!("{name}: no {label} variable"));
        assert_eq!(
            variable_query(var),
            format!(r#"label_values(claude_sessions_tokens_total{{instance=~"$instance"}}, {label})"#),
            "{name}: {label} variable"
        );
        assert_eq!(var["multi"], true, "{name}: {label} variable is not multi-value");
        assert_eq!(var["includeAll"], true, "{name}: {label} variable has no All");
    }
}

/// The Loki dashboard's variables: the machine (an index label of the records), every
/// event type (multi, All), and regular expressions on project and rule.
fn loki_variables(name: &str, d: &Value) {
    let host = variable(d, "host").unwrap_or_else(|| panic!("{name}: no host variable"));
    assert_eq!(variable_query(host), r#"label_values({service_name="claude-sessions"}, host_name)"#, "{name}");
    let ty = variable(d, "type").unwrap_or_else(|| panic!("{name}: no type variable"));
    let types: Vec<&str> = variable_query(ty).split(',').collect();
    assert_eq!(types, claude_sessions::events::Kind::NAMES, "{name}: the type variable lists every event type");
    for var in [host, ty] {
        assert_eq!((&var["multi"], &var["includeAll"]), (&Value::from(true), &Value::from(true)), "{name}: {var}");
    }
    for regex in ["project", "rule"] {
        let var = variable(d, regex).unwrap_or_else(|| panic!("{name}: no {regex} variable"));
        assert_eq!(var["type"], "textbox", "{name}: {regex}");
        assert_eq!(var["query"], ".*", "{name}: {regex} matches everything by default");
    }
}

/// What is wrong with where a dashboard's queries go, one line each (empty = nothing):
/// the dashboard must have a `datasource` variable (type `datasource`, query
/// `prometheus`, or `loki` for the team events, first in the list since the other
/// variables query through it, set to `default`: Grafana's default data source of that
/// type), every panel but rows and every target must name
/// `{"type":"prometheus","uid":"${datasource}"}` (or `loki`), and no other
/// datasource may appear anywhere but in Grafana's built-in annotation. No `__inputs`
/// and no `${DS_…}` import placeholder either: nothing would resolve it when the file is
/// provisioned or posted to the API.
fn datasource_problems(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    // A Prometheus dashboard, or the Loki one.
    let kind = if source_type(d) == "loki" { "loki" } else { "prometheus" };
    let expected = serde_json::json!({ "type": kind, "uid": DS_UID });
    let list = d["templating"]["list"].as_array().map(Vec::as_slice).unwrap_or_default();
    match list.iter().position(|v| v["name"] == "datasource") {
        None => problems.push("no `datasource` variable".to_owned()),
        Some(i) => {
            let var = &list[i];
            if i != 0 {
                problems.push(format!("the datasource variable is number {} in the list, not the first", i + 1));
            }
            for (key, want) in [
                ("type", Value::from("datasource")),
                ("query", Value::from(kind)),
                ("multi", Value::from(false)),
                ("includeAll", Value::from(false)),
            ] {
                if var[key] != want {
                    problems.push(format!("datasource variable: {key} is {}, not {want}", var[key]));
                }
            }
            // Grafana enables its "default" option (the default data source of the
            // variable's type) only for exactly this current value; without it the
            // variable falls back to the first Prometheus by name.
            if var["current"]["value"] != "default" || var["current"]["text"] != "default" {
                problems.push(format!("datasource variable: current is {}, not \"default\"", var["current"]));
            }
        }
    }
    if d.get("__inputs").is_some() {
        problems.push("has __inputs (an import placeholder nothing resolves when provisioned)".to_owned());
    }
    let text = d.to_string();
    if text.contains("${DS_") || text.contains("$DS_") {
        problems.push("has a ${DS_…} import placeholder".to_owned());
    }

    for panel in panels(d) {
        let title = panel["title"].as_str().unwrap_or_default();
        if is_row(panel) {
            if !panel["datasource"].is_null() && panel["datasource"] != expected {
                problems.push(format!("row {title:?}: datasource {}", panel["datasource"]));
            }
            continue;
        }
        if panel["datasource"] != expected {
            problems.push(format!("panel {title:?}: datasource {}", panel["datasource"]));
        }
        for (i, target) in panel["targets"].as_array().into_iter().flatten().enumerate() {
            if target["datasource"] != expected {
                problems.push(format!("panel {title:?}: target {i}: datasource {}", target["datasource"]));
            }
        }
    }

    // Anywhere else (variables, annotations, field links…): only this one, or Grafana's own.
    fn walk(value: &Value, path: &str, expected: &Value, problems: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let here = format!("{path}.{key}");
                    let builtin_annotation = path.starts_with(".annotations.list[")
                        && *v == serde_json::json!({ "type": "grafana", "uid": "-- Grafana --" });
                    if key == "datasource" && !v.is_null() && v != expected && !builtin_annotation {
                        problems.push(format!("{here}: {v}"));
                    }
                    walk(v, &here, expected, problems);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), expected, problems);
                }
            }
            _ => {}
        }
    }
    walk(d, "", &expected, &mut problems);
    problems
}

#[test]
fn every_dashboard_reads_from_its_datasource_variable() {
    for (name, d) in dashboards() {
        let problems = datasource_problems(&d);
        assert!(problems.is_empty(), "dashboards/{name}.json:\n  {}", problems.join("\n  "));
    }

    // The check sees each way of getting it wrong.
    let (_, d) = dashboards().into_iter().next().unwrap();
    let spoil = |f: fn(&mut Value)| {
        let mut copy = d.clone();
        f(&mut copy);
        datasource_problems(&copy)
    };
    type Spoiler = fn(&mut Value);
    let cases: [(&str, Spoiler); 6] = [
        ("no variable", |d| d["templating"]["list"].as_array_mut().unwrap().retain(|v| v["name"] != "datasource")),
        ("not the default", |d| d["templating"]["list"][0]["current"] = serde_json::json!({})),
        ("a fixed uid on a target", |d| {
            let panel = d["panels"].as_array_mut().unwrap().iter_mut().find(|p| !is_row(p)).unwrap();
            panel["targets"][0]["datasource"]["uid"] = "prometheus".into();
        }),
        ("a panel without one", |d| {
            let panel = d["panels"].as_array_mut().unwrap().iter_mut().find(|p| !is_row(p)).unwrap();
            panel.as_object_mut().unwrap().remove("datasource");
        }),
        ("an import placeholder", |d| d["templating"]["list"][1]["datasource"]["uid"] = "${DS_PROMETHEUS}".into()),
        ("__inputs", |d| d["__inputs"] = serde_json::json!([{ "name": "DS_PROMETHEUS", "type": "datasource" }])),
    ];
    for (case, f) in cases {
        assert!(!spoil(f).is_empty(), "the check misses {case}");
    }
}

/// Top-level panels (rows included) fit the 24-column grid without overlapping.
fn assert_no_overlap(name: &str, dashboard: &Value) {
    let boxes: Vec<(&str, [u64; 4])> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let g = &p["gridPos"];
            let b = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
            (p["title"].as_str().unwrap_or_default(), b)
        })
        .collect();
    for (i, (title, [x, y, w, h])) in boxes.iter().enumerate() {
        assert!(x + w <= 24 && *w > 0 && *h > 0, "{name}: panel {title:?} does not fit the grid");
        for (other, [x2, y2, w2, h2]) in &boxes[i + 1..] {
            let apart = x + w <= *x2 || x2 + w2 <= *x || y + h <= *y2 || y2 + h2 <= *y;
            assert!(apart, "{name}: panels {title:?} and {other:?} overlap");
        }
    }
}

/// Names at identifier boundaries that start with `claude_sessions` (outside string
/// literals), with the label names of the selector that follows each (`None`: no selector).
fn referenced_names(expr: &str) -> Vec<(String, Option<Vec<String>>)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let quoted = quoted_bytes(expr);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = expr[from..].find("claude_sessions") {
        let start = from + i;
        let len = expr[start..].find(|c: char| !is_ident(c)).unwrap_or(expr.len() - start);
        let end = start + len;
        let at_boundary = !expr[..start].chars().next_back().is_some_and(is_ident);
        if at_boundary && !quoted[start] {
            let labels = expr[end..].strip_prefix('{').map(|s| selector_labels(&s[..s.find('}').unwrap_or(s.len())]));
            out.push((expr[start..end].to_owned(), labels));
        }
        from = end;
    }
    out
}

/// For each byte of `expr`: whether it is inside a "…" string literal.
fn quoted_bytes(expr: &str) -> Vec<bool> {
    let (mut inside, mut escaped) = (false, false);
    expr.bytes()
        .map(|b| {
            let was = inside;
            match (inside, escaped, b) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (_, false, b'"') => inside = !inside,
                _ => {}
            }
            was || inside
        })
        .collect()
}

/// Label names of a selector body: `a=~"x", b="y"` → [a, b].
fn selector_labels(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut current = String::new();
    for c in body.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '=' | '!' | '~' => {
                if !current.trim().is_empty() {
                    names.push(current.trim().to_owned());
                }
                current.clear();
            }
            ',' => current.clear(),
            c => current.push(c),
        }
    }
    names
}

/// A recording rule of the rules file.
#[derive(Debug, PartialEq)]
struct Rule {
    /// The labels of its first `by (…)`; `None` if it has none (labels then not checked).
    labels: Option<BTreeSet<String>>,
    /// The `claude_sessions_*` metrics its expression reads.
    metrics: BTreeSet<String>,
}

/// The `record:` rules of a rules file (plain text scan: the crate has no YAML parser).
fn recording_rules(text: &str) -> BTreeMap<String, Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().trim_start_matches("- ").strip_prefix("record:") else { continue };
        let name = name.trim().trim_matches(['"', '\'']).to_owned();
        // The rule's text: up to the next rule or group.
        let body: String = lines[i + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("- "))
            .map(|l| l.split('#').next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let labels = body.find("by (").map(|at| {
            let inner = &body[at + 4..];
            inner[..inner.find(')').unwrap_or(inner.len())].split(',').map(|l| l.trim().to_owned()).collect()
        });
        let metrics = referenced_names(&body).into_iter().map(|(n, _)| n).filter(|n| !n.contains(':')).collect();
        rules.insert(name, Rule { labels, metrics });
    }
    rules
}

/// Metric families deliberately on no dashboard. A new metric in
/// src/state/metrics.rs gets a panel (see dashboards/README.md) or a line here.
const NOT_ON_DASHBOARDS: &[&str] = &[];

#[test]
fn dashboards_use_only_declared_metrics() {
    // The store's families, and those of the sinks' own collectors.
    let declared: Declared = all_defs()
        .chain(&claude_sessions::sinks::webhook::FAMILIES)
        .chain(&claude_sessions::sinks::otlp::FAMILIES)
        .chain(&claude_sessions::control::FAMILIES)
        .map(|d| (d.exposed_name(), (d.kind, d.labels.iter().map(|l| l.to_string()).collect())))
        .collect();
    let rules_path = repo().join("alerts/claude-sessions.rules.yml");
    let rules_text = std::fs::read_to_string(&rules_path).unwrap_or_else(|e| {
        panic!("{}: {e} (the dashboards use its recording rules; it must define them)", rules_path.display())
    });
    let rules = recording_rules(&rules_text);
    assert!(!rules.is_empty(), "{}: no `record:` rules found", rules_path.display());

    let mut problems = Vec::new();
    let mut used_metrics = BTreeSet::new();
    for (name, d) in dashboards().into_iter().filter(|(_, d)| source_type(d) == "prometheus") {
        for (place, expr) in queries(&d) {
            for (ident, labels) in referenced_names(&expr) {
                let mut allowed: BTreeSet<String> = ["instance", "job"].map(String::from).into();
                if ident.contains(':') {
                    let Some(rule) = rules.get(&ident) else {
                        problems.push(format!(
                            "{name}: {place}: recording rule {ident} is not recorded in alerts/claude-sessions.rules.yml"
                        ));
                        continue;
                    };
                    for metric in &rule.metrics {
                        used_metrics.insert(strip_histogram_suffix(metric, &declared).0.to_owned());
                    }
                    match &rule.labels {
                        None => continue,
                        Some(rule_labels) => allowed.extend(rule_labels.iter().cloned()),
                    }
                } else {
                    let (base, suffix) = strip_histogram_suffix(&ident, &declared);
                    let Some((_, metric_labels)) = declared.get(base) else {
                        problems
                            .push(format!("{name}: {place}: {ident} is not a metric declared in src/state/metrics.rs"));
                        continue;
                    };
                    used_metrics.insert(base.to_owned());
                    allowed.extend(metric_labels.iter().cloned());
                    if suffix == "_bucket" {
                        allowed.insert("le".into());
                    }
                }
                for label in labels.into_iter().flatten() {
                    if !allowed.contains(&label) {
                        problems.push(format!("{name}: {place}: {ident} has no label {label:?} (it has {allowed:?})"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every family is on a dashboard, directly or through a recording rule.
    let unused: Vec<&String> =
        declared.keys().filter(|n| !used_metrics.contains(*n) && !NOT_ON_DASHBOARDS.contains(&n.as_str())).collect();
    assert!(unused.is_empty(), "metrics on no dashboard (add a panel, or list them in NOT_ON_DASHBOARDS): {unused:?}");
}

type Declared = BTreeMap<String, (Type, BTreeSet<String>)>;

/// Index labels of the records in Loki: resource attributes (deploy/loki.yaml).
const LOKI_LABELS: &[&str] = &["service_name", "host_name", "service_instance_id"];

/// `key` of every `| key op` label filter and `by (…)` grouping of a LogQL query.
fn logql_fields(expr: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out: Vec<String> =
        expr.split('|').skip(1).map(|part| ident(part.trim_start())).filter(|k| !k.is_empty()).collect();
    for (_, rest) in expr.match_indices("by (").map(|(i, _)| expr.split_at(i + 4)) {
        let inside = rest.split(')').next().unwrap_or_default();
        out.extend(inside.split(',').map(|l| l.trim().to_owned()));
    }
    out
}

#[test]
fn loki_queries_filter_on_fields_the_records_carry() {
    use claude_sessions::events::Kind;
    // The fields our records carry: the events' JSON fields (attributes, flattened).
    let ev = |kind| super::webhook::event("s", "p", None, kind);
    let samples = [
        ev(Kind::RuleMatch {
            rule: "r".into(),
            severity: "warning".into(),
            tool_use_id: "t".into(),
            tool: "Bash".into(),
        }),
        ev(Kind::ToolResult {
            tool_use_id: "t".into(),
            name: "Bash".into(),
            is_error: true,
            content_bytes: None,
            duration_ms: None,
            output: None,
        }),
    ];
    let mut fields: BTreeSet<String> = LOKI_LABELS.iter().map(|l| l.to_string()).collect();
    for e in &samples {
        fields.extend(serde_json::to_value(e).unwrap().as_object().unwrap().keys().cloned());
    }
    assert_eq!(
        logql_fields(r#"sum by (a, b) (count_over_time({x="y"} | c="1" | d=~"$d" [$__auto]))"#),
        ["c", "d", "a", "b"]
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, d) in dashboards().into_iter().filter(|(_, d)| source_type(d) == "loki") {
        for (place, expr) in queries(&d) {
            checked += 1;
            for field in logql_fields(&expr) {
                if !fields.contains(&field) {
                    problems.push(format!("{name}: {place}: no record has {field:?} (they have {fields:?})"));
                }
            }
        }
    }
    assert!(checked >= 5, "the Loki dashboard's queries: {checked}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `x_seconds_bucket` → (`x_seconds`, `_bucket`) when `x_seconds` is a declared histogram.
fn strip_histogram_suffix<'a>(name: &'a str, declared: &Declared) -> (&'a str, &'static str) {
    ["_bucket", "_count", "_sum"]
        .into_iter()
        .find_map(|s| name.strip_suffix(s).map(|base| (base, s)))
        .filter(|(base, _)| declared.get(*base).is_some_and(|(kind, _)| *kind == Type::Histogram))
        .unwrap_or((name, ""))
}

#[test]
fn readme_lists_every_panel() {
    let path = repo().join("dashboards/README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut missing = Vec::new();
    for (name, d) in dashboards() {
        if !readme.contains(&format!("({name}.json)")) {
            missing.push(format!("{name}: no link to {name}.json"));
        }
        for panel in panels(&d).into_iter().filter(|p| !is_row(p)) {
            let title = panel["title"].as_str().unwrap_or_default().replace('|', "\\|");
            if !readme.contains(&format!("| {title} (")) {
                missing.push(format!("{name}: panel {title:?}"));
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().replace('|', "\\|");
                if !readme.contains(&format!("`{expr}`")) {
                    missing.push(format!("{name}: panel {title:?}: query `{expr}`"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "dashboards/README.md does not list:\n{}", missing.join("\n"));
}

#[test]
fn the_query_scanner_finds_names_and_labels() {
    let found = referenced_names(
        r#"sum(rate(claude_sessions_tool_duration_seconds_bucket{instance=~"$instance", tool=~"a,b=c"}[5m])) / claude_sessions:cost_usd:rate5m + up{x="claude_sessions_no"}"#,
    );
    assert_eq!(
        found,
        [
            (
                "claude_sessions_tool_duration_seconds_bucket".to_owned(),
                Some(vec!["instance".to_owned(), "tool".to_owned()])
            ),
            ("claude_sessions:cost_usd:rate5m".to_owned(), None),
        ]
    );
    let rules = recording_rules(
        "groups:\n  - name: g\n    rules:\n      - record: a:b:rate5m\n        expr: sum by (instance, job, tool) (rate(claude_sessions_tool_calls_total[5m]))\n      - record: c:d\n        expr: vector(1)\n",
    );
    assert_eq!(rules["a:b:rate5m"].labels, Some(["instance", "job", "tool"].map(String::from).into()));
    assert_eq!(rules["a:b:rate5m"].metrics, ["claude_sessions_tool_calls_total".to_owned()].into());
    assert_eq!(rules["c:d"], Rule { labels: None, metrics: BTreeSet::new() });
}
