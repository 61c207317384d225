//! The built-in checks: what a tool call does, read from its parsed command or paths.
//!
//! In: a [`Call`] (the tool, its input, and for Bash the [`shell::Analysis`] of its
//! command). Out: whether a named check holds. Rules name a check with `check = "…"`;
//! each check knows the spellings of its danger (option clusters, long options, `--`,
//! wrappers, paths with `//`, `..`, `~` or `$HOME`), so the rules file only says how
//! serious a match is and what the hook answers.

use regex::Regex;
use std::sync::LazyLock;

use crate::rules::shell::{self, Analysis, Arg, Base, Command, parse_args};
use crate::transcript::tool::ToolCategory;

/// A tool call as the checks see it.
pub struct Call<'a> {
    pub tool: &'a str,
    pub category: ToolCategory,
    pub input: &'a serde_json::Value,
    /// The Bash command, read statically (shell tools only).
    pub shell: Option<Analysis>,
}

impl<'a> Call<'a> {
    pub fn new(tool: &'a str, input: &'a serde_json::Value) -> Call<'a> {
        let category = ToolCategory::of(tool);
        let shell = match (category, input.get("command").and_then(|c| c.as_str())) {
            (ToolCategory::Shell, Some(cmd)) => Some(shell::analyze(cmd)),
            _ => None,
        };
        Call { tool, category, input, shell }
    }

    /// The paths a file tool names (`file_path`, `notebook_path`, `path`, `pattern` of Glob).
    fn paths(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for k in ["file_path", "notebook_path", "path"] {
            if let Some(p) = self.input.get(k).and_then(|v| v.as_str()) {
                out.push(p);
            }
        }
        if self.tool == "Glob"
            && let Some(p) = self.input.get("pattern").and_then(|v| v.as_str())
        {
            out.push(p);
        }
        if let Some(edits) = self.input.get("edits").and_then(|v| v.as_array()) {
            for e in edits {
                if let Some(p) = e.get("file_path").and_then(|v| v.as_str()) {
                    out.push(p);
                }
            }
        }
        out
    }

    fn commands(&self) -> &[Command] {
        self.shell.as_ref().map_or(&[], |a| a.commands.as_slice())
    }
}

/// The checks a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Recursive delete of `/`, `~`, `$HOME` or a system folder; `find … -delete` on one.
    DeleteRoot,
    /// Any recursive forced delete, or `find … -delete` (`rm -rf /` is one too).
    DeleteRecursive,
    /// `dd` to a device, `mkfs`, `wipefs`, `shred` of a device, a redirection onto a disk.
    DiskWipe,
    /// A function that calls itself, defined and run on the line (`:(){ :|:& };:`).
    ForkBomb,
    /// `git push` with `-f`, `--force` or a `+ref`.
    ForcePush,
    /// `git push --force-with-lease`.
    ForcePushLease,
    /// `git reset --hard`, `clean -f`, `checkout -- .`, `restore`, `stash drop`, `branch -D`…
    HistoryRewrite,
    /// A download piped or substituted into a shell or interpreter.
    DownloadToShell,
    /// `sudo`, `doas`, `su`, `pkexec`, `run0`.
    PrivilegeEscalation,
    /// Reading, copying, encoding or sending private keys, credentials, `.netrc`, `.env*`.
    SecretAccess,
    /// Writing private keys or credential files.
    SecretWrite,
    /// Writing `.env` files.
    EnvWrite,
    /// Writing shell start-up files, `~/.ssh/authorized_keys`, git hooks, the crontab.
    StartupWrite,
    /// `DROP TABLE`/`DATABASE`/`SCHEMA`, `TRUNCATE`, `dropdb`, `FLUSHALL`.
    SqlDrop,
    /// World-writable permissions (`chmod 777`, `o+w`).
    WorldWritable,
    /// A program only known at run time, a shell string that is not static, a syntax error.
    Unresolved,
    /// Every command is read-only, names no secret and writes nothing.
    ReadOnly,
}

