//! `hooks install | uninstall | status`: our three hooks in Claude Code's settings.json.
//!
//! In: a settings file (user scope: `settings.json` in the first `CLAUDE_CONFIG_DIR` root,
//! else `~/.claude/settings.json`; project scope: `.claude/settings.json` in the current
//! folder; or `--settings FILE`). Out: the same file with our entries merged in or taken
//! out, and a backup `settings.json.bak-<unix seconds>` of the file as it was, written
//! before any change. Nothing is written when nothing changes. A symlinked settings file
//! is written through the link (its target changes; the link stays).
//!
//! Our entries, one group each under `hooks`:
//! `PreToolUse` and `PostToolUse` with `"matcher": "*"` (every tool), `UserPromptSubmit`
//! without a matcher (the event has none), each `{"type": "command", "command":
//! "<this executable> hook <event>", "timeout": N}`. A hook is ours when its command
//! names a `claude-sessions` executable followed by ` hook pre-tool-use` (or
//! `user-prompt-submit`, `post-tool-use`); everything else in the file is the user's and
//! is kept as it is, in its order: objects are read into an ordered tree (not
//! `serde_json::Value`, whose maps sort their keys) and written back with the indentation
//! the file had (Claude Code writes 2 spaces). A file written that way is byte-identical
//! after `install` then `uninstall`. A file in another style (keys on one line with
//! others, `\u` escapes where none are needed, numbers like `1.0`) is rewritten in
//! serde_json's style with its indentation; its backup keeps the original.
//!
//! Install is idempotent: entries that are already there, with the same command and
//! timeout, are left alone; ours with another command (the binary moved, another
//! `--approval-timeout`) are replaced in place of the old group. Uninstall removes only our
//! hooks, then the groups, event arrays and `hooks` object that became empty by that (one
//! that was already empty stays). A file install created holds `{}` after uninstall: the
//! file is left, not deleted (Claude Code reads an empty object as no settings).
//!
//! A settings file that is not JSON, or not an object, or whose `hooks` (or an event
//! under it) has an unexpected type, is an error naming the file, and the file is not
//! touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

mod tree;

use tree::Tree;

/// `hooks install | uninstall | status`.
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Add claude-sessions' PreToolUse, UserPromptSubmit and PostToolUse hooks to Claude Code's settings.json.
    Install(InstallArgs),
    /// Remove claude-sessions' hooks from Claude Code's settings.json (only those).
    Uninstall(WhereArgs),
    /// Say whether claude-sessions' hooks are installed, per scope.
    Status(StatusArgs),
}

/// Which settings file.
#[derive(Debug, Args, Clone)]
pub struct WhereArgs {
    /// User settings (`~/.claude/settings.json`, or in `CLAUDE_CONFIG_DIR`) or the project's
    /// (`.claude/settings.json` in the current folder).
    #[arg(long, value_enum, default_value_t = Scope::User)]
    pub scope: Scope,

    /// This settings file instead of the scope's.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
}

/// The flags of `hooks install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Which settings file.
    #[command(flatten)]
    pub at: WhereArgs,

    /// The approval timeout written into the PreToolUse command; its `timeout` in
    /// settings.json is this plus 30 s, so Claude Code never kills a hook that waits.
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "CLAUDE_SESSIONS_APPROVAL_TIMEOUT",
          value_parser = super::parse_duration)]
    pub approval_timeout: Duration,
}

/// The flags of `hooks status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this scope (default: both).
    #[arg(long, value_enum)]
    pub scope: Option<Scope>,

    /// Only this settings file.
    #[arg(long, value_name = "FILE", conflicts_with = "scope")]
    pub settings: Option<PathBuf>,
}

/// Where Claude Code reads settings from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// The user's settings, for every project.
    User,
    /// This project's shared settings (`.claude/settings.json` in the current folder).
    Project,
}

