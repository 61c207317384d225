//! What a path is (a broad delete target, a disk, a secret, an `.env` file, a start-up
//! file), and which paths a call names or writes.

use super::Call;
use super::commands::git_sub;
use crate::rules::shell::{self, Arg, Base, Command, parse_args};
use crate::rules::tool::ToolCategory;

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
pub(super) fn is_broad(arg: &Arg, cwd: Option<&str>) -> bool {
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

/// Paths under `/dev/` that are disks or memory (not null, zero, the terminals…).
pub(super) fn is_disk(path: &str) -> bool {
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

/// What kind of secret a path names, if any (case-insensitive).
pub(super) fn secret_kind(path: &str) -> Option<&'static str> {
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
pub(super) fn is_env_file(path: &str) -> bool {
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
pub(super) fn is_startup_file(path: &str) -> bool {
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

/// Files a command writes: its redirections, and the output operands of the programs
/// that write files (`tee`, `cp`/`mv`/`install`/`ln` destinations, `dd of=`, `sed -i`,
/// `--output=…`, `curl -o`, `wget -O`).
pub(super) fn command_writes(c: &Command) -> Vec<String> {
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
pub(super) fn written<'c>(call: &'c Call) -> Box<dyn Iterator<Item = String> + 'c> {
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
pub(super) fn shell_paths<'c>(call: &'c Call) -> Box<dyn Iterator<Item = String> + 'c> {
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
