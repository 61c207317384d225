//! The checks on one simple command (deletes, disk wipes, git history, downloads run
//! by a shell, SQL drops, modes), and what makes a whole line read-only.

use regex::Regex;
use std::sync::LazyLock;

use super::Call;
use super::paths::{command_writes, is_broad, is_disk, secret_kind, shell_paths};
use crate::rules::shell::{self, Analysis, Arg, Command, parse_args};

pub(super) fn delete_root(c: &Command) -> bool {
    match c.program.as_deref() {
        Some("rm") => {
            let p = parse_args(&c.args, &[]);
            (p.has('r', "recursive") || p.short.contains(&'R'))
                && p.operands.iter().any(|a| is_broad(a, c.cwd.as_deref()))
        }
        Some("find") => {
            let (roots, expr) = find_parts(c);
            find_deletes(expr) && roots.iter().any(|a| is_broad(a, c.cwd.as_deref()))
        }
        _ => false,
    }
}

pub(super) fn delete_recursive(c: &Command) -> bool {
    match c.program.as_deref() {
        Some("rm") => {
            let p = parse_args(&c.args, &[]);
            // Without -f too when the target is only known at run time (`rm -r "$DIR"/`).
            (p.has('r', "recursive") || p.short.contains(&'R'))
                && (p.has('f', "force") || c.extra_args || p.operands.iter().any(|a| a.dynamic))
        }
        Some("find") => find_deletes(find_parts(c).1),
        _ => false,
    }
}

/// `find`'s starting points and its expression.
fn find_parts(c: &Command) -> (Vec<&Arg>, &[Arg]) {
    let mut i = 0;
    // Leading options: -H -L -P -D debugopts -Olevel.
    while i < c.args.len() && matches!(c.args[i].text.as_str(), "-H" | "-L" | "-P" | "-D" | "-O") {
        i += if c.args[i].text == "-D" { 2 } else { 1 };
    }
    let start = i.min(c.args.len());
    let mut end = start;
    while end < c.args.len() {
        let t = &c.args[end].text;
        if t.starts_with('-') || t == "(" || t == "!" || t == "\\(" {
            break;
        }
        end += 1;
    }
    (c.args[start..end].iter().collect(), &c.args[end..])
}

fn find_deletes(expr: &[Arg]) -> bool {
    expr.iter().enumerate().any(|(i, a)| {
        a.text == "-delete"
            || (matches!(a.text.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir")
                && expr.get(i + 1).is_some_and(|p| matches!(shell::basename(&p.text), "rm" | "shred" | "unlink")))
    })
}

pub(super) fn disk_wipe(c: &Command) -> bool {
    let Some(prog) = c.program.as_deref() else { return false };
    let operands_on_disk = || parse_args(&c.args, &[]).operands.iter().any(|a| is_disk(&a.text));
    match prog {
        "dd" => c.args.iter().any(|a| a.text.strip_prefix("of=").is_some_and(is_disk)),
        "wipefs" | "blkdiscard" | "mkswap" | "mke2fs" | "sgdisk" | "fdisk" | "sfdisk" | "parted" => true,
        p if p.starts_with("mkfs") => true,
        "shred" | "cp" | "cat" | "tee" | "pv" => operands_on_disk(),
        "diskutil" => c.texts().any(|t| t.to_lowercase().starts_with("erase") || t == "zeroDisk" || t == "secureErase"),
        _ => false,
    }
}

/// `git` with its global options skipped: the subcommand and its arguments.
pub(super) fn git_sub(c: &Command) -> Option<(&str, &[Arg])> {
    if !c.is("git") {
        return None;
    }
    let mut i = 0;
    while i < c.args.len() {
        let t = c.args[i].text.as_str();
        if !t.starts_with('-') {
            return Some((t, &c.args[i + 1..]));
        }
        let takes_value = matches!(
            t,
            "-C" | "-c"
                | "--git-dir"
                | "--work-tree"
                | "--namespace"
                | "--super-prefix"
                | "--config-env"
                | "--exec-path"
        );
        i += if takes_value { 2 } else { 1 };
    }
    None
}

/// `Some(true)`: a force push; `Some(false)`: `--force-with-lease` only; `None`: neither.
pub(super) fn push_force(c: &Command) -> Option<bool> {
    let (sub, args) = git_sub(c)?;
    if sub != "push" {
        return None;
    }
    let p = parse_args(args, &['o']);
    if p.has('f', "force") || p.operands.iter().any(|a| a.text.starts_with('+') || a.text.contains(":+")) {
        return Some(true);
    }
    if p.long.iter().any(|l| *l == "force-with-lease" || *l == "force-if-includes") {
        return Some(false);
    }
    None
}

pub(super) fn history_rewrite(c: &Command) -> bool {
    let Some((sub, args)) = git_sub(c) else { return false };
    let p = parse_args(args, &[]);
    let first = p.operands.first().map(|a| a.text.as_str());
    match sub {
        "reset" => p.long.contains(&"hard"),
        "clean" => p.has('f', "force"),
        "checkout" => {
            p.has('f', "force")
                || args.iter().any(|a| a.text == "--")
                || p.operands.iter().any(|a| matches!(a.text.as_str(), "." | "*" | ":/"))
        }
        "restore" => !p.long.contains(&"staged") || p.long.contains(&"worktree") || p.short.contains(&'W'),
        "switch" => p.long.contains(&"discard-changes") || p.has('f', "force"),
        "stash" => matches!(first, Some("drop" | "clear")),
        "branch" => p.short.contains(&'D') || (p.has('d', "delete") && p.has('f', "force")),
        "filter-branch" | "filter-repo" => true,
        "reflog" => matches!(first, Some("expire" | "delete")),
        "update-ref" => p.short.contains(&'d'),
        _ => false,
    }
}

const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "aria2c", "http", "https", "xh", "lwp-request", "GET"];
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "yash", "csh", "tcsh", "python", "python2", "python3",
    "perl", "ruby", "node", "php", "eval", "source", ".", "deno", "bun",
];

