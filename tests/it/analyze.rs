//! `analyze` end to end: the binary over the real fixtures, its JSON checked against
//! counts made here from the JSONL (not by the daemon's code).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::console::{browser_tools, screenshots_dir};
use super::support;

fn main_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "subagents" {
                main_files(&p, out);
            }
        } else if name.ends_with(".jsonl") && !name.starts_with("agent-") {
            out.push(p);
        }
    }
}

/// Main-chain calls of a file: first line of each (message.id, requestId) per session,
/// not a sidechain, not synthetic, with usage.
fn calls_in(path: &Path) -> usize {
    let mut seen = HashSet::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
        let m = &v["message"];
        if v["type"] == "assistant"
            && v["isSidechain"] != true
            && m["model"] != "<synthetic>"
            && m["usage"].is_object()
            && m["id"].is_string()
        {
            seen.insert((v["sessionId"].to_string(), m["id"].to_string(), v["requestId"].to_string()));
        }
    }
    seen.len()
}

fn analyze(root: &Path, out: &Path, extra: &[&str]) -> Value {
    let o = Command::new(support::bin())
        .arg("analyze")
        .arg("--projects-dir")
        .arg(root.join("projects"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("analyze.json")).unwrap()).unwrap()
}

#[test]
fn analyze_counts_every_main_chain_call_and_the_compaction() {
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &[]);
    assert_eq!(a["schema"], "claude-sessions/analyze/1");
    let mut files = Vec::new();
    main_files(&root.path().join("projects"), &mut files);
    assert_eq!(a["read"]["files"], files.len());
    let calls: usize = files.iter().map(|f| calls_in(f)).sum();
    assert_eq!(a["totals"]["calls"], calls, "main-chain calls, counted from the JSONL");
    assert_eq!(a["totals"]["compactions"], 1);
    let sessions = a["sessions"].as_array().unwrap();
    let compacted = sessions.iter().find(|s| s["id"] == "4d5611e5-241a-462a-8d15-5122611a9569").unwrap();
    assert_eq!(compacted["compaction_list"][0]["tokens_before"], 170_251);
    // Each session's trajectory file: a snapshot per call whose parts sum to its growth.
    for s in sessions {
        let id = s["id"].as_str().unwrap();
        let t: Value =
            serde_json::from_slice(&std::fs::read(out.path().join("sessions").join(format!("{id}.json"))).unwrap())
                .unwrap();
        let calls = t["calls"].as_array().unwrap();
        assert_eq!(calls.len(), s["calls"].as_u64().unwrap() as usize, "{id}");
        for c in calls {
            let sum: i64 = c["composition"].as_array().unwrap().iter().map(|p| p["tokens"].as_i64().unwrap()).sum();
            assert_eq!(sum, c["growth"].as_i64().unwrap(), "{id} call {}", c["index"]);
        }
    }
    // Nothing of the transcripts' text: a prompt of the compacted session is not in the output.
    let text = std::fs::read_to_string(out.path().join("analyze.json")).unwrap();
    assert!(!text.contains("This session is being continued"), "transcript text in analyze.json");
}

