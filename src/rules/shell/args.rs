//! Reading what a command was given, for the checks: options and operands the way
//! most programs split them, and paths resolved without touching the file system.

use super::Arg;

/// The last path component (`/usr/bin/rm` → `rm`).
pub(crate) fn basename(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => &t[i + 1..],
        None if t.is_empty() && !p.is_empty() => "/",
        None => t,
    }
}

/// Options and operands of a command, with short clusters split and `--` honoured.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// Short options by letter (`-rf` gives `r` and `f`; a value after a letter that
    /// takes one is dropped).
    pub short: Vec<char>,
    /// Long options by name without dashes (`--force=x` gives `force`).
    pub long: Vec<&'a str>,
    /// `--name=value` values, by name.
    pub long_values: Vec<(&'a str, &'a str)>,
    /// The other arguments (words not starting with `-`, `-` alone, everything after
    /// `--`), in order.
    pub operands: Vec<&'a Arg>,
}

impl Parsed<'_> {
    /// Whether the option was given in either spelling (`-f` or `--force`).
    pub fn has(&self, short: char, long: &str) -> bool {
        self.short.contains(&short) || self.long.contains(&long)
    }
}

/// Split `args` into options and operands. `with_value` names short options that take
/// the next word as their value (`-n 5`): that word is not an operand.
pub(crate) fn parse_args<'a>(args: &'a [Arg], with_value: &[char]) -> Parsed<'a> {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let a = &args[i];
        let t = a.text.as_str();
        i += 1;
        if options_done || !t.starts_with('-') || t == "-" || a.dynamic && !t.starts_with('-') {
            p.operands.push(a);
            continue;
        }
        if t == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = t.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => {
                    p.long.push(n);
                    p.long_values.push((n, v));
                }
                None => p.long.push(long),
            }
            continue;
        }
        for (k, c) in t[1..].char_indices() {
            p.short.push(c);
            if with_value.contains(&c) {
                // The value is the rest of the cluster, or the next word.
                if k + c.len_utf8() == t.len() - 1 {
                    i += 1;
                }
                break;
            }
        }
    }
    p
}

/// A path read statically: where it starts and its components after `.`/`..`/`//` are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormPath {
    /// Where the path starts.
    pub base: Base,
    /// Its components after the base, `.`, `..` and empty ones resolved; never `..`
    /// (climbing out of a relative base is told by [`Base::Relative`]).
    pub parts: Vec<String>,
}

/// Where a normalised path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// `/…`
    Root,
    /// `~…` or `$HOME…` (a named user's home too).
    Home,
    /// Relative to a working directory not known here; `escapes` when `..` climbs out of it.
    Relative { escapes: bool },
}

/// Resolve `//`, `/.`, `..`, `~` and `~user` in a path (no file system access).
pub(crate) fn normalize(path: &str) -> NormPath {
    let (mut base, rest) = if let Some(r) = path.strip_prefix('~') {
        let r = r.split_once('/').map_or("", |x| x.1);
        (Base::Home, r)
    } else if let Some(r) = path.strip_prefix('/') {
        (Base::Root, r)
    } else {
        (Base::Relative { escapes: false }, path)
    };
    let mut parts: Vec<String> = Vec::new();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    match base {
                        Base::Root => {}
                        // Above a home folder: /home or /Users, a system folder.
                        Base::Home => {
                            base = Base::Root;
                            parts.push("home".into());
                        }
                        Base::Relative { .. } => base = Base::Relative { escapes: true },
                    }
                }
            }
            c => parts.push(c.to_owned()),
        }
    }
    NormPath { base, parts }
}