/// Our hooks: the settings event, the `hook` subcommand, whether it takes a matcher.
const OURS: [(&str, &str, bool); 3] = [
    ("PreToolUse", "pre-tool-use", true),
    ("UserPromptSubmit", "user-prompt-submit", false),
    ("PostToolUse", "post-tool-use", true),
];

/// The `timeout` (seconds) of the notes hooks: they take at most ~2.3 s.
const NOTES_TIMEOUT_S: u64 = 10;

/// Run `hooks …`; prints what it did.
pub fn run(cmd: HooksCommand) -> anyhow::Result<()> {
    match cmd {
        HooksCommand::Install(a) => {
            let path = settings_path(&a.at)?;
            let entries = our_entries(&exe_command()?, a.approval_timeout);
            match change(&path, |t| install(t, &entries))? {
                Some(backup) => println!("installed claude-sessions hooks in {}{}", path.display(), backed(&backup)),
                None => println!("claude-sessions hooks are already installed in {}", path.display()),
            }
        }
        HooksCommand::Uninstall(at) => {
            let path = settings_path(&at)?;
            if !path.exists() {
                println!("no settings file at {}: nothing to uninstall", path.display());
                return Ok(());
            }
            match change(&path, uninstall)? {
                Some(backup) => println!("removed claude-sessions hooks from {}{}", path.display(), backed(&backup)),
                None => println!("no claude-sessions hooks in {}", path.display()),
            }
        }
        HooksCommand::Status(a) => {
            let places: Vec<(String, PathBuf)> = match (&a.settings, a.scope) {
                (Some(p), _) => vec![("file".into(), p.clone())],
                (None, Some(s)) => vec![(scope_name(s), settings_path(&WhereArgs { scope: s, settings: None })?)],
                (None, None) => [Scope::User, Scope::Project]
                    .into_iter()
                    .map(|s| Ok((scope_name(s), settings_path(&WhereArgs { scope: s, settings: None })?)))
                    .collect::<anyhow::Result<_>>()?,
            };
            for (name, path) in places {
                println!("{name} ({}): {}", path.display(), status(&path)?);
            }
        }
    }
    Ok(())
}

fn scope_name(s: Scope) -> String {
    match s {
        Scope::User => "user".into(),
        Scope::Project => "project".into(),
    }
}

fn backed(backup: &Option<PathBuf>) -> String {
    backup.as_ref().map(|b| format!(" (backup: {})", b.display())).unwrap_or_default()
}

/// The settings file of a scope (or `--settings`).
fn settings_path(at: &WhereArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &at.settings {
        return Ok(p.clone());
    }
    match at.scope {
        Scope::Project => Ok(std::env::current_dir().context("no current folder")?.join(".claude/settings.json")),
        Scope::User => {
            let env = std::env::var("CLAUDE_CONFIG_DIR").ok();
            // Claude Code's own settings live in its config dir: the first root when the
            // variable names several (the other roots are where transcripts may be read).
            if let Some(root) = crate::source::discover::config_roots(env.as_deref(), None).into_iter().next() {
                return Ok(root.join("settings.json"));
            }
            let home = std::env::var_os("HOME").context("HOME is not set; pass --settings")?;
            Ok(PathBuf::from(home).join(".claude/settings.json"))
        }
    }
}

/// This executable, as a shell word for a settings command.
fn exe_command() -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let exe = exe.to_str().context("this executable's path is not UTF-8")?;
    Ok(shell_word(exe))
}

fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Our three groups, `(event, group)`, for the executable `exe`.
fn our_entries(exe: &str, approval_timeout: Duration) -> Vec<(&'static str, Tree)> {
    let approval = approval_timeout.as_secs().max(1);
    OURS.iter()
        .map(|&(event, sub, matcher)| {
            let (command, timeout) = if sub == "pre-tool-use" {
                (format!("{exe} hook {sub} --approval-timeout {approval}s"), approval + 30)
            } else {
                (format!("{exe} hook {sub}"), NOTES_TIMEOUT_S)
            };
            let hook = Tree::object(vec![
                ("type", Tree::string("command")),
                ("command", Tree::string(&command)),
                ("timeout", Tree::number(timeout)),
            ]);
            let mut group = Vec::new();
            if matcher {
                group.push(("matcher", Tree::string("*")));
            }
            group.push(("hooks", Tree::Array(vec![hook])));
            (event, Tree::object(group))
        })
        .collect()
}