impl Check {
    pub const ALL: &[(&str, Check)] = &[
        ("delete-root", Check::DeleteRoot),
        ("delete-recursive", Check::DeleteRecursive),
        ("disk-wipe", Check::DiskWipe),
        ("fork-bomb", Check::ForkBomb),
        ("force-push", Check::ForcePush),
        ("force-push-lease", Check::ForcePushLease),
        ("history-rewrite", Check::HistoryRewrite),
        ("download-to-shell", Check::DownloadToShell),
        ("privilege-escalation", Check::PrivilegeEscalation),
        ("secret-access", Check::SecretAccess),
        ("secret-write", Check::SecretWrite),
        ("env-write", Check::EnvWrite),
        ("startup-write", Check::StartupWrite),
        ("sql-drop", Check::SqlDrop),
        ("world-writable", Check::WorldWritable),
        ("unresolved", Check::Unresolved),
        ("read-only", Check::ReadOnly),
    ];

    pub fn named(name: &str) -> Option<Check> {
        Check::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    pub fn holds(self, call: &Call) -> bool {
        let cmds = call.commands();
        match self {
            Check::DeleteRoot => cmds.iter().any(delete_root),
            Check::DeleteRecursive => cmds.iter().any(delete_recursive),
            Check::DiskWipe => {
                cmds.iter().any(disk_wipe)
                    || call.shell.as_ref().is_some_and(|a| a.written_files().any(|t| is_disk(&t.text)))
            }
            Check::ForkBomb => call
                .shell
                .as_ref()
                .is_some_and(|a| a.recursive_functions.iter().any(|f| cmds.iter().filter(|c| c.is(f)).count() >= 2)),
            Check::ForcePush => cmds.iter().any(|c| push_force(c) == Some(true)),
            Check::ForcePushLease => {
                cmds.iter().any(|c| push_force(c) == Some(false)) && !cmds.iter().any(|c| push_force(c) == Some(true))
            }
            Check::HistoryRewrite => cmds.iter().any(history_rewrite),
            Check::DownloadToShell => cmds.iter().any(download_to_shell),
            Check::PrivilegeEscalation => cmds
                .iter()
                .any(|c| c.via.iter().any(|v| is_privileged(v)) || c.program.as_deref().is_some_and(is_privileged)),
            Check::SecretAccess => match call.category {
                ToolCategory::Shell => shell_paths(call).any(|p| secret_kind(&p).is_some()),
                ToolCategory::FileRead => call.paths().iter().any(|p| secret_kind(p).is_some()),
                _ => false,
            },
            Check::SecretWrite => written(call).any(|p| secret_kind(&p).is_some() && !is_env_file(&p)),
            Check::EnvWrite => written(call).any(|p| is_env_file(&p)),
            Check::StartupWrite => written(call).any(|p| is_startup_file(&p)) || cmds.iter().any(startup_command),
            Check::SqlDrop => match call.category {
                ToolCategory::Shell => cmds.iter().any(sql_drop),
                ToolCategory::FileRead | ToolCategory::FileWrite => false,
                _ => SQL_DROP.is_match(&call.input.to_string()),
            },
            Check::WorldWritable => cmds.iter().any(world_writable),
            Check::Unresolved => call.shell.as_ref().is_some_and(|a| !a.unresolved.is_empty()),
            Check::ReadOnly => call.shell.as_ref().is_some_and(|a| read_only(call, a)),
        }
    }
}

/// Folders whose recursive delete breaks the machine or loses a user's data.
const SYSTEM: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "usr",
    "var",
    "snap",
    "mnt",
    "media",
    "nix",
    "system",
    "library",
    "users",
    "applications",
    "volumes",
    "private",
    "cores",
];

