//! The README is part of the contract: its metric table and its commands must
//! match what the code declares and what CI runs.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn readme_metric_table_matches_the_declared_metrics() {
    let declared: BTreeSet<String> = claude_sessions::state::metrics::all_defs()
        .chain(&claude_sessions::sinks::webhook::FAMILIES)
        .chain(&claude_sessions::sinks::otlp::FAMILIES)
        .chain(&claude_sessions::control::FAMILIES)
        .map(|d| d.exposed_name())
        .collect();
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

/// The docs the code and the README cite (`docs/<name>.md`) are in the repository,
/// and the architecture page names every source file that exists.
#[test]
fn cited_docs_exist_and_the_architecture_names_every_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = vec![readme()];
    let mut stack = vec![root.join("src")];
    let mut sources = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                texts.push(std::fs::read_to_string(&p).unwrap());
                sources.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut cited = std::collections::BTreeSet::new();
    for t in &texts {
        // Ours only: not a path inside a URL (`…/docs/x.md`).
        for (i, _) in t.match_indices("docs/").filter(|(i, _)| *i == 0 || !t[..*i].ends_with('/')) {
            let name: String =
                t[i + 5..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
            if let Some(name) = name.strip_suffix('.').map(str::to_owned).or(Some(name)).filter(|n| n.ends_with(".md"))
            {
                cited.insert(name);
            }
        }
    }
    assert!(cited.contains("transcript-format.md") && cited.contains("pricing.md"), "{cited:?}");
    let missing: Vec<&String> = cited.iter().filter(|n| !root.join("docs").join(n).is_file()).collect();
    assert!(missing.is_empty(), "cited but not in docs/: {missing:?}");
    let arch = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let unnamed: Vec<&String> = sources
        .iter()
        .filter(|s| !s.starts_with("src/cli/") && !s.ends_with("main.rs"))
        .filter(|s| {
            let dir = std::path::Path::new(s.as_str()).parent().unwrap().to_string_lossy().into_owned() + "/";
            let named = arch.contains(s.as_str()) || (dir != "src/" && arch.contains(&dir));
            !named
        })
        .collect();
    assert!(unnamed.is_empty(), "docs/architecture.md does not name: {unnamed:?}");
}

/// Nothing below the command line imports it: the library stands on its own.
#[test]
fn nothing_below_the_cli_imports_the_cli() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p != root.join("cli") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && p != root.join("main.rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("crate::cli") {
                    offenders.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
    }
    assert!(offenders.is_empty(), "import the CLI: {offenders:?}");
}