/// Whether a hook object (`{"type": "command", "command": …}`) is ours for `sub`.
fn is_ours(hook: &Tree, sub: &str) -> bool {
    let Some(cmd) = hook.get("command").and_then(Tree::as_str) else { return false };
    let needle = format!(" hook {sub}");
    cmd.match_indices(&needle).any(|(i, _)| {
        let after = &cmd[i + needle.len()..];
        let exe = cmd[..i].trim_end_matches('\'');
        (after.is_empty() || after.starts_with(' '))
            && exe.rsplit('/').next().is_some_and(|b| b.starts_with("claude-sessions"))
    })
}

/// The event arrays under `hooks`, checked for their types.
fn hooks_of(settings: &mut Tree, create: bool) -> anyhow::Result<Option<&mut Vec<(String, Tree)>>> {
    let Tree::Object(root) = settings else { anyhow::bail!("the settings are not a JSON object") };
    if !root.iter().any(|(k, _)| k == "hooks") {
        if !create {
            return Ok(None);
        }
        root.push(("hooks".into(), Tree::Object(Vec::new())));
    }
    let hooks = root.iter_mut().find(|(k, _)| k == "hooks").map(|(_, v)| v).expect("just added");
    let Tree::Object(events) = hooks else { anyhow::bail!("\"hooks\" is not a JSON object") };
    for (event, list) in events.iter() {
        if OURS.iter().any(|(e, ..)| e == event) && !matches!(list, Tree::Array(_)) {
            anyhow::bail!("\"hooks\".{event:?} is not an array");
        }
    }
    Ok(Some(events))
}

/// Remove our hooks of `sub` from an event's groups; whether any was there.
fn remove_ours(groups: &mut Vec<Tree>, sub: &str) -> bool {
    let mut removed = false;
    groups.retain_mut(|g| {
        let Some(Tree::Array(hooks)) = g.get_mut("hooks") else { return true };
        let before = hooks.len();
        hooks.retain(|h| !is_ours(h, sub));
        let gone = hooks.len() != before;
        removed |= gone;
        !(gone && hooks.is_empty())
    });
    removed
}

