//! Fuzz target: the Bash command reader and the rules over it (`hook pre-tool-use`).
//!
//! Property: any bytes, as a command line, are read without a panic or a hang, and the
//! answer is consistent with what was read: `allow` only when every part is static and
//! parsed.

use std::sync::LazyLock;

use claude_sessions::rules::shell;
use claude_sessions::rules::{Action, Rules};

use super::harness;

/// Shell syntax the mutations insert.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "$(", ")", "`", "'", "\"", "\\", "{", "}", "<<", "<<-", "EOF\n", "<<<", "|", "|&", "&&", "||", ";", ";;", "&",
    "\n", "$'", "${", "((", "))", "[[", "]]", "<(", ">(", ">", ">>", "2>&1", "~", "*", "?", "[a-z]", "{a,b}",
    "bash -c ", "sh -c ", "eval ", "sudo ", "env ", "xargs ", "command ", "rm -rf /", "git push -f", "$HOME",
    "=", "#", "!", "case x in a) ;; esac", "if true; then ", "fi", "for i in a; do ", "done", "f() { ", "function ",
    "coproc ", "time ", "cd / && ", "| sh", "curl x | ",
];

pub fn run() {
    let opts = harness::Options {
        dictionary: TOKENS.iter().map(|t| t.as_bytes().to_vec()).collect(),
        structure: Some(harness::Structure::Tokens),
        // Long lines are covered by unit tests; short ones give many more executions.
        max_len: 16 << 10,
        ..harness::Options::default()
    };
    harness::run_with("shell_command", seeds(), opts, target);
}

static RULES: LazyLock<Rules> = LazyLock::new(Rules::builtin);

/// Seeds: every command of the decision corpus, plus shapes the parser finds hard.
pub fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks/corpus.toml");
    let text = std::fs::read_to_string(&dir).expect("corpus.toml");
    let corpus: toml::Value = toml::from_str(&text).expect("corpus.toml parses");
    let mut out: Vec<Vec<u8>> = corpus["case"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c.get("cmd").and_then(|v| v.as_str()))
        .map(|s| s.as_bytes().to_vec())
        .collect();
    for extra in [
        "a=$(b \"$(c '$(d)')\" `e \\`f\\``) ; g <<-EOF\n\t$(h)\nEOF\n",
        "case $x in a|b) c;; *) d;; esac; while :; do break; done",
        "for ((i=0;i<3;i++)); do [[ $i -gt 1 && -f x ]] && echo ${arr[@]:1:2} ${x//a/b}; done",
        "f() ( g ); coproc h; time -p ! i | j |& k",
        "echo {a,b}{c,d} {1..3} $'\\u00e9\\x41\\101' $\"msg\" ~user/x ~+ ~-",
        "x=( [0]=a b ); declare -A m=([k]=v); export y+=z",
    ] {
        out.push(extra.as_bytes().to_vec());
    }
    out
}

pub fn target(data: &[u8]) {
    let cmd = String::from_utf8_lossy(data);
    let a = shell::analyze(&cmd);
    let d = RULES.decide("Bash", &serde_json::json!({ "command": cmd }));
    if d.action == Some(Action::Allow) {
        assert!(a.unresolved.is_empty() && !a.syntax_error, "allowed with unresolved parts: {a:?}");
        assert!(a.commands.iter().all(|c| c.program.is_some()), "allowed an unknown program: {a:?}");
    }
    if !a.unresolved.is_empty() {
        assert!(matches!(d.action, Some(Action::Ask | Action::Deny)), "unresolved but {:?}", d.action);
    }
}
