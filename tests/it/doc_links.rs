//! Every relative link and image of the README, the book and the READMEs of
//! `dashboards/`, `alerts/` and `deploy/` leads to a file that exists, and every
//! `#anchor` to a heading of its file (GitHub and mdBook anchors: lowercase, spaces
//! to `-`, other punctuation dropped, `-1`, `-2` for repeated headings).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The markdown files whose links are checked.
pub fn checked_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "dashboards/README.md", "alerts/README.md", "deploy/README.md"]
        .iter()
        .map(|f| repo().join(f))
        .collect();
    files.extend(book_chapters());
    files
}

/// `book/src/**/*.md`, sorted.
pub fn book_chapters() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join("book/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The lines of a markdown text outside fenced code blocks, with their 1-based numbers.
pub fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let marker = if t.starts_with("```") {
            Some("```")
        } else if t.starts_with("~~~") {
            Some("~~~")
        } else {
            None
        };
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The anchor of a heading's text: markdown links reduced to their text, then letters,
/// digits, `-` and `_` kept (lowercased), whitespace made `-`, the rest dropped.
pub fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` → `text`
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| after[close..].find(')').map(|end| (close, close + end))) {
            Some((close, end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The ATX headings of a markdown text (outside code): (level, text).
pub fn headings(text: &str) -> Vec<(usize, String)> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let level = line.chars().take_while(|c| *c == '#').count();
            let rest = line.get(level..)?;
            ((1..=6).contains(&level) && rest.starts_with(' '))
                .then(|| (level, rest.trim().trim_end_matches('#').trim().to_owned()))
        })
        .collect()
}

/// Every anchor a markdown text defines: its headings' slugs, a repeated one with `-1`,
/// `-2`, …, and explicit `<a id="…">` / `<a name="…">`.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, heading) in headings(text) {
        let base = slug(&heading);
        let mut candidate = base.clone();
        let mut n = 0;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        out.insert(candidate);
    }
    for attr in ["<a id=\"", "<a name=\""] {
        for (i, _) in text.match_indices(attr) {
            let rest = &text[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

/// The targets of the inline links and images of a markdown text (not in code blocks or
/// code spans), with their line numbers.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let bytes = line.as_bytes();
        // Byte ranges of the code spans, whose brackets are not links.
        let mut code = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'`' {
                let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
                let fence = &line[i..i + run];
                match line[i + run..].find(fence) {
                    Some(end) => {
                        code.push(i..i + run + end + run);
                        i += run + end + run;
                    }
                    None => i += run,
                }
            } else {
                i += 1;
            }
        }
        let in_code = |at: usize| code.iter().any(|r| r.contains(&at));
        for (at, _) in line.match_indices("](") {
            if in_code(at) {
                continue;
            }
            let rest = &line[at + 2..];
            let mut depth = 0;
            let end = rest.char_indices().find(|(_, c)| match c {
                '(' => {
                    depth += 1;
                    false
                }
                ')' if depth == 0 => true,
                ')' => {
                    depth -= 1;
                    false
                }
                _ => false,
            });
            let Some((end, _)) = end else { continue };
            let mut target = rest[..end].trim();
            if let Some(t) = target.strip_prefix('<').and_then(|t| t.split_once('>')) {
                target = t.0;
            } else if let Some((t, _title)) = target.split_once(char::is_whitespace) {
                target = t;
            }
            out.push((n, target.to_owned()));
        }
    }
    out
}

/// The problems of the links of `file` (whose text is `text`): targets that do not
/// exist, and anchors that match no heading.
pub fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = file.parent().expect("file in a folder");
    for (line, target) in links(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() { file.to_path_buf() } else { dir.join(path) };
        let at = format!("{}:{line}: {target}", file.display());
        if !resolved.exists() {
            problems.push(format!("{at}: no such file"));
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if resolved.extension().is_none_or(|x| x != "md") {
            problems.push(format!("{at}: an anchor into a file that is not markdown"));
            continue;
        }
        let target_text = std::fs::read_to_string(&resolved).unwrap_or_else(|e| panic!("{}: {e}", resolved.display()));
        if !anchors(&target_text).contains(fragment) {
            problems.push(format!("{at}: no heading with this anchor in {}", resolved.display()));
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let files = checked_files();
    assert!(files.len() > 20, "the book has chapters: {files:?}");
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        checked += links(&text).len();
        problems.extend(broken_links(file, &text));
    }
    assert!(checked > 200, "only {checked} links found: is the link scanner broken?");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn the_link_check_finds_what_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/other.md"), "# Other page\n\n## The `watch` command: live!\n").unwrap();
    std::fs::write(dir.path().join("pic.png"), b"png").unwrap();
    let text = "# Title\n\n## Same\n\n## Same\n\n\
        [ok](sub/other.md) [ok](sub/other.md#the-watch-command-live) ![ok](pic.png) [ok](#same-1)\n\
        [ok](https://example.com/nowhere.md) `[not a link](missing.md)` [ok](<sub/other.md> \"title\")\n\
        ```sh\n[in code](missing-too.md)\n```\n\
        [bad](missing.md) ![bad](img/none.png) [bad](#nowhere) [bad](sub/other.md#other)\n\
        [bad](pic.png#x) [bad](#same-2) [ok](#title)\n";
    let file = dir.path().join("page.md");
    std::fs::write(&file, text).unwrap();
    let problems = broken_links(&file, text);
    let bad: Vec<&str> = problems.iter().map(|p| p.split(": ").nth(1).unwrap()).collect();
    assert_eq!(
        bad,
        ["missing.md", "img/none.png", "#nowhere", "sub/other.md#other", "pic.png#x", "#same-2"],
        "{problems:#?}"
    );
}

#[test]
fn slugs_follow_github_and_mdbook() {
    assert_eq!(slug("Watching sessions in the terminal: `watch`"), "watching-sessions-in-the-terminal-watch");
    assert_eq!(slug("The endpoint: limits, TLS and basic auth"), "the-endpoint-limits-tls-and-basic-auth");
    assert_eq!(slug("HTTP API: sessions and events"), "http-api-sessions-and-events");
    assert_eq!(slug("Installing the hooks: `hooks install`"), "installing-the-hooks-hooks-install");
    assert_eq!(slug("WebSocket: `/api/ws`"), "websocket-apiws");
    assert_eq!(slug("Rules and the [PreToolUse](x.md) hook"), "rules-and-the-pretooluse-hook");
    assert_eq!(slug("claude_sessions_x — über"), "claude_sessions_x--über");
}
