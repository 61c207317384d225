//! Every command of the README's `sh` blocks is run by a test: ours on the built binary
//! with `HOME` at a folder whose `.claude/projects` holds the real fixtures (so the
//! default transcript folder is what is read), promtool and amtool on the files the
//! README names, and the two that only CI runs (the test suite, the install) checked
//! to be in `scripts/test.sh`. A command added without a runner fails
//! `every_readme_command_has_a_runner`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{daemon, support};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The command lines of the ```` ```sh ```` blocks of a markdown text: comments dropped,
/// `\` continuations joined, blank lines skipped.
pub fn sh_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(lang) = t.strip_prefix("```") {
            if in_sh {
                in_sh = false;
            } else {
                in_sh = matches!(lang.trim(), "sh" | "bash" | "shell" | "console");
            }
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = strip_comment(line).trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(code);
        let command = pending.split_whitespace().collect::<Vec<_>>().join(" ");
        pending.clear();
        if !command.is_empty() {
            out.push(command);
        }
    }
    out
}

/// `line` without a `# comment` (a `#` at the start or after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_blank) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_blank => return &line[..i],
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line
}

/// How a README command is run.
#[derive(Debug, PartialEq)]
pub enum Runner {
    /// `claude-sessions ARGS` or `cargo run --release -- ARGS`: the built binary with ARGS.
    Binary(Vec<String>),
    /// `claude-sessions ARGS > ~/PATH`: the built binary, its output written to PATH under
    /// the test's home (folders made first, as the README's reader has them).
    BinaryTo(Vec<String>, String),
    /// Run as it is, from the repository root (a tool the test suite installs).
    Tool(&'static str, &'static [&'static str]),
    /// `promtool check config` on the README's `prometheus.yml` snippet.
    PrometheusSnippet,
    /// Run by CI: the line must be in `scripts/test.sh` (which `.ci/run` calls).
    InTestScript(&'static str),
    /// CI's own entry point: `.ci/run` must call it.
    CiEntryPoint,
}

/// The commands other than ours, and what runs each.
const OTHERS: &[(&str, Runner)] = &[
    ("scripts/test.sh", Runner::CiEntryPoint),
    ("cargo install --locked --path .", Runner::InTestScript("cargo install --locked --path .")),
    (
        "promtool check rules alerts/claude-sessions.rules.yml",
        Runner::Tool("promtool", &["check", "rules", "alerts/claude-sessions.rules.yml"]),
    ),
    ("promtool check config prometheus.yml", Runner::PrometheusSnippet),
    (
        "amtool check-config deploy/alertmanager.yml",
        Runner::Tool("amtool", &["check-config", "deploy/alertmanager.yml"]),
    ),
];

/// The runner of a command, or why there is none.
pub fn runner(command: &str) -> Result<Runner, String> {
    let ours = command.strip_prefix("claude-sessions ").or_else(|| command.strip_prefix("cargo run --release -- "));
    if let Some((args, target)) = ours.and_then(|a| a.split_once(" > ")).filter(|(_, t)| t.starts_with("~/")) {
        let plain = |t: &str| !t.chars().any(|c| "|&;<>$`'\"()*?".contains(c));
        if plain(args) && plain(target) && !target.contains(' ') {
            let args = args.split_whitespace().map(str::to_owned).collect();
            return Ok(Runner::BinaryTo(args, target[2..].to_owned()));
        }
    }
    if let Some(args) = ours {
        // Plain arguments only: a pipe, a redirection or a variable needs a runner of its own.
        if let Some(c) = args.chars().find(|c| "|&;<>$`'\"()*?~".contains(*c)) {
            return Err(format!("`{command}`: `{c}` needs a runner of its own in tests/it/readme_commands.rs"));
        }
        return Ok(Runner::Binary(args.split_whitespace().map(str::to_owned).collect()));
    }
    match OTHERS.iter().find(|(c, _)| *c == command) {
        Some((_, Runner::Tool(t, a))) => Ok(Runner::Tool(t, a)),
        Some((_, Runner::InTestScript(l))) => Ok(Runner::InTestScript(l)),
        Some((_, Runner::PrometheusSnippet)) => Ok(Runner::PrometheusSnippet),
        Some((_, Runner::CiEntryPoint)) => Ok(Runner::CiEntryPoint),
        Some((_, Runner::Binary(_) | Runner::BinaryTo(..))) => unreachable!("ours are matched above"),
        None => Err(format!("`{command}` has no runner: add one to tests/it/readme_commands.rs")),
    }
}

#[test]
fn every_readme_command_has_a_runner() {
    let commands = sh_commands(&readme());
    for expected in ["cargo run --release -- serve", "scripts/test.sh", "cargo install --locked --path ."] {
        assert!(commands.iter().any(|c| c == expected), "the README's commands {commands:?} lack `{expected}`");
    }
    let missing: Vec<String> = commands.iter().filter_map(|c| runner(c).err()).collect();
    assert!(missing.is_empty(), "README commands without a runner:\n{}", missing.join("\n"));
}

#[test]
fn a_command_without_a_runner_is_refused() {
    let text = "```sh\nclaude-sessions scan --format json   # a report\ncargo run --release -- \\\n  serve\n\
        make install\nclaude-sessions watch --json | jq .\necho '# not a comment'\n```\n\
        ```text\nnot a command\n```\n";
    let commands = sh_commands(text);
    assert_eq!(
        commands,
        [
            "claude-sessions scan --format json",
            "cargo run --release -- serve",
            "make install",
            "claude-sessions watch --json | jq .",
            "echo '# not a comment'"
        ]
    );
    let runners: Vec<Result<Runner, String>> = commands.iter().map(|c| runner(c)).collect();
    assert_eq!(runners[0], Ok(Runner::Binary(vec!["scan".into(), "--format".into(), "json".into()])));
    assert_eq!(runners[1], Ok(Runner::Binary(vec!["serve".into()])));
    assert!(runners[2..].iter().all(Result::is_err), "{runners:?}");
    assert_eq!(runner("claude-sessions man > ~/m/x.1"), Ok(Runner::BinaryTo(vec!["man".into()], "m/x.1".into())));
    assert!(runner("claude-sessions man > /etc/x.1").is_err(), "only into the home folder");
}

/// A home folder whose `.claude/projects` holds every real fixture.
fn fixture_home() -> tempfile::TempDir {
    let root = support::real_config_root();
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".claude")).unwrap();
    std::fs::rename(root.path().join("projects"), home.path().join(".claude/projects")).expect("move projects");
    home
}

/// Our binary with `HOME` at `home` and nothing else pointing elsewhere.
fn ours(home: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CLAUDE_SESSIONS_STATE_DIR")
        .env_remove("CLAUDE_SESSIONS_PRICING_FILE")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_TRACES_EXPORTER");
    cmd
}

/// `serve`: on a loopback port of its own; ready within a minute, with the fixtures'
/// tokens on `/metrics`.
fn run_serve(home: &Path, args: &[String]) {
    let mut args = args.to_vec();
    if !args.iter().any(|a| a.starts_with("--web.listen-address")) {
        args.extend(["--web.listen-address".to_owned(), "127.0.0.1:0".to_owned()]);
    }
    let mut child = ours(home, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next()) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let result = std::panic::catch_unwind(|| {
        let addr: std::net::SocketAddr =
            rx.recv_timeout(Duration::from_secs(30)).expect("serve reports its address").parse().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        let start = Instant::now();
        while daemon::http_get(addr, "/readyz", &[]).0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(60), "serve not ready within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, _, body) = daemon::http_get(addr, "/metrics", &[]);
        assert_eq!(status, 200);
        let metrics = daemon::Metrics::parse(&String::from_utf8(body).unwrap());
        assert!(metrics.sum("claude_sessions_tokens_total", &[]) > 0.0, "serve read no tokens from ~/.claude/projects");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(home.join(".local/state/claude-sessions").is_dir(), "the default state folder is under HOME");
}

/// A command that ends by itself: within two minutes, successfully, with output.
fn run_once(mut cmd: Command, what: &str) -> String {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{what}: still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    assert!(!out.stdout.is_empty() || !out.stderr.is_empty(), "{what}: no output");
    text
}

/// The README's `prometheus.yml` snippet, with the checkout's path in place of the
/// placeholder the README asks readers to replace.
pub fn prometheus_snippet(readme: &str) -> String {
    let mut blocks = readme.split("```yaml\n").skip(1).map(|b| b.split("```").next().unwrap());
    let snippet = blocks.find(|b| b.contains("scrape_configs:")).expect("the README has a prometheus.yml snippet");
    assert!(snippet.contains("/path/to/claude-sessions/"), "the snippet names where the checkout is");
    snippet.replace("/path/to/claude-sessions/", &format!("{}/", repo().display()))
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    support::require_tool(name, found)
}

#[test]
fn readme_commands_run() {
    let readme = readme();
    let home = fixture_home();
    let mut ran = Vec::new();
    for command in sh_commands(&readme) {
        match runner(&command).unwrap_or_else(|e| panic!("{e}")) {
            Runner::Binary(args) if args.first().is_some_and(|a| a == "serve") => run_serve(home.path(), &args),
            Runner::Binary(args) => {
                run_once(ours(home.path(), &args), &command);
            }
            Runner::BinaryTo(args, target) => {
                let path = home.path().join(&target);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let out = ours(home.path(), &args).output().unwrap();
                assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
                std::fs::write(&path, &out.stdout).unwrap();
                assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{command} wrote almost nothing");
            }
            Runner::Tool(name, args) => {
                let Some(path) = tool(name) else { continue };
                let mut cmd = Command::new(path);
                cmd.args(args).current_dir(repo());
                run_once(cmd, &command);
            }
            Runner::PrometheusSnippet => {
                let Some(promtool) = tool("promtool") else { continue };
                let dir = tempfile::tempdir().unwrap();
                let config = dir.path().join("prometheus.yml");
                std::fs::write(&config, prometheus_snippet(&readme)).unwrap();
                let mut cmd = Command::new(promtool);
                cmd.args(["check", "config"]).arg(&config);
                let out = run_once(cmd, &command);
                // The rules the dashboards need are loaded, not only the scrape job.
                assert!(out.contains("claude-sessions.rules.yml") && out.contains("rules found"), "{out}");
            }
            // readme_commands_ci_runs_are_in_its_scripts
            Runner::InTestScript(_) | Runner::CiEntryPoint => continue,
        }
        ran.push(command);
    }
    assert!(ran.len() >= 5, "{ran:?}");
}

/// What only CI runs: the test suite is `.ci/run`'s command, and `scripts/test.sh`
/// installs the binary as the README says.
#[test]
fn readme_commands_ci_runs_are_in_its_scripts() {
    let script = std::fs::read_to_string(repo().join("scripts/test.sh")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let mut missing = Vec::new();
    for command in sh_commands(&readme()) {
        match runner(&command) {
            Ok(Runner::InTestScript(line)) if !script.lines().any(|l| l.trim_start().starts_with(line)) => {
                missing.push(format!("scripts/test.sh does not run `{line}`"))
            }
            Ok(Runner::CiEntryPoint) if !ci.lines().any(|l| l.contains(&command)) => {
                missing.push(format!(".ci/run does not call `{command}`"))
            }
            _ => {}
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