/// Merge our groups in; whether anything changed.
fn install(settings: &mut Tree, entries: &[(&'static str, Tree)]) -> anyhow::Result<bool> {
    let events = hooks_of(settings, true)?.expect("created");
    let mut changed = false;
    for ((event, sub, _), (_, group)) in OURS.iter().zip(entries) {
        if !events.iter().any(|(k, _)| k == event) {
            events.push(((*event).into(), Tree::Array(Vec::new())));
        }
        let Some((_, Tree::Array(groups))) = events.iter_mut().find(|(k, _)| k == event) else { unreachable!() };
        if groups.iter().any(|g| g == group) && groups.iter().filter(|g| has_ours(g, sub)).count() == 1 {
            continue;
        }
        // Replace ours where the first one was, so a reinstall does not reorder the user's hooks.
        // Groups before the first with ours hold none of ours, so removing ours leaves
        // their places alone.
        let at = groups.iter().position(|g| has_ours(g, sub)).unwrap_or(groups.len());
        remove_ours(groups, sub);
        groups.insert(at.min(groups.len()), group.clone());
        changed = true;
    }
    Ok(changed)
}

fn has_ours(group: &Tree, sub: &str) -> bool {
    matches!(group.get("hooks"), Some(Tree::Array(h)) if h.iter().any(|h| is_ours(h, sub)))
}

/// Take our hooks out; whether anything changed.
fn uninstall(settings: &mut Tree) -> anyhow::Result<bool> {
    let Some(events) = hooks_of(settings, false)? else { return Ok(false) };
    let mut changed = false;
    for (event, sub, _) in OURS {
        let Some(i) = events.iter().position(|(k, _)| k == event) else { continue };
        let Tree::Array(groups) = &mut events[i].1 else { continue };
        if remove_ours(groups, sub) {
            changed = true;
            if groups.is_empty() {
                events.remove(i);
            }
        }
    }
    if changed && events.is_empty() {
        let Tree::Object(root) = settings else { unreachable!("checked by hooks_of") };
        root.retain(|(k, _)| k != "hooks");
    }
    Ok(changed)
}

/// `installed`, `not installed` or `partly installed (…)` for one file.
fn status(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        return Ok("not installed (no settings file)".into());
    }
    let (mut t, _) = read(path)?;
    let Some(events) = hooks_of(&mut t, false)? else { return Ok("not installed".into()) };
    let present: Vec<&str> = OURS
        .iter()
        .filter(|(event, sub, _)| {
            events.iter().any(|(k, v)| k == event && matches!(v, Tree::Array(g) if g.iter().any(|g| has_ours(g, sub))))
        })
        .map(|(e, ..)| *e)
        .collect();
    Ok(match present.len() {
        0 => "not installed".into(),
        n if n == OURS.len() => "installed".into(),
        _ => {
            let missing: Vec<&str> = OURS.iter().map(|(e, ..)| *e).filter(|e| !present.contains(e)).collect();
            format!("partly installed ({}; missing {})", present.join(", "), missing.join(", "))
        }
    })
}

/// A settings file, parsed, with its text (`None`: missing).
fn read(path: &Path) -> anyhow::Result<(Tree, Option<String>)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = Tree::parse(&text)
                .with_context(|| format!("{} is not valid JSON; it was not changed", path.display()))?;
            if !matches!(t, Tree::Object(_)) {
                anyhow::bail!("{} is not a JSON object; it was not changed", path.display());
            }
            Ok((t, Some(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Tree::Object(Vec::new()), None)),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Apply `edit` to the file at `path`; when it changed something, back the file up (if it
/// existed) and write it. `Some(backup)` when written, `None` when there was nothing to do.
fn change(
    path: &Path,
    edit: impl FnOnce(&mut Tree) -> anyhow::Result<bool>,
) -> anyhow::Result<Option<Option<PathBuf>>> {
    let (mut t, original) = read(path)?;
    if !edit(&mut t).with_context(|| format!("{}: it was not changed", path.display()))? {
        return Ok(None);
    }
    let text = match &original {
        Some(o) => t.write_like(o),
        None => t.write_like("{\n  \"\": 0\n}\n"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A settings file kept in a dotfiles repository is often a symlink: write its target,
    // so the link stays a link.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let backup = match &original {
        Some(o) => Some(backup(&target, o)?),
        None => None,
    };
    let tmp = target.with_extension(format!("json.tmp-{}", std::process::id()));
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(m) = std::fs::metadata(&target) {
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("cannot replace {}", target.display()))?;
    Ok(Some(backup))
}

/// Write `text` (the file as it was) to `<path>.bak-<unix seconds>` (`.bak-<s>-1`, … when
/// that name is taken: two changes in one second keep both backups).
fn backup(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "settings.json".into());
    for n in 0..100 {
        let suffix = if n == 0 { format!("bak-{secs}") } else { format!("bak-{secs}-{n}") };
        let candidate = path.with_file_name(format!("{name}.{suffix}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&candidate) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, text.as_bytes())
                    .with_context(|| format!("cannot write the backup {}", candidate.display()))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot write the backup {}", candidate.display())),
        }
    }
    anyhow::bail!("cannot find a free backup name next to {}", path.display())
}

#[cfg(test)]
mod tests;