/// A path whose recursive delete is a disaster: `/`, a home, a system folder (or its
/// direct children), or a glob over any of them.
fn is_broad(arg: &Arg, cwd: Option<&str>) -> bool {
    // Relative to a directory an earlier literal `cd` chose (`cd / && rm -rf *`).
    let joined;
    let text = match cwd {
        Some(dir) if !arg.text.starts_with('/') && !arg.text.starts_with('~') => {
            joined = format!("{dir}/{}", arg.text);
            joined.as_str()
        }
        _ => arg.text.as_str(),
    };
    let text = text.strip_suffix("/*").map_or(text, |t| if t.is_empty() { "/" } else { t });
    let p = shell::normalize(&text.to_lowercase());
    let globbed = |s: &str| arg.glob && s.contains(['*', '?', '[']);
    match p.base {
        Base::Root => match p.parts.as_slice() {
            [] => true,
            [a] => globbed(a) || SYSTEM.contains(&a.as_str()),
            [a, b] => {
                SYSTEM.contains(&a.as_str())
                    && a != "tmp"
                    && (globbed(b)
                        || matches!(
                            a.as_str(),
                            "home" | "users" | "usr" | "etc" | "var" | "system" | "library" | "boot" | "root"
                        ))
                    && !(a == "var" && matches!(b.as_str(), "tmp" | "folders"))
            }
            _ => false,
        },
        Base::Home => match p.parts.as_slice() {
            [] => true,
            [a] => globbed(a),
            _ => false,
        },
        Base::Relative { .. } => false,
    }
}

