//! Recording a simple command: through the wrappers it runs under to the program
//! itself, then into the strings that program runs (a shell's script on its input,
//! `find -exec`, `alias`, `trap`, `git -c` settings) and the directory a `cd` sets.

use super::args::{basename, parse_args};
use super::wrappers::{SHELLS, Unwrap, unwrap};
use super::{Arg, Command, Walker};

impl Walker {
    /// Record a command, looking through wrappers to the program they run.
    pub(super) fn invoke(&mut self, mut words: Vec<Arg>, mut cmd: Command) {
        let mut via: Vec<String> = Vec::new();
        loop {
            if words.is_empty() {
                // A wrapper with nothing to run (`sudo -s`, `env`): the wrapper is the command.
                match via.pop() {
                    Some(w) => {
                        cmd.program = Some(w);
                        cmd.args = Vec::new();
                    }
                    None => return,
                }
                break;
            }
            let first = words.remove(0);
            if first.dynamic || first.text.is_empty() {
                self.out.unresolved.push("a variable or substitution in program position".into());
                cmd.program = None;
                cmd.args = words;
                break;
            }
            if first.glob || first.text.contains('{') {
                self.out.unresolved.push("a glob or brace in program position".into());
                cmd.program = None;
                cmd.args = words;
                break;
            }
            let program = basename(&first.text).to_lowercase();
            let before_unwrap = words.clone();
            if self.defining.last() == Some(&program) {
                cmd.program = Some(program);
                cmd.args = words;
                break;
            }
            match unwrap(&program, &mut words) {
                Unwrap::Run => {
                    via.push(program);
                }
                Unwrap::Stop => {
                    cmd.program = Some(program);
                    cmd.args = words;
                    break;
                }
                Unwrap::Extra => {
                    via.push(program);
                    cmd.extra_args = true;
                }
                Unwrap::Script(s) => {
                    let mut this = cmd.clone();
                    this.program = Some(program.clone());
                    // The string itself is an argument: what made it (`$(curl …)`) is seen.
                    this.args = before_unwrap;
                    this.via = via.clone();
                    let fed = this.fed_by.clone();
                    self.out.commands.push(this);
                    let before = self.out.commands.len();
                    match s {
                        Some(text) => self.script(&text, &fed),
                        None => self.out.unresolved.push(format!("{program} runs a string only known at run time")),
                    }
                    // What the string runs, runs under the same wrappers (`sudo bash -c '…'`).
                    let mut outer = via;
                    outer.push(program);
                    for c in &mut self.out.commands[before..] {
                        c.via.splice(0..0, outer.iter().cloned());
                    }
                    return;
                }
            }
        }
        cmd.via = via;
        cmd.cwd = self.cwd.clone();
        let piped = self.piped_text.take();
        self.out.commands.push(cmd.clone());
        self.strings_it_runs(&cmd, piped);
    }

    /// Walk a string a command runs as a script, under that command's wrappers.
    fn nested_script(&mut self, text: &str, fed_by: &[String], via: Vec<String>) {
        let before = self.out.commands.len();
        self.script(text, fed_by);
        for c in &mut self.out.commands[before..] {
            c.via.splice(0..0, via.iter().cloned());
        }
    }

    /// Commands hidden in a recorded command's arguments or input: a shell reading its
    /// script from a here-document or a pipe, `find -exec`, `alias`/`trap` strings,
    /// `git -c` settings that run commands; and the working directory a `cd` sets.
    fn strings_it_runs(&mut self, cmd: &Command, piped: Option<String>) {
        let Some(program) = cmd.program.as_deref() else { return };
        let mut via = cmd.via.clone();
        via.push(program.to_owned());
        match program {
            "cd" | "pushd" => {
                let target = cmd.args.iter().find(|a| !a.text.starts_with('-'));
                self.cwd = match target {
                    None => Some("~".into()),
                    Some(a) if a.dynamic => None,
                    Some(a) if a.text.starts_with('/') || a.text.starts_with('~') => Some(a.text.clone()),
                    Some(a) => self.cwd.as_ref().map(|c| format!("{c}/{}", a.text)),
                };
            }
            p if SHELLS.contains(&p) => {
                let operands = parse_args(&cmd.args, &['o', 'O']).operands;
                let reads_stdin = operands.is_empty()
                    || operands[0].text == "-"
                    || cmd
                        .args
                        .iter()
                        .any(|a| a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('s'));
                if !reads_stdin {
                    return;
                }
                if let Some(text) = cmd.stdin_text.clone().or(piped) {
                    self.nested_script(&text, &[], via);
                } else if !cmd.fed_by.is_empty() {
                    self.out.unresolved.push(format!("{p} reads its script from a pipe"));
                }
            }
            "alias" => {
                for a in &cmd.args {
                    if let Some((_, value)) = a.text.split_once('=') {
                        self.nested_script(value, &[], via.clone());
                    }
                }
            }
            "trap" => {
                if let Some(a) = cmd.args.iter().find(|a| !a.text.starts_with('-')) {
                    if a.dynamic {
                        self.out.unresolved.push("trap runs a string only known at run time".into());
                    } else {
                        self.nested_script(&a.text, &[], via);
                    }
                }
            }
            "find" => {
                let mut i = 0;
                while i < cmd.args.len() {
                    if matches!(cmd.args[i].text.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                        let end = cmd.args[i + 1..]
                            .iter()
                            .position(|a| a.text == ";" || a.text == "+")
                            .map_or(cmd.args.len(), |n| i + 1 + n);
                        let words: Vec<Arg> = cmd.args[i + 1..end]
                            .iter()
                            .map(|a| if a.text.contains("{}") { Arg { dynamic: true, ..a.clone() } } else { a.clone() })
                            .collect();
                        if !words.is_empty() {
                            let inner = Command { via: via.clone(), cwd: cmd.cwd.clone(), ..Command::default() };
                            self.invoke(words, inner);
                        }
                        i = end;
                    }
                    i += 1;
                }
            }
            "git" => {
                // `git -c core.pager='…'`, `alias.x='!…'`: settings whose value is a command.
                for w in cmd.args.windows(2).filter(|w| w[0].text == "-c") {
                    let Some((key, value)) = w[1].text.split_once('=') else { continue };
                    let key = key.to_lowercase();
                    let runs = matches!(
                        key.as_str(),
                        "core.pager"
                            | "core.sshcommand"
                            | "core.editor"
                            | "core.fsmonitor"
                            | "diff.external"
                            | "sequence.editor"
                            | "gpg.program"
                    ) || key.starts_with("pager.")
                        || ((key.starts_with("alias.") || key.starts_with("credential.")) && value.starts_with('!'));
                    if runs {
                        self.nested_script(value.trim_start_matches('!'), &[], via.clone());
                    }
                }
            }
            _ => {}
        }
    }
}
