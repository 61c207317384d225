//! The alerts' runbook links (`alerts/README.md`, "Runbook links"): every `runbook_url` of
//! `alerts/claude-sessions.rules.yml` and of `alerts/tests.yml` is
//! `alerts/README.md#<anchor>`, relative to the repository's root, and the anchor is one a
//! heading of `alerts/README.md` has on GitHub; `alerts/render.sh RUNBOOK_BASE=…` makes
//! them absolute and changes nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::prom::which;
use super::support::require_tool;

const RULES: &str = "alerts/claude-sessions.rules.yml";
const TESTS: &str = "alerts/tests.yml";
const RUNBOOK: &str = "alerts/README.md";
const RENDER: &str = "alerts/render.sh";

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

// Heading anchors as GitHub and mdBook make them: the link check's (`doc_links`).
use super::doc_links::{anchors, slug as github_anchor};

/// Every `runbook_url:` value of a YAML file, with its line number.
fn runbook_urls(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let value = line.trim_start().strip_prefix("runbook_url:")?;
            Some((i + 1, value.trim().trim_matches(['"', '\'']).to_owned()))
        })
        .collect()
}

#[test]
fn github_anchors_follow_githubs_rule() {
    assert_eq!(github_anchor("ClaudeSessionsCostSpike"), "claudesessionscostspike");
    assert_eq!(github_anchor("Loading the rules"), "loading-the-rules");
    assert_eq!(github_anchor("Tokens & cost — by model"), "tokens--cost--by-model");
    assert_eq!(github_anchor("`render.sh`: absolute links (v2)"), "rendersh-absolute-links-v2");
    let md = "# A\n## Same\n```\n# not a heading\n```\n### Same\n#no space\n";
    let got: Vec<String> = anchors(md).into_iter().collect();
    assert_eq!(got, ["a", "same", "same-1"]);
}

#[test]
fn every_runbook_link_is_a_heading_of_the_runbook() {
    let headings = anchors(&read(RUNBOOK));
    assert!(headings.contains("claudesessionscostspike"), "{RUNBOOK}: headings not found: {headings:?}");
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in [RULES, TESTS] {
        let links = runbook_urls(&read(file));
        assert!(!links.is_empty(), "{file}: no runbook_url found");
        for (line, url) in links {
            seen += 1;
            let Some(anchor) = url.strip_prefix("alerts/README.md#") else {
                problems.push(format!(
                    "{file}:{line}: {url} is not alerts/README.md#<anchor> (relative to the repository)"
                ));
                continue;
            };
            if !headings.contains(anchor) {
                problems.push(format!("{file}:{line}: {RUNBOOK} has no heading with the anchor #{anchor}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // One per alert in the rules, more in the tests (each firing case repeats it).
    assert!(seen >= 2 * 14, "only {seen} runbook links");
}

fn render(args: &[&str], env_base: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.arg(path(RENDER)).args(args).env_remove("RUNBOOK_BASE");
    if let Some(base) = env_base {
        cmd.env("RUNBOOK_BASE", base);
    }
    cmd.output().expect("run alerts/render.sh")
}

#[test]
fn render_makes_the_runbook_links_absolute_and_changes_nothing_else() {
    let original = read(RULES);
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("rules.yml");
    // A trailing slash, and characters sed would have taken for its own.
    let base = r"https://git.example.com/team/claude-sessions/blob/main&x\1/";
    let run = render(&[&format!("RUNBOOK_BASE={base}"), out.to_str().unwrap()], None);
    assert!(run.status.success(), "render.sh failed: {}", String::from_utf8_lossy(&run.stderr));
    let rendered = std::fs::read_to_string(&out).expect("render.sh wrote its output");

    let prefix = r"https://git.example.com/team/claude-sessions/blob/main&x\1/alerts/README.md#";
    let (before, after) = (original.lines().collect::<Vec<_>>(), rendered.lines().collect::<Vec<_>>());
    assert_eq!(before.len(), after.len(), "render.sh added or removed lines");
    let mut changed = 0;
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        if a.trim_start().starts_with("runbook_url:") {
            let anchor = a.split_once("alerts/README.md#").expect("relative link").1;
            assert_eq!(*b, a.replace("alerts/README.md#", prefix), "line {}", i + 1);
            assert!(b.ends_with(&format!("{prefix}{anchor}")), "line {}: {b}", i + 1);
            changed += 1;
        } else {
            assert_eq!(a, b, "line {}: render.sh changed a line that is not a runbook link", i + 1);
        }
    }
    assert_eq!(changed, runbook_urls(&original).len());
    assert!(changed >= 14);

    // The same from the environment, to standard output.
    let run = render(&[], Some(base));
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), rendered);

    // Without a base it refuses, and says how to call it.
    let run = render(&[], None);
    assert!(!run.status.success(), "render.sh without RUNBOOK_BASE succeeded");
    assert!(String::from_utf8_lossy(&run.stderr).contains("RUNBOOK_BASE="), "no usage line");

    if let Some(promtool) = require_tool("promtool", which("promtool")) {
        let check = Command::new(promtool).args(["check", "rules"]).arg(&out).output().expect("promtool");
        let text = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
        assert!(
            check.status.success() && text.contains("SUCCESS"),
            "promtool check rules on the rendered copy:\n{text}"
        );
    }
}
