//! Static expansion of one word into the arguments it becomes: quotes, escapes,
//! `$'…'`, `~`, variables assigned earlier on the line, `$(echo literal)` and brace
//! lists; whatever is only known at run time is marked dynamic.

use brush_parser::word::{Parameter, ParameterExpr, TildeExpr, WordPiece, WordPieceWithSource};

use super::parse::{guarded, options};
use super::{Arg, Command, Walker};

/// Alternatives one brace list may expand to.
const MAX_BRACE: usize = 64;

impl Walker {
    /// Expand one word statically into the arguments it becomes.
    pub(super) fn word(&mut self, raw: &str) -> Vec<Arg> {
        let pieces = match guarded(|| brush_parser::word::parse(raw, &options())) {
            Some(Ok(p)) => p,
            _ => return vec![Arg { text: raw.to_owned(), dynamic: true, ..Arg::default() }],
        };
        let mut acc = Acc::default();
        for p in pieces {
            self.piece(p, false, &mut acc);
        }
        acc.finish()
    }

    pub(super) fn piece(&mut self, p: WordPieceWithSource, quoted: bool, acc: &mut Acc) {
        match p.piece {
            WordPiece::Text(s) => acc.push(&s, quoted),
            WordPiece::SingleQuotedText(s) => acc.push(&s, true),
            WordPiece::AnsiCQuotedText(s) => match ansi_c(&s) {
                Some(t) => acc.push(&t, true),
                None => acc.unknown(&s),
            },
            WordPiece::DoubleQuotedSequence(ps) | WordPiece::GettextDoubleQuotedSequence(ps) => {
                acc.quoted_empty = true;
                for p in ps {
                    self.piece(p, true, acc);
                }
            }
            WordPiece::TildeExpansion(t) => match t {
                TildeExpr::Home => {
                    let home = match self.vars.get("HOME") {
                        Some(Some(h)) => h.clone(),
                        Some(None) => return acc.unknown("~"),
                        None => "~".to_owned(),
                    };
                    acc.push(&home, true)
                }
                TildeExpr::UserHome(u) if u == "root" => acc.push("/root", true),
                TildeExpr::UserHome(u) => acc.push(&format!("~{u}"), true),
                _ => acc.unknown("~"),
            },
            WordPiece::ParameterExpansion(e) => {
                let name = match &e {
                    ParameterExpr::Parameter { parameter: Parameter::Named(n), indirect: false } => Some(n.as_str()),
                    ParameterExpr::UseDefaultValues { parameter: Parameter::Named(n), indirect: false, .. }
                        if n == "HOME" =>
                    {
                        Some(n.as_str())
                    }
                    _ => None,
                };
                let value = match name {
                    Some(n) => match self.vars.get(n) {
                        Some(v) => v.clone(),
                        None if n == "HOME" => Some("~".to_owned()),
                        None => None,
                    },
                    None => None,
                };
                match (value, name) {
                    (Some(v), _) if quoted => acc.push(&v, true),
                    // Unquoted: split on white space, and globs in the value expand.
                    (Some(v), _) => {
                        let split = v.split_whitespace().collect::<Vec<_>>().join("\0");
                        acc.push(&split, false)
                    }
                    (None, Some(n)) => acc.unknown(&format!("${n}")),
                    (None, None) => acc.unknown("$?"),
                }
            }
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                let before = self.out.commands.len();
                self.script(&s, &[]);
                let ran = &self.out.commands[before..];
                let programs: Vec<String> =
                    ran.iter().map(|c| c.program.clone().unwrap_or_else(|| "?".into())).collect();
                acc.sources.extend(programs);
                match static_output(ran) {
                    Some(out) if quoted => acc.push(&out, true),
                    Some(out) => acc.push(&out.split_whitespace().collect::<Vec<_>>().join("\0"), false),
                    None => acc.unknown("$(…)"),
                }
            }
            WordPiece::EscapeSequence(s) => {
                let mut chars = s.chars();
                let _backslash = chars.next();
                let rest: String = chars.collect();
                if rest == "\n" {
                    return;
                }
                if quoted && !matches!(rest.as_str(), "$" | "`" | "\"" | "\\") {
                    acc.push(&s, true)
                } else {
                    acc.push(&rest, true)
                }
            }
            WordPiece::ArithmeticExpression(e) => {
                // `$(( $(cmd) ))` runs cmd.
                let inner = self.word(&e.value);
                acc.sources.extend(inner.into_iter().flat_map(|a| a.sources));
                acc.unknown("$((…))")
            }
        }
    }
}

