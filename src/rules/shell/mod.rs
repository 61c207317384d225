//! What a Bash command line would run, read statically for the rules.
//!
//! In: the `command` string of a Bash tool call. Out: an [`Analysis`]: every
//! simple command it can run, flattened out of lists, pipelines, subshells,
//! compound commands, function bodies, command and process substitutions,
//! `bash -c` / `sh -c` / `eval` strings (recursively) and wrappers such as
//! `sudo`, `env`, `xargs` or `timeout`; each with its program by basename
//! (quotes and backslashes removed), its arguments as the shell would pass
//! them, and what feeds its input. Redirections are collected as reads and
//! writes. Whatever cannot be known without running anything (a variable or
//! a substitution in program position, a `bash -c "$X"`) is listed as
//! unresolved, so that a rule can ask instead of allowing.
//!
//! The parser is brush-parser's (the grammar of the brush shell). Expansion
//! is done only as far as it is static: quotes, escapes, `$'…'`, `~` and
//! `$HOME`, literal assignments made earlier in the same command line,
//! `$(echo literal)`, and brace lists such as `{a,b}`. Nothing is executed.
//!
//! Parts: `parse` runs the parser within bounds (nesting, panics); `walk` goes
//! through its syntax tree; `word` expands one word into arguments; `invoke`
//! records a simple command and the strings it runs; `wrappers` is the table of
//! programs that run another (`sudo`, `env`, `xargs`, `bash -c`…); `args` reads
//! options, operands and paths for the checks.

use std::collections::HashMap;

mod args;
mod invoke;
mod parse;
mod walk;
mod word;
mod wrappers;

#[cfg(test)]
pub(crate) use args::NormPath;
pub(crate) use args::{Base, basename, normalize, parse_args};

/// Command lines longer than this many bytes are not parsed: the analysis says so
/// (unresolved, and a syntax error), which a rule treats as unknown.
pub const MAX_INPUT: usize = 256 << 10;
/// The stack the reader runs on (touched only as deep as it goes).
const STACK: usize = 64 << 20;

/// One argument as the program would receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arg {
    /// The text with quotes and escapes removed (an unknown part is left as written).
    pub text: String,
    /// Part of it is only known at run time (a variable, a substitution).
    pub dynamic: bool,
    /// It has an unquoted `*`, `?` or `[`: the shell expands it to matching names.
    pub glob: bool,
    /// Programs run to produce it (command and process substitutions).
    pub sources: Vec<String>,
}

impl Arg {
    #[cfg(test)]
    fn literal(text: &str) -> Arg {
        Arg { text: text.to_owned(), ..Arg::default() }
    }
}

/// A redirection of a command (or of a compound command) to or from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// It may write the file (`>`, `>>`, `<>`, `>|`, `&>`, and `>&`/`<&` onto a name
    /// rather than a descriptor); `false`: it only reads it (`<`).
    pub write: bool,
    /// The file, expanded as an argument would be.
    pub target: Arg,
}

/// One simple command, unwrapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// The program, lower-cased basename (`/bin/RM` → `rm`); `None` when it is only known at run time.
    pub program: Option<String>,
    /// Its arguments (after the program; wrappers removed).
    pub args: Vec<Arg>,
    /// Wrappers it runs under, outermost first (`sudo`, `env`, `xargs`, `bash -c` as `bash`…).
    pub via: Vec<String>,
    /// Redirections written on this command.
    pub redirects: Vec<Redirect>,
    /// Programs whose output can reach its standard input (earlier pipeline stages).
    pub fed_by: Vec<String>,
    /// Text given on standard input by a here-document or here-string.
    pub stdin_text: Option<String>,
    /// The words as written, unquoted and joined with spaces (for user regexes).
    pub text: String,
    /// `xargs` and the like add arguments only known at run time.
    pub extra_args: bool,
    /// The working directory, when an earlier `cd` on the line set it to a literal path.
    pub cwd: Option<String>,
}

impl Command {
    /// Whether the program is `name` (a lower-case basename: `c.is("rm")`).
    pub fn is(&self, name: &str) -> bool {
        self.program.as_deref() == Some(name)
    }

    /// Every argument's text.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(|a| a.text.as_str())
    }
}

/// What a command line runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Every simple command the line can run, in the order the reading met them (a
    /// substitution before the command it is part of); a wrapped command once, with its
    /// wrappers in `via`; a `bash -c`/`eval` both as itself and as what its string runs.
    pub commands: Vec<Command>,
    /// Why parts of it are only known at run time (empty: all static).
    pub unresolved: Vec<String>,
    /// Redirection targets of every command, compound ones included.
    pub redirects: Vec<Redirect>,
    /// Functions that call themselves (fork bombs are such).
    pub recursive_functions: Vec<String>,
    /// Functions defined on the line.
    pub functions: Vec<String>,
    /// Parts of the line did not parse (what did parse is analysed).
    pub syntax_error: bool,
}

impl Analysis {
    /// Redirection targets written to, `/dev/null` and friends left out.
    pub fn written_files(&self) -> impl Iterator<Item = &Arg> {
        self.redirects.iter().filter(|r| r.write && !is_harmless_device(&r.target.text)).map(|r| &r.target)
    }
}

/// Devices that writing to changes nothing on disk.
fn is_harmless_device(path: &str) -> bool {
    matches!(path, "/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/tty" | "-") || path.starts_with("/dev/fd/")
}

/// Read `command` statically, on a thread of its own with a large stack: a panic or an
/// overflow there must not end the caller (a hook that dies lets the call through).
pub fn analyze(command: &str) -> Analysis {
    let owned = command.to_owned();
    let reader = std::thread::Builder::new().name("shell-reader".into()).stack_size(STACK);
    match reader.spawn(move || analyze_here(&owned)) {
        Ok(h) => h.join().unwrap_or_else(|_| Analysis {
            unresolved: vec!["the reader failed".into()],
            syntax_error: true,
            ..Analysis::default()
        }),
        Err(_) => analyze_here(command),
    }
}

/// [`analyze`] on the calling thread.
fn analyze_here(command: &str) -> Analysis {
    let mut w = Walker::default();
    if command.len() > MAX_INPUT {
        w.out.unresolved.push(format!("command line over {} KiB", MAX_INPUT >> 10));
        w.out.syntax_error = true;
        return w.out;
    }
    w.script(command, &[]);
    w.out
}

/// One reading of a command line: what it found so far, and what the line has set for
/// the commands after (variables, working directory). Its methods are spread over the
/// submodules (`walk`, `word`, `invoke`).
#[derive(Default)]
struct Walker {
    /// The result being built.
    out: Analysis,
    /// Literal values of variables assigned earlier on the line (`None`: assigned, value unknown).
    vars: HashMap<String, Option<String>>,
    /// How many scripts (`bash -c` strings, substitutions) deep the walk is.
    depth: usize,
    /// Stack of the functions being defined (to spot recursion).
    defining: Vec<String>,
    /// Working directory set by a literal `cd` earlier on the line.
    cwd: Option<String>,
    /// What the previous pipeline stage prints, when it is `echo`/`printf` of literals.
    piped_text: Option<String>,
}

#[cfg(test)]
mod tests;
