//! The hook's decision corpus (tests/fixtures/hooks/corpus.toml): every case, and every
//! spelling of the cases marked `spell`, gets the expected answer from the built-in rules.
//! The cases listed in issue 9 also go through the real `hook pre-tool-use` process.

use std::collections::BTreeMap;

use claude_sessions::rules::{Action, Rules};
use serde::Deserialize;
use serde_json::{Value, json};

use super::support;

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize, Clone)]
struct Case {
    #[serde(default = "bash")]
    tool: String,
    cmd: Option<String>,
    input: Option<toml::Value>,
    expect: String,
    rule: Option<String>,
    #[serde(default)]
    spell: bool,
}

fn bash() -> String {
    "Bash".into()
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(support::fixtures_dir().join("hooks").join("corpus.toml")).expect("corpus");
    toml::from_str::<Corpus>(&text).unwrap_or_else(|e| panic!("corpus.toml: {e}")).case
}

/// The same command written other ways a shell runs identically (or runs as part of more).
fn spellings(cmd: &str) -> Vec<String> {
    let (program, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    let rest = if rest.is_empty() { String::new() } else { format!(" {rest}") };
    let mut out = vec![
        format!("\\{program}{rest}"),
        format!("/usr/bin/{program}{rest}"),
        format!("'{program}'{rest}"),
        format!("\"{program}\"{rest}"),
        format!("{}''{}{rest}", &program[..1], &program[1..]),
        format!("$(echo {program}){rest}"),
        format!("`echo {program}`{rest}"),
        format!("P={program}; $P{rest}"),
        format!("command {cmd}"),
        format!("env {cmd}"),
        format!("env -i PATH=/usr/bin {cmd}"),
        format!("sudo {cmd}"),
        format!("sudo -u root {cmd}"),
        format!("exec {cmd}"),
        format!("nohup {cmd}"),
        format!("nice -n 10 {cmd}"),
        format!("timeout 30 {cmd}"),
        format!("time {cmd}"),
        format!("echo hi; {cmd}"),
        format!("echo hi\n{cmd}"),
        format!("true && {cmd}"),
        format!("false || {cmd}"),
        format!("({cmd})"),
        format!("{{ {cmd}; }}"),
        format!("if true; then {cmd}; fi"),
        format!("echo $({cmd})"),
        format!("{cmd} &"),
        format!("{cmd} # a comment"),
        format!("X=1 {cmd}"),
    ];
    if !cmd.contains('\'') {
        out.push(format!("bash -c '{cmd}'"));
        out.push(format!("sh -lc '{cmd}'"));
        out.push(format!("eval '{cmd}'"));
        out.push(format!("bash -c \"bash -c '{cmd}'\""));
    }
    if !cmd.contains(['"', '$', '`', '\\']) {
        out.push(format!("zsh -c \"{cmd}\""));
    }
    if !cmd.contains('`') {
        out.push(format!("echo `{cmd}`"));
    }
    out
}

fn expected(expect: &str, got: Option<Action>) -> bool {
    match expect {
        "deny" => got == Some(Action::Deny),
        "ask" => got == Some(Action::Ask),
        "allow" => got == Some(Action::Allow),
        "none" => got.is_none(),
        "not-deny" => got != Some(Action::Deny),
        "ask-or-deny" => matches!(got, Some(Action::Ask | Action::Deny)),
        other => panic!("unknown expectation {other:?}"),
    }
}

fn input_of(case: &Case, cmd: Option<&str>) -> Value {
    match (cmd, &case.input) {
        (Some(c), _) => json!({ "command": c }),
        (None, Some(v)) => serde_json::to_value(v).expect("TOML input as JSON"),
        (None, None) => panic!("a case needs cmd or input: {case:?}"),
    }
}

#[test]
fn the_decision_corpus_holds() {
    let rules = Rules::builtin();
    let mut failures = Vec::new();
    let mut by_expect: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for case in corpus() {
        let mut variants = vec![case.cmd.clone()];
        if case.spell {
            let cmd = case.cmd.as_deref().expect("spelled cases are Bash commands");
            // A command's spellings may add a wrapper's own rule (sudo: ask), never lower the answer.
            assert!(matches!(case.expect.as_str(), "deny" | "ask"), "spell only deny or ask cases: {cmd}");
            variants.extend(spellings(cmd).into_iter().map(Some));
        }
        for (i, cmd) in variants.iter().enumerate() {
            let input = input_of(&case, cmd.as_deref());
            let d = rules.decide(&case.tool, &input);
            total += 1;
            *by_expect.entry(case.expect.clone()).or_default() += 1;
            let names: Vec<&str> = d.matches.iter().map(|m| m.rule.as_str()).collect();
            let rule_ok = i > 0 || case.rule.as_deref().is_none_or(|r| names.contains(&r));
            if !expected(&case.expect, d.action) || !rule_ok {
                failures.push(format!(
                    "{} {}: expected {}{}, got {:?} {:?}",
                    case.tool,
                    cmd.as_deref().map_or_else(|| input.to_string(), |c| format!("{c:?}")),
                    case.expect,
                    case.rule.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                    d.action.map(|a| a.as_str()),
                    names
                ));
            }
        }
    }
    println!("decision corpus: {total} cases {by_expect:?}");
    assert!(total >= 300, "the corpus has {total} cases");
    assert!(failures.is_empty(), "{} of {total} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

/// Run the real hook process on one Bash command: its decision ("" for no answer).
fn hook_decision(cmd: &str, extra: &[&str]) -> (i32, String, String) {
    let input = json!({
        "session_id": "s", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
        "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": { "command": cmd },
    });
    run_hook(input.to_string().as_bytes(), extra)
}

fn run_hook(stdin: &[u8], extra: &[&str]) -> (i32, String, String) {
    let (code, stdout, stderr) = super::hook::hook(stdin, extra);
    let decision = if stdout.trim().is_empty() {
        String::new()
    } else {
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        v["hookSpecificOutput"]["permissionDecision"].as_str().unwrap_or("").to_owned()
    };
    (code, decision, stderr)
}

#[test]
fn the_commands_issue_9_measured_get_the_right_answer_from_the_hook_process() {
    let cases: &[(&str, &[&str])] = &[
        ("echo hi\nrm -rf /", &["deny"]),
        ("/bin/rm -rf /", &["deny"]),
        ("\\rm -rf /", &["deny"]),
        ("command rm -rf /", &["deny"]),
        ("env rm -rf /", &["deny"]),
        ("bash -c 'rm -rf /'", &["deny"]),
        ("$(echo rm) -rf /", &["deny"]),
        ("r''m -rf /", &["deny"]),
        ("git -C . push -f", &["deny"]),
        ("echo `rm -rf /`", &["deny"]),
        ("rm -rf -- /", &["deny"]),
        ("rm -rf //", &["deny"]),
        ("rm -rf /.", &["deny"]),
        ("cat ~/.ssh/id_rsa", &["ask", "deny"]),
        ("cat ~/.aws/credentials", &["ask", "deny"]),
        ("head ~/.netrc", &["ask", "deny"]),
        ("git diff --output=~/.bashrc", &["ask", "deny"]),
        ("cat .ENV", &["ask", "deny"]),
        ("echo 'rm -rf /'", &["allow", ""]),
        ("grep -- --force file", &["allow", ""]),
        ("git log --grep=force", &["allow", ""]),
    ];
    let mut wrong = Vec::new();
    for (cmd, ok) in cases {
        let (code, got, err) = hook_decision(cmd, &[]);
        assert_eq!(code, 0, "{cmd}: {err}");
        if !ok.contains(&got.as_str()) {
            wrong.push(format!("{cmd:?}: {got:?}, expected one of {ok:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