fn delete_root(c: &Command) -> bool {
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

fn delete_recursive(c: &Command) -> bool {
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

/// Paths under `/dev/` that are disks or memory (not null, zero, the terminals…).
fn is_disk(path: &str) -> bool {
    let p = shell::normalize(path);
    if p.base != Base::Root || p.parts.first().map(String::as_str) != Some("dev") || p.parts.len() < 2 {
        return false;
    }
    let name = p.parts[1].as_str();
    !matches!(
        name,
        "null" | "zero" | "random" | "urandom" | "full" | "stdin" | "stdout" | "stderr" | "tty" | "fd" | "pts" | "shm"
    ) && !name.starts_with("tty")
}

fn disk_wipe(c: &Command) -> bool {
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
fn git_sub(c: &Command) -> Option<(&str, &[Arg])> {
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
fn push_force(c: &Command) -> Option<bool> {
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

fn history_rewrite(c: &Command) -> bool {
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

fn download_to_shell(c: &Command) -> bool {
    let Some(prog) = c.program.as_deref() else { return false };
    if !INTERPRETERS.contains(&prog) && !prog.starts_with("python3.") {
        return false;
    }
    let downloaded = |p: &String| DOWNLOADERS.contains(&p.as_str());
    c.fed_by.iter().any(downloaded) || c.args.iter().any(|a| a.sources.iter().any(downloaded))
}

fn is_privileged(p: &str) -> bool {
    matches!(p, "sudo" | "doas" | "su" | "pkexec" | "run0")
}

/// What kind of secret a path names, if any (case-insensitive).
pub fn secret_kind(path: &str) -> Option<&'static str> {
    let lower = path.to_lowercase();
    let lower = lower.trim_end_matches('/');
    let mut parts = lower.rsplit('/');
    let name = parts.next().unwrap_or("");
    let parent = parts.next().unwrap_or("");
    let public = name.ends_with(".pub")
        || matches!(name, "known_hosts" | "known_hosts.old" | "authorized_keys" | "authorized_keys2" | "config");
    if parent == ".ssh" && !public {
        return Some("SSH private key");
    }
    if ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"].iter().any(|k| name.starts_with(k)) && !name.ends_with(".pub") {
        return Some("SSH private key");
    }
    if is_env_file(lower) {
        return Some(".env file");
    }
    if matches!(
        name,
        ".netrc"
            | "_netrc"
            | ".npmrc"
            | ".pypirc"
            | ".git-credentials"
            | ".pgpass"
            | ".my.cnf"
            | ".vault-token"
            | "credentials.json"
            | "application_default_credentials.json"
            | "credentials.tfrc.json"
            | ".htpasswd"
    ) {
        return Some("credentials file");
    }
    if (parent == ".aws" && matches!(name, "credentials" | "config"))
        || (parent == ".kube" && name == "config")
        || (parent == ".docker" && name == "config.json")
        || (parent == ".cargo" && name.starts_with("credentials"))
        || (parent == "gh" && name == "hosts.yml")
        || lower.contains(".config/gcloud/")
        || lower.contains(".azure/")
        || lower.contains(".gnupg/")
    {
        return Some("cloud or tool credentials");
    }
    let ext = name.rsplit_once('.').map(|x| x.1).unwrap_or("");
    if matches!(ext, "pem" | "key" | "p12" | "pfx" | "jks" | "keystore" | "ppk") {
        return Some("private key or certificate");
    }
    None
}

/// `.env`, `.env.local`, `prod.env`, `.ENV`; not `.env.example`, `.env.sample`, `.env.template`.
fn is_env_file(path: &str) -> bool {
    let lower = path.to_lowercase();
    let name = lower.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if name.ends_with(".example") || name.ends_with(".sample") || name.ends_with(".template") || name.ends_with(".dist")
    {
        return false;
    }
    name == ".env"
        || name.starts_with(".env.")
        || name.starts_with(".env*")
        || (name.ends_with(".env") && name.len() > 4)
}

const STARTUP_FILES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".kshrc",
    ".cshrc",
    ".tcshrc",
    ".login",
    "config.fish",
];

/// Shell start-up files, `authorized_keys`, `~/.ssh/rc` and `config`, git hooks.
fn is_startup_file(path: &str) -> bool {
    let lower = path.to_lowercase();
    let p = shell::normalize(&lower);
    let name = p.parts.last().map(String::as_str).unwrap_or("");
    let parent = if p.parts.len() >= 2 { p.parts[p.parts.len() - 2].as_str() } else { "" };
    STARTUP_FILES.contains(&name)
        || (parent == ".ssh" && matches!(name, "authorized_keys" | "authorized_keys2" | "rc" | "config"))
        || (parent == "hooks" && p.parts.len() >= 3 && p.parts[p.parts.len() - 3] == ".git")
        || (p.base == Base::Root
            && p.parts.first().map(String::as_str) == Some("etc")
            && (matches!(name, "profile" | "bash.bashrc" | "zshrc" | "zshenv" | "environment")
                || parent == "profile.d"))
        || (parent == "conf.d" && lower.contains("fish/"))
}

/// `crontab` (except listing) and `git config core.hooksPath`.
fn startup_command(c: &Command) -> bool {
    if c.is("crontab") {
        return !c.texts().any(|t| t == "-l");
    }
    match git_sub(c) {
        Some(("config", args)) => args.iter().any(|a| a.text.eq_ignore_ascii_case("core.hookspath")),
        _ => false,
    }
}

/// Files a command writes: its redirections, and the output operands of the programs
/// that write files (`tee`, `cp`/`mv`/`install`/`ln` destinations, `dd of=`, `sed -i`,
/// `--output=…`, `curl -o`, `wget -O`).
fn command_writes(c: &Command) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let texts: Vec<&str> = c.texts().collect();
    for (i, t) in texts.iter().enumerate() {
        for prefix in ["--output=", "--output-file=", "--output-document=", "--log-file=", "of="] {
            if let Some(v) = t.strip_prefix(prefix) {
                out.push(v.to_owned());
            }
        }
        if matches!(*t, "--output" | "--output-document") && i + 1 < texts.len() {
            out.push(texts[i + 1].to_owned());
        }
    }
    let Some(prog) = c.program.as_deref() else { return out };
    match prog {
        "tee" | "truncate" | "touch" => {
            out.extend(parse_args(&c.args, &['s']).operands.iter().map(|a| a.text.clone()));
        }
        "cp" | "mv" | "install" | "ln" | "rsync" | "scp" => {
            let p = parse_args(&c.args, &['t', 'S', 'm', 'o', 'g', 'e']);
            let target = texts.iter().position(|t| *t == "-t").and_then(|i| texts.get(i + 1).map(|t| (*t).to_owned()));
            let target = target
                .or_else(|| p.long_values.iter().find(|(n, _)| *n == "target-directory").map(|(_, v)| (*v).to_owned()));
            match target {
                Some(t) => {
                    // Into a folder: each source lands there under its own name.
                    // Copying a key elsewhere is access (asked), not overwriting one.
                    for src in p.operands.iter().filter(|s| secret_kind(&s.text).is_none()) {
                        out.push(format!("{t}/{}", shell::basename(&src.text)));
                    }
                    out.push(t);
                }
                None if p.operands.len() >= 2 => {
                    let dest = &p.operands[p.operands.len() - 1].text;
                    out.push(dest.clone());
                    for src in p.operands[..p.operands.len() - 1].iter().filter(|s| secret_kind(&s.text).is_none()) {
                        out.push(format!("{dest}/{}", shell::basename(&src.text)));
                    }
                }
                None => {}
            }
        }
        "sed" | "perl" | "gawk" | "awk" => {
            let p = parse_args(&c.args, &['e', 'f']);
            if p.short.contains(&'i') || p.long.contains(&"in-place") {
                out.extend(p.operands.iter().map(|a| a.text.clone()));
            }
        }
        "curl" => {
            out.extend(values_after(&c.args, "-o"));
            let glued = c.texts().filter(|t| t.starts_with("-o") && t.len() > 2).map(|t| t[2..].to_owned());
            out.extend(glued.collect::<Vec<_>>());
        }
        "wget" => out.extend(values_after(&c.args, "-O")),
        _ => {
            if let Some(("diff" | "log" | "show" | "format-patch", args)) = git_sub(c) {
                out.extend(values_after(args, "-o"));
            }
        }
    }
    out
}

/// The word after each `flag` in `args`.
fn values_after(args: &[Arg], flag: &str) -> Vec<String> {
    args.windows(2).filter(|w| w[0].text == flag).map(|w| w[1].text.clone()).collect()
}

/// Every file a call writes: a file tool's path, or a shell command's writes.
fn written<'c>(call: &'c Call) -> Box<dyn Iterator<Item = String> + 'c> {
    match (call.category, &call.shell) {
        (ToolCategory::FileWrite, _) => Box::new(call.paths().into_iter().map(str::to_owned)),
        (ToolCategory::Shell, Some(a)) => {
            Box::new(a.written_files().map(|t| t.text.clone()).chain(a.commands.iter().flat_map(command_writes)))
        }
        _ => Box::new(std::iter::empty()),
    }
}

