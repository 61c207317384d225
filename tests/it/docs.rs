//! The README and the book are part of the contract: the metric table, the dashboards'
//! panels and every count they state about shipped files must match what the code and
//! the files declare, and their commands what CI runs (see also `readme_commands.rs`
//! and `doc_links.rs`).

use std::collections::BTreeSet;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

/// Every chapter of the book, by path.
fn book() -> Vec<(String, String)> {
    super::doc_links::book_chapters()
        .into_iter()
        .map(|p| (p.strip_prefix(repo()).unwrap().display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn readme_metric_table_matches_the_declared_metrics() {
    // The metric table is the book's chapter on metrics.
    let declared: BTreeSet<String> = claude_sessions::state::metrics::all_defs()
        .chain(&claude_sessions::sinks::webhook::FAMILIES)
        .chain(&claude_sessions::sinks::otlp::FAMILIES)
        .chain(&claude_sessions::control::FAMILIES)
        .map(|d| d.exposed_name())
        .collect();
    let documented: BTreeSet<String> = read("book/src/metrics.md")
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
    texts.extend(book().into_iter().map(|(_, text)| text));
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

/// The counts a text states: a number (digits or a word up to twenty), at most one word,
/// then what is counted (`alerts`, `recording rules`, `dashboards`, `panels`, `metrics`).
fn stated_counts(text: &str) -> Vec<(u64, &'static str)> {
    const NUMBERS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    const THINGS: [(&str, &str); 6] = [
        ("recording rules", "recording rules"),
        ("alerts", "alerts"),
        ("dashboards", "dashboards"),
        ("panels", "panels"),
        ("metric families", "metrics"),
        ("metrics", "metrics"),
    ];
    // Prose only, words with their emphasis and punctuation around them dropped
    // (`/metrics` stays a path, not a count's noun).
    let prose: Vec<&str> = super::doc_links::prose_lines(text).into_iter().map(|(_, l)| l).collect();
    let words: Vec<String> = prose
        .join("\n")
        .split_whitespace()
        .map(|w| {
            w.trim_start_matches(['(', '*', '_'])
                .trim_end_matches([',', '.', ';', ':', ')', '*', '_', '!', '?'])
                .to_lowercase()
        })
        .collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let Some(n) = w.parse::<u64>().ok().or_else(|| NUMBERS.iter().position(|x| x == w).map(|n| n as u64)) else {
            continue;
        };
        for skip in [1, 2] {
            let after = words[(i + skip).min(words.len())..].iter().take(2).cloned().collect::<Vec<_>>().join(" ");
            if let Some((_, what)) =
                THINGS.iter().find(|(phrase, _)| after == *phrase || after.starts_with(&format!("{phrase} ")))
            {
                out.push((n, *what));
                break;
            }
        }
    }
    out
}

#[test]
fn stated_counts_are_read_from_the_text() {
    let text = "It ships **15** alerts, five\ndashboards (and 13 recording rules); 3 weird metrics, 40 metric families,\n\
        2 panels. Not counts: 5 minutes of alerts, 7 days, 200 writers /metrics.\n```sh\n4 alerts\n```\n";
    assert_eq!(
        stated_counts(text),
        [(15, "alerts"), (5, "dashboards"), (13, "recording rules"), (3, "metrics"), (40, "metrics"), (2, "panels")]
    );
}

/// What the shipped files hold, by what `stated_counts` finds.
fn shipped_counts() -> Vec<(&'static str, u64)> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("alerts/claude-sessions.rules.yml")).expect("rules YAML");
    let rules: Vec<&serde_yaml_ng::Value> = rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .collect();
    let count_key = |key: &str| rules.iter().filter(|r| r.get(key).is_some()).count() as u64;
    let dashboards = dashboard_files();
    let panels: usize = dashboards.iter().map(|(_, d)| panels(d).len()).sum();
    let metrics = claude_sessions::state::metrics::all_defs()
        .chain(&claude_sessions::sinks::webhook::FAMILIES)
        .chain(&claude_sessions::sinks::otlp::FAMILIES)
        .chain(&claude_sessions::control::FAMILIES)
        .count();
    vec![
        ("alerts", count_key("alert")),
        ("recording rules", count_key("record")),
        ("dashboards", dashboards.len() as u64),
        ("panels", panels as u64),
        ("metrics", metrics as u64),
    ]
}

/// Every count of alerts, recording rules, dashboards, panels or metrics that the README
/// or the book states is the number the shipped files hold.
#[test]
fn stated_counts_match_the_shipped_files() {
    let shipped = shipped_counts();
    let mut texts = vec![("README.md".to_owned(), readme())];
    texts.extend(book());
    let mut wrong = Vec::new();
    let mut found = BTreeSet::new();
    for (file, text) in &texts {
        for (n, what) in stated_counts(text) {
            let actual = shipped.iter().find(|(w, _)| *w == what).unwrap().1;
            found.insert((file.as_str(), what));
            if n != actual {
                wrong.push(format!("{file} says {n} {what}; the shipped files hold {actual}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for expected in [
        ("README.md", "alerts"),
        ("README.md", "dashboards"),
        ("book/src/alerts.md", "alerts"),
        ("book/src/alerts.md", "recording rules"),
    ] {
        assert!(found.contains(&expected), "no count of {} found in {}: {found:?}", expected.1, expected.0);
    }
}

/// `dashboards/*.json`, parsed, by path, sorted.
fn dashboard_files() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            let value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A dashboard's panels in order, those inside rows included, rows left out.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for panel in list.as_array().into_iter().flatten() {
            if panel["type"] != "row" {
                out.push(panel);
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The book's dashboards chapter has a table for each dashboard, titled with its title and
/// file, whose rows are its panels' titles and descriptions, in order.
#[test]
fn book_dashboard_tables_match_the_dashboards() {
    let chapter = read("book/src/dashboards.md");
    let unescape = |s: &str| s.replace("\\|", "|").replace("&lt;", "<").replace("&gt;", ">");
    let mut tables: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in chapter.lines() {
        if let Some(heading) = line.strip_prefix("**").filter(|l| l.ends_with(".json`)")) {
            tables.push((heading.to_owned(), Vec::new()));
        } else if let Some((_, rows)) =
            tables.last_mut().filter(|_| line.starts_with("| ") && !line.starts_with("| panel |"))
        {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 2, "{line}");
            rows.push((unescape(cells[0]), unescape(cells[1])));
        }
    }
    let dashboards = dashboard_files();
    let headings: Vec<String> =
        dashboards.iter().map(|(file, d)| format!("{}** (`{file}`)", d["title"].as_str().expect("title"))).collect();
    let mut found: Vec<String> = tables.iter().map(|(h, _)| h.clone()).collect();
    found.sort();
    let mut expected = headings.clone();
    expected.sort();
    assert_eq!(found, expected, "book/src/dashboards.md: one table per dashboard");
    for ((file, dashboard), heading) in dashboards.iter().zip(&headings) {
        let rows = &tables.iter().find(|(h, _)| h == heading).unwrap().1;
        let actual: Vec<(String, String)> = panels(dashboard)
            .iter()
            .map(|p| {
                (
                    p["title"].as_str().unwrap_or_default().to_owned(),
                    p["description"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(rows, &actual, "book/src/dashboards.md: the panels of {file}");
    }
}

/// The pinned mdBook of `scripts/test.sh`.
fn mdbook() -> Option<std::path::PathBuf> {
    let path = repo().join(".tools/mdbook/bin/mdbook");
    super::support::require_tool("mdbook", path.is_file().then_some(path))
}

/// Every chapter is in SUMMARY.md, the book builds without a warning, and the anchors the
/// link check computes are the ids mdBook gives the headings.
#[test]
fn the_book_builds_and_its_anchors_are_mdbooks() {
    let summary = read("book/src/SUMMARY.md");
    let chapters = book();
    let unlisted: Vec<&String> = chapters
        .iter()
        .map(|(path, _)| path)
        .filter(|p| {
            !p.ends_with("SUMMARY.md") && !summary.contains(&format!("]({})", p.trim_start_matches("book/src/")))
        })
        .collect();
    assert!(unlisted.is_empty(), "chapters missing from SUMMARY.md: {unlisted:?}");
    let script = read("scripts/test.sh");
    assert!(script.contains("mdbook build book"), "scripts/test.sh builds the book");
    let Some(mdbook) = mdbook() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(mdbook)
        .args(["build", "book", "-d"])
        .arg(out_dir.path())
        .current_dir(repo())
        .output()
        .expect("run mdbook");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !log.contains("WARN") && !log.contains("ERROR"), "mdbook build book:\n{log}");
    for (path, text) in chapters.iter().filter(|(p, _)| !p.ends_with("SUMMARY.md")) {
        let html_path = out_dir.path().join(Path::new(path.trim_start_matches("book/src/")).with_extension("html"));
        let html = std::fs::read_to_string(&html_path).unwrap_or_else(|e| panic!("{}: {e}", html_path.display()));
        let ids: BTreeSet<String> = html
            .match_indices("<h")
            .filter_map(|(i, _)| {
                let rest = &html[i + 2..];
                let rest = rest.strip_prefix(|c: char| ('1'..='6').contains(&c))?.strip_prefix(" id=\"")?;
                Some(rest[..rest.find('"')?].to_owned())
            })
            .collect();
        assert_eq!(super::doc_links::anchors(text), ids, "{path}: anchors of the link check against mdBook's ids");
    }
}