pub(super) fn download_to_shell(c: &Command) -> bool {
    let Some(prog) = c.program.as_deref() else { return false };
    if !INTERPRETERS.contains(&prog) && !prog.starts_with("python3.") {
        return false;
    }
    let downloaded = |p: &String| DOWNLOADERS.contains(&p.as_str());
    c.fed_by.iter().any(downloaded) || c.args.iter().any(|a| a.sources.iter().any(downloaded))
}

pub(super) fn is_privileged(p: &str) -> bool {
    matches!(p, "sudo" | "doas" | "su" | "pkexec" | "run0")
}

/// `crontab` (except listing) and `git config core.hooksPath`.
pub(super) fn startup_command(c: &Command) -> bool {
    if c.is("crontab") {
        return !c.texts().any(|t| t == "-l");
    }
    match git_sub(c) {
        Some(("config", args)) => args.iter().any(|a| a.text.eq_ignore_ascii_case("core.hookspath")),
        _ => false,
    }
}

pub(super) static SQL_DROP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(drop\s+(table|database|schema|keyspace)|truncate\s+(table\s+)?[a-z_`\x22\[]|dropdatabase\s*\(|flushall|flushdb)")
        .expect("valid regex")
});

/// Programs that only print or search text: SQL in their arguments is not run.
const TEXT_TOOLS: &[&str] = &[
    "echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "git", "cat", "less", "more", "man", "head", "tail",
    "wc", "sed", "awk", "jq", "yq", "gh",
];

pub(super) fn sql_drop(c: &Command) -> bool {
    let Some(prog) = c.program.as_deref() else { return false };
    if matches!(prog, "dropdb" | "dropuser") {
        return true;
    }
    if prog == "mysqladmin" && c.texts().any(|t| t.eq_ignore_ascii_case("drop")) {
        return true;
    }
    if TEXT_TOOLS.contains(&prog) {
        return false;
    }
    c.texts().any(|t| SQL_DROP.is_match(t)) || c.stdin_text.as_deref().is_some_and(|t| SQL_DROP.is_match(t))
}

pub(super) fn world_writable(c: &Command) -> bool {
    let mode = match c.program.as_deref() {
        Some("chmod") => {
            let p = parse_args(&c.args, &[]);
            // A mode that starts with '-' (`chmod -w`) would read as options: take the first operand.
            c.args.iter().find(|a| looks_like_mode(&a.text)).or(p.operands.first().copied()).map(|a| a.text.clone())
        }
        Some("mkdir" | "install") => c.texts().enumerate().find_map(|(i, t)| {
            if t == "-m" {
                c.args.get(i + 1).map(|a| a.text.clone())
            } else {
                t.strip_prefix("--mode=").or_else(|| t.strip_prefix("-m").filter(|m| !m.is_empty())).map(str::to_owned)
            }
        }),
        _ => None,
    };
    mode.is_some_and(|m| mode_world_writable(&m))
}

fn looks_like_mode(t: &str) -> bool {
    (t.len() >= 3 && t.len() <= 5 && t.chars().all(|c| c.is_digit(8)))
        || t.split(',').all(|clause| {
            let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
            rest.starts_with(['+', '-', '=']) && rest[1..].chars().all(|c| "rwxXstugo".contains(c))
        }) && !t.is_empty()
            && t.contains(['+', '='])
}

pub(super) fn mode_world_writable(mode: &str) -> bool {
    if !mode.is_empty() && mode.chars().all(|c| c.is_digit(8)) {
        let others = mode.chars().last().and_then(|c| c.to_digit(8)).unwrap_or(0);
        return others & 2 != 0;
    }
    mode.split(',').any(|clause| {
        let who: String = clause.chars().take_while(|c| "ugoa".contains(*c)).collect();
        let rest = &clause[who.len()..];
        (who.contains('o') || who.contains('a'))
            && (rest.starts_with('+') || rest.starts_with('='))
            && rest.contains('w')
    })
}

/// Programs that only read, each with the options that would make it do more.
fn read_only_command(c: &Command) -> bool {
    let Some(prog) = c.program.as_deref() else { return false };
    if !c.via.is_empty() || c.extra_args || !command_writes(c).is_empty() {
        return false;
    }
    let p = parse_args(&c.args, &[]);
    match prog {
        "ls" | "pwd" | "cat" | "head" | "tail" | "wc" | "echo" | "printf" | "which" | "whoami" | "id" | "uname"
        | "file" | "stat" | "du" | "df" | "basename" | "dirname" | "realpath" | "readlink" | "true" | "false"
        | "grep" | "egrep" | "fgrep" | "jq" | "nl" | "cut" | "tr" | "diff" | "cmp" | "type" => true,
        "rg" => !p.long.iter().any(|l| *l == "pre" || l.starts_with("pre=")),
        "tree" => !p.short.contains(&'o'),
        "date" => !p.has('s', "set"),
        "find" => !c.texts().any(|t| {
            matches!(
                t,
                "-delete" | "-exec" | "-execdir" | "-ok" | "-okdir" | "-fprint" | "-fprint0" | "-fprintf" | "-fls"
            )
        }),
        "git" => {
            // `-c` can set a pager or diff tool that runs anything.
            if c.texts().any(|t| matches!(t, "-c" | "--config-env") || t.starts_with("--config-env=")) {
                return false;
            }
            match git_sub(c) {
                Some(("status" | "log" | "diff" | "show" | "rev-parse" | "ls-files" | "blame" | "describe", _)) => true,
                Some(("branch", args)) => {
                    let p = parse_args(args, &[]);
                    p.operands.is_empty()
                        && p.short.iter().all(|s| matches!(s, 'a' | 'r' | 'v' | 'l'))
                        && p.long.iter().all(|l| {
                            matches!(
                                *l,
                                "all" | "remotes" | "list" | "verbose" | "show-current" | "merged" | "no-merged"
                            ) || l.starts_with("sort")
                                || l.starts_with("format")
                                || l.starts_with("color")
                        })
                }
                _ => false,
            }
        }
        _ => false,
    }
}

pub(super) fn read_only(call: &Call, a: &Analysis) -> bool {
    !a.commands.is_empty()
        && a.unresolved.is_empty()
        && !a.syntax_error
        && a.functions.is_empty()
        && a.written_files().next().is_none()
        && a.commands.iter().all(read_only_command)
        && !shell_paths(call).any(|p| secret_kind(&p).is_some())
}