/// Every path-like piece of a shell command: arguments (and `name=value`/`@file`
/// values inside them) and redirection targets.
fn shell_paths<'c>(call: &'c Call) -> Box<dyn Iterator<Item = String> + 'c> {
    let Some(a) = &call.shell else { return Box::new(std::iter::empty()) };
    let args = a.commands.iter().flat_map(|c| c.args.iter()).map(|a| a.text.as_str());
    let redirects = a.redirects.iter().map(|r| r.target.text.as_str());
    Box::new(args.chain(redirects).flat_map(|t| {
        let mut pieces = vec![t.to_owned()];
        for sep in ['=', ':', ','] {
            if let Some((_, v)) = t.split_once(sep) {
                pieces.push(v.to_owned());
            }
        }
        pieces.into_iter().map(|p| p.trim_start_matches(['@', '<']).to_owned()).collect::<Vec<_>>()
    }))
}

static SQL_DROP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(drop\s+(table|database|schema|keyspace)|truncate\s+(table\s+)?[a-z_`\x22\[]|dropdatabase\s*\(|flushall|flushdb)")
        .expect("valid regex")
});

/// Programs that only print or search text: SQL in their arguments is not run.
const TEXT_TOOLS: &[&str] = &[
    "echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "git", "cat", "less", "more", "man", "head", "tail",
    "wc", "sed", "awk", "jq", "yq", "gh",
];

fn sql_drop(c: &Command) -> bool {
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

fn world_writable(c: &Command) -> bool {
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

fn mode_world_writable(mode: &str) -> bool {
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

fn read_only(call: &Call, a: &Analysis) -> bool {
    !a.commands.is_empty()
        && a.unresolved.is_empty()
        && !a.syntax_error
        && a.functions.is_empty()
        && a.written_files().next().is_none()
        && a.commands.iter().all(read_only_command)
        && !shell_paths(call).any(|p| secret_kind(&p).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(check: Check, cmd: &str) -> bool {
        let input = serde_json::json!({ "command": cmd });
        check.holds(&Call::new("Bash", &input))
    }

    #[test]
    fn broad_paths() {
        let lit = |t: &str| Arg { text: t.into(), ..Arg::default() };
        for p in ["/", "//", "/.", "/tmp/..", "~", "~/", "~/..", "/etc", "/usr/lib", "/home/bob", "/Users/bob", "/var"]
        {
            assert!(is_broad(&lit(p), None), "{p}");
        }
        for p in ["/tmp", "/tmp/x", "./build", "~/project/target", "/var/tmp/x", "/home/bob/project", "build"] {
            assert!(!is_broad(&lit(p), None), "{p}");
        }
        assert!(is_broad(&Arg { text: "/*".into(), glob: true, ..Arg::default() }, None));
        assert!(is_broad(&Arg { text: "~/*".into(), glob: true, ..Arg::default() }, None));
        assert!(is_broad(&Arg { text: "*".into(), glob: true, ..Arg::default() }, Some("/")));
        assert!(is_broad(&lit("."), Some("~")));
        assert!(!is_broad(&lit("build"), Some("~/project")));
    }

    #[test]
    fn modes() {
        for m in ["777", "0777", "1777", "666", "o+w", "a+rwx", "go+w", "u+x,o+w", "o=rwx"] {
            assert!(mode_world_writable(m), "{m}");
        }
        for m in ["755", "644", "u+w", "g+w", "o-w", "+x", "600"] {
            assert!(!mode_world_writable(m), "{m}");
        }
    }

    #[test]
    fn secrets() {
        for p in [
            "~/.ssh/id_rsa",
            "/home/u/.ssh/id_ed25519",
            "~/.aws/credentials",
            "~/.netrc",
            ".env",
            ".ENV",
            ".env.local",
            "prod.env",
            "server.key",
            "~/.ssh/*",
            "~/.kube/config",
        ] {
            assert!(secret_kind(p).is_some(), "{p}");
        }
        for p in [
            "~/.ssh/id_rsa.pub",
            "~/.ssh/known_hosts",
            ".env.example",
            "src/env.rs",
            "README.md",
            "~/.ssh",
            "environment.ts",
        ] {
            assert!(secret_kind(p).is_none(), "{p}");
        }
    }

    #[test]
    fn each_check_on_a_plain_spelling() {
        assert!(holds(Check::DeleteRoot, "rm -rf /"));
        assert!(holds(Check::DeleteRoot, "rm -r /etc"));
        assert!(!holds(Check::DeleteRoot, "rm -rf ./build"));
        assert!(holds(Check::DeleteRecursive, "rm -rf ./build"));
        assert!(holds(Check::DeleteRoot, "find / -delete"));
        assert!(holds(Check::DiskWipe, "dd if=/dev/zero of=/dev/sda bs=1M"));
        assert!(!holds(Check::DiskWipe, "dd if=/dev/zero of=/dev/null"));
        assert!(holds(Check::ForkBomb, ":(){ :|:& };:"));
        assert!(holds(Check::ForcePush, "git push -f"));
        assert!(holds(Check::ForcePushLease, "git push --force-with-lease"));
        assert!(!holds(Check::ForcePush, "git push --force-with-lease"));
        assert!(holds(Check::HistoryRewrite, "git reset --hard HEAD~1"));
        assert!(holds(Check::DownloadToShell, "curl -s x | sh"));
        assert!(holds(Check::PrivilegeEscalation, "sudo ls"));
        assert!(holds(Check::SecretAccess, "cat ~/.ssh/id_rsa"));
        assert!(holds(Check::StartupWrite, "echo x >> ~/.bashrc"));
        assert!(holds(Check::StartupWrite, "git diff --output=~/.bashrc"));
        assert!(holds(Check::SqlDrop, "psql -c 'DROP TABLE users'"));
        assert!(holds(Check::WorldWritable, "chmod -R 777 ."));
        assert!(holds(Check::Unresolved, "$CMD x"));
        assert!(holds(Check::ReadOnly, "ls -la"));
        assert!(holds(Check::ReadOnly, "cat a | grep b | head -5"));
        assert!(!holds(Check::ReadOnly, "echo hi\nrm -rf /"));
        assert!(!holds(Check::ReadOnly, "cat ~/.ssh/id_rsa"));
        assert!(!holds(Check::ReadOnly, "echo x > out.txt"));
    }
}