/// What a substitution prints, when it is `echo` or `printf` of literals.
pub(super) fn static_output(ran: &[Command]) -> Option<String> {
    let [c] = ran else { return None };
    if c.args.iter().any(|a| a.dynamic || a.glob) || !c.redirects.is_empty() || !c.via.is_empty() {
        return None;
    }
    let texts: Vec<&str> = c.texts().collect();
    match c.program.as_deref()? {
        "echo" => {
            let words: Vec<&str> = texts.iter().copied().skip_while(|t| matches!(*t, "-n" | "-e" | "-E")).collect();
            Some(words.join(" "))
        }
        "printf" => match texts.as_slice() {
            [fmt] if !fmt.contains('%') && !fmt.contains('\\') => Some((*fmt).to_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Decode the body of `$'…'`.
fn ansi_c(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            continue;
        }
        let (radix, max) = match e {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 2),
            _ => return None,
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < max + usize::from(radix == 8) {
            match chars.peek() {
                Some(d) if d.is_digit(radix) => {
                    digits.push(*d);
                    chars.next();
                }
                _ => break,
            }
        }
        let n = u32::from_str_radix(&digits, radix).ok()?;
        out.push(char::from_u32(n)?);
    }
    Some(out)
}

/// Builds one word's arguments piece by piece.
#[derive(Default)]
pub(super) struct Acc {
    /// (text, quoted) runs.
    runs: Vec<(String, bool)>,
    dynamic: bool,
    sources: Vec<String>,
    /// `""` makes an argument even when empty.
    quoted_empty: bool,
}

impl Acc {
    pub(super) fn push(&mut self, s: &str, quoted: bool) {
        if quoted {
            self.quoted_empty = true;
        }
        self.runs.push((s.to_owned(), quoted));
    }

    fn unknown(&mut self, shown: &str) {
        self.dynamic = true;
        self.runs.push((shown.to_owned(), true));
    }

    pub(super) fn text(&self) -> String {
        self.runs.iter().map(|(s, _)| s.replace('\0', " ")).collect()
    }

    /// Brace lists, then splitting of unquoted expansions.
    fn finish(self) -> Vec<Arg> {
        let mut words: Vec<Vec<(String, bool)>> = vec![self.runs];
        // Expand one unquoted `{a,b}` at a time, up to a bound.
        let mut expanded = Vec::new();
        while let Some(w) = words.pop() {
            match expand_brace(&w) {
                Some(alts) if expanded.len() + words.len() + alts.len() <= MAX_BRACE => words.extend(alts),
                _ => expanded.push(w),
            }
        }
        expanded.reverse();
        let mut out = Vec::new();
        for runs in expanded {
            let glob = runs.iter().any(|(s, q)| !q && s.contains(['*', '?', '[']));
            let text: String = runs.iter().map(|(s, _)| s.as_str()).collect();
            if text.is_empty() && !self.quoted_empty {
                continue;
            }
            for part in text.split('\0') {
                if part.is_empty() && text.contains('\0') {
                    continue;
                }
                out.push(Arg { text: part.to_owned(), dynamic: self.dynamic, glob, sources: self.sources.clone() });
            }
        }
        out
    }
}

/// The alternatives of the first unquoted `{x,y}` (no nesting), if any.
fn expand_brace(runs: &[(String, bool)]) -> Option<Vec<Vec<(String, bool)>>> {
    for (i, (s, quoted)) in runs.iter().enumerate() {
        if *quoted {
            continue;
        }
        let Some(open) = s.find('{') else { continue };
        let Some(len) = s[open..].find('}') else { continue };
        let inner = &s[open + 1..open + len];
        if !inner.contains(',') || inner.contains('{') {
            continue;
        }
        let (pre, post) = (&s[..open], &s[open + len + 1..]);
        return Some(
            inner
                .split(',')
                .map(|alt| {
                    let mut w = runs[..i].to_vec();
                    w.push((format!("{pre}{alt}{post}"), false));
                    w.extend_from_slice(&runs[i + 1..]);
                    w
                })
                .collect(),
        );
    }
    None
}