#[test]
fn analyze_keeps_the_sessions_a_filter_names() {
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &["--session", "4d5611e5"]);
    let ids: Vec<&str> = a["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["4d5611e5-241a-462a-8d15-5122611a9569"]);
    let all = analyze(root.path(), out.path(), &[]);
    let project = all["sessions"][0]["project"].as_str().unwrap().to_owned();
    let want = all["sessions"].as_array().unwrap().iter().filter(|s| s["project"] == project.as_str()).count();
    let some = analyze(root.path(), out.path(), &["--only", &format!("project={project}")]);
    assert_eq!(some["sessions"].as_array().unwrap().len(), want);
    let o = Command::new(support::bin()).args(["analyze", "--only", "colour=red", "--stdout"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("colour"));
}

/// `analyze` over the real fixtures with an A/B comparison of two disjoint pairs of
/// sessions (so that every section of the JSON and the page is there).
fn analyze_with_groups(root: &Path, out: &Path) -> Value {
    let a = "session=4d5611e5,session=a7da6a22";
    let b = "session=cb2e607c,session=12a546d1";
    analyze(root, out, &["--a", a, "--b", b, "--a-label", "first pair", "--b-label", "second pair"])
}

/// What `tests/browser/validate.mjs` says of `files` against `schema` (docs/<schema>).
fn validate(node: &Path, script: &Path, schema: &str, files: &[PathBuf]) -> Value {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(schema);
    let o = Command::new(node).arg(script).arg(&schema).args(files).output().unwrap();
    assert!(o.status.success(), "validate.mjs: {}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["result"]["files"].clone()
}

/// analyze.json and every sessions/<id>.json validate against the documented schemas
/// (docs/analyze.schema.json, docs/trajectory.schema.json) with a real validator (Ajv,
/// draft 2020-12, strict); copies with one field of the wrong type do not.
#[test]
fn analyze_output_validates_against_its_json_schema() {
    let Some((node, script)) = browser_tools("validate.mjs") else { return };
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    let a = analyze_with_groups(root.path(), out.path());
    assert!(a["ab"]["metrics"].as_array().is_some_and(|m| !m.is_empty()), "the A/B section is there");
    assert!(a["sessions"].as_array().unwrap().iter().any(|s| !s["compaction_list"].as_array().unwrap().is_empty()));
    let json = out.path().join("analyze.json");
    let mut broken = a.clone();
    broken["sessions"][0]["calls"] = Value::from("many");
    let broken_file = out.path().join("broken.json");
    std::fs::write(&broken_file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let r = validate(&node, &script, "analyze.schema.json", &[json.clone(), broken_file.clone()]);
    let key = |p: &Path| p.to_str().unwrap().to_owned();
    assert_eq!(r[key(&json)]["valid"], true, "analyze.json: {}", r[key(&json)]["errors"]);
    assert_eq!(r[key(&broken_file)]["valid"], false, "a string for a count must not validate");
    assert!(r[key(&broken_file)]["errors"].to_string().contains("/sessions/0/calls"), "{}", r[key(&broken_file)]);

    let mut trajectories: Vec<PathBuf> =
        std::fs::read_dir(out.path().join("sessions")).unwrap().map(|e| e.unwrap().path()).collect();
    trajectories.sort();
    assert_eq!(trajectories.len(), a["sessions"].as_array().unwrap().len());
    let mut t: Value = serde_json::from_slice(&std::fs::read(&trajectories[0]).unwrap()).unwrap();
    t["calls"][0]["growth"] = Value::from(1.5);
    let broken_t = out.path().join("broken-trajectory.json");
    std::fs::write(&broken_t, serde_json::to_vec(&t).unwrap()).unwrap();
    let mut files = trajectories.clone();
    files.push(broken_t.clone());
    let r = validate(&node, &script, "trajectory.schema.json", &files);
    for f in &trajectories {
        assert_eq!(r[key(f)]["valid"], true, "{}: {}", f.display(), r[key(f)]["errors"]);
    }
    assert_eq!(r[key(&broken_t)]["valid"], false, "a fraction of a token must not validate");
}

/// report.html of the fixtures in headless Chromium, light and dark at 1280×800 and on a
/// 390-pixel phone: no console message, every section with its charts, nothing wider than
/// the viewport, no script. The screenshots in docs/screenshots/analyze-*.png are the
/// ones this test takes (written there with `CS_UPDATE_SCREENSHOTS=1`, else under the
/// target folder).
#[test]
fn analyze_report_renders_in_chromium() {
    let Some((node, script)) = browser_tools("report.mjs") else { return };
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    analyze_with_groups(root.path(), out.path());
    let html = out.path().join("report.html");
    let shots = screenshots_dir();
    for scheme in ["light", "dark"] {
        let _ = std::fs::remove_file(shots.join(format!("analyze-{scheme}.png")));
    }
    let o = Command::new(node)
        .arg(&script)
        .arg(&html)
        .arg("--screenshots")
        .arg(&shots)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).expect("the driver's result");
    let r = &v["result"];
    assert!(r.get("failure").is_none(), "driver failed: {}", r["failure"]);
    assert_eq!(r["console"], Value::Array(vec![]), "console messages");
    let want = [
        ("overview", 0),
        ("composition", 2), // a session's composition over time, the totals by source
        ("context", 1),     // a session's context per call
        ("compactions", 0),
        ("influence", 1),    // share of results used, by tool
        ("trajectories", 1), // sessions by class
        ("prompts", 1),      // length against duration
        ("ab", 1),
        ("sessions", 0),
    ];
    for view in ["light", "dark", "phone"] {
        let page = &r[view];
        let sections = page["sections"].as_array().unwrap();
        let ids: Vec<&str> = sections.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, want.map(|(id, _)| id), "{view}: sections");
        for ((id, svgs), s) in want.iter().zip(sections) {
            assert!(s["svgs"].as_u64().unwrap() >= *svgs, "{view}: {id} has {} charts", s["svgs"]);
        }
        let tables = |id: &str| sections.iter().find(|s| s["id"] == id).unwrap()["tables"].as_u64().unwrap();
        assert_eq!((tables("compactions"), tables("ab"), tables("sessions")), (1, 1, 1), "{view}");
        assert_eq!((tables("influence"), tables("trajectories"), tables("prompts")), (1, 1, 1), "{view}");
        assert_eq!(page["wide"], Value::Array(vec![]), "{view}: wider than the viewport");
        assert!(page["scroll_width"].as_u64() <= page["viewport_width"].as_u64(), "{view}: {page}");
        assert_eq!(page["scripts"], 0);
    }
    assert_ne!(r["light"]["background"], r["dark"]["background"], "prefers-color-scheme changes the page");
    for scheme in ["light", "dark"] {
        let png = std::fs::read(shots.join(format!("analyze-{scheme}.png"))).unwrap();
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(width, 1280, "{scheme} screenshot width");
    }
}

/// A hand-made session of `calls` main-chain calls in project `project` (its working
/// directory's basename): a prompt, then one response per call, a second apart.
fn synthetic_session(projects: &Path, project: &str, n: usize, calls: usize) {
    let id = format!("{:08x}-0000-4000-8000-{n:012x}", project.bytes().map(u32::from).sum::<u32>());
    let cwd = format!("/work/{project}");
    let dir = projects.join(format!("-work-{project}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ts = |s: usize| format!("2026-01-01T{:02}:{:02}:{:02}Z", n % 24, s / 60 % 60, s % 60);
    let mut lines = vec![serde_json::json!({
        "type": "user", "sessionId": id, "uuid": format!("{id}-u"), "cwd": cwd, "timestamp": ts(0),
        "message": {"role": "user", "content": "please do the thing"}
    })];
    for k in 0..calls {
        lines.push(serde_json::json!({
            "type": "assistant", "sessionId": id, "uuid": format!("{id}-a{k}"), "cwd": cwd,
            "requestId": format!("req_{n}_{k}"), "timestamp": ts(k + 1),
            "message": {"id": format!("msg_{project}_{n}_{k}"), "model": "claude-sonnet-4-5", "role": "assistant",
                "content": [{"type": "text", "text": "working"}],
                "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100,
                          "cache_read_input_tokens": 1000 * k, "output_tokens": 5}}
        }));
    }
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    std::fs::write(dir.join(format!("{id}.jsonl")), text).unwrap();
}

/// The A/B mode's intervals against a known difference (acceptance 5): group `beta`'s
/// sessions have exactly 6 calls more than group `alpha`'s, one for one, so the true
/// difference of means is 6; group `gamma` is `alpha` again, so the true difference is 0.
/// The 95% interval must hold 6 and not 0 in the first case, and hold 0 in the second.
#[test]
fn ab_intervals_hold_a_known_difference() {
    let root = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let counts: Vec<usize> = (0..12).map(|i| 3 + i * 7 % 11).collect();
    for (n, &c) in counts.iter().enumerate() {
        synthetic_session(&projects, "alpha", n, c);
        synthetic_session(&projects, "beta", n, c + 6);
        synthetic_session(&projects, "gamma", n, c);
    }
    let metric = |a: &Value, name: &str| {
        a["ab"]["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == name).unwrap().clone()
    };
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &["--a", "project=alpha", "--b", "project=beta", "--seed", "7"]);
    assert_eq!((&a["ab"]["a"]["sessions"], &a["ab"]["b"]["sessions"]), (&Value::from(12), &Value::from(12)));
    assert_eq!(a["ab"]["bootstrap"]["resamples"], 2000);
    let calls = metric(&a, "calls");
    let d = &calls["diff_means"];
    assert!((d["value"].as_f64().unwrap() - 6.0).abs() < 1e-9, "{calls}");
    let (lo, hi) = (d["lo"].as_f64().unwrap(), d["hi"].as_f64().unwrap());
    assert!(lo < 6.0 && 6.0 < hi, "the interval [{lo}, {hi}] holds the true difference 6");
    assert!(lo > 0.0, "the interval [{lo}, {hi}] excludes 0");
    assert!(calls["cliffs_delta"]["value"].as_f64().unwrap() > 0.5);
    // Durations follow the calls (a second each): 6 calls more is 0.1 minute more.
    assert!((metric(&a, "duration_minutes")["diff_means"]["value"].as_f64().unwrap() - 0.1).abs() < 1e-9);

    let same = analyze(root.path(), out.path(), &["--a", "project=alpha", "--b", "project=gamma", "--seed", "7"]);
    let d = &metric(&same, "calls")["diff_means"];
    assert!(d["value"].as_f64().unwrap().abs() < 1e-9, "{d}");
    let (lo, hi) = (d["lo"].as_f64().unwrap(), d["hi"].as_f64().unwrap());
    assert!(lo < 0.0 && 0.0 < hi, "no difference: the interval [{lo}, {hi}] holds 0");
    // The same seed gives the same intervals; the HTML has the comparison.
    let again = analyze(root.path(), out.path(), &["--a", "project=alpha", "--b", "project=gamma", "--seed", "7"]);
    assert_eq!(again["ab"], same["ab"]);
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains(r#"<section id="ab">"#) && html.contains("project=gamma"));

    // A session in both groups is refused, and so is a group with none.
    for (b, says) in [("since=2025-01-01", "match both"), ("project=delta", "matches none")] {
        let o = Command::new(support::bin())
            .args(["analyze", "--stdout", "--projects-dir"])
            .arg(&projects)
            .args(["--a", "project=alpha", "--b", b])
            .output()
            .unwrap();
        assert!(!o.status.success(), "--b {b}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A typed prompt of the fixtures, found here from the JSONL: a main-chain user line
/// whose content is a string of plain text (no markup, nothing escaped in JSON or HTML).
fn a_typed_prompt(root: &Path) -> String {
    let mut files = Vec::new();
    main_files(&root.join("projects"), &mut files);
    files.sort();
    for f in files {
        for l in std::fs::read_to_string(&f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
            let Some(text) = v["message"]["content"].as_str() else { continue };
            let plain = text.chars().take(60).all(|c| c.is_ascii_alphanumeric() || " ,.".contains(c));
            if v["type"] == "user" && v["isMeta"] != true && v["isSidechain"] != true && plain && text.len() >= 60 {
                return text.chars().take(60).collect();
            }
        }
    }
    panic!("no plain typed prompt in the fixtures");
}

#[test]
fn prompt_text_is_written_only_with_include_content() {
    let root = support::real_config_root();
    let needle = a_typed_prompt(root.path());
    let all_output = |dir: &Path| {
        let mut s = std::fs::read_to_string(dir.join("analyze.json")).unwrap();
        s.push_str(&std::fs::read_to_string(dir.join("report.html")).unwrap());
        for e in std::fs::read_dir(dir.join("sessions")).unwrap() {
            s.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
        s
    };
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &[]);
    let prompts: Vec<&Value> =
        a["sessions"].as_array().unwrap().iter().flat_map(|s| s["prompt_list"].as_array().unwrap()).collect();
    assert!(!prompts.is_empty());
    assert!(prompts.iter().all(|p| p.get("text").is_none()), "no text by default");
    assert!(!all_output(out.path()).contains(&needle), "a prompt's text in the default output");

    let with = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), with.path(), &["--include-content"]);
    let texts: Vec<&str> = a["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["prompt_list"].as_array().unwrap())
        .map(|p| p["text"].as_str().expect("every prompt has its text"))
        .collect();
    assert_eq!(texts.len(), prompts.len(), "the same prompts");
    assert!(texts.iter().all(|t| t.len() <= 2000), "cut to 2,000 bytes");
    assert!(texts.iter().any(|t| t.starts_with(&needle)), "{needle:?} is in analyze.json");
    // The report lists the longest turns' prompts, escaped.
    let longest = a["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["prompt_list"].as_array().unwrap())
        .max_by_key(|p| p["outcome"]["duration_ms"].as_u64().unwrap_or(0))
        .unwrap();
    let shown: String = longest["text"].as_str().unwrap().chars().take(40).collect();
    let escaped = shown
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let html = std::fs::read_to_string(with.path().join("report.html")).unwrap();
    assert!(html.contains("--include-content") && html.contains(&escaped), "{escaped:?} in report.html");
    if let Some((node, script)) = browser_tools("validate.mjs") {
        let json = with.path().join("analyze.json");
        let r = validate(&node, &script, "analyze.schema.json", std::slice::from_ref(&json));
        assert_eq!(r[json.to_str().unwrap()]["valid"], true, "{}", r[json.to_str().unwrap()]["errors"]);
    }
}
