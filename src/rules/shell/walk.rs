//! The walk through a parsed script: lists, pipelines, compound commands, functions,
//! assignments and redirections, down to each simple command (recorded by `invoke`).

use brush_parser::ast;

use super::parse::{guarded, options, parse};
use super::word::{Acc, static_output};
use super::{Arg, Command, Redirect, Walker};

/// `bash -c` inside `bash -c` …: deeper than this is unresolved.
const MAX_DEPTH: usize = 8;
/// Simple commands analysed at most (a bound on the work per call).
const MAX_COMMANDS: usize = 4096;

impl Walker {
    fn full(&mut self) -> bool {
        if self.out.commands.len() >= MAX_COMMANDS {
            if !self.out.unresolved.iter().any(|u| u.starts_with("more than")) {
                self.out.unresolved.push(format!("more than {MAX_COMMANDS} commands"));
            }
            return true;
        }
        false
    }

    /// Parse and walk a script; `fed_by` feeds its first commands.
    pub(super) fn script(&mut self, text: &str, fed_by: &[String]) {
        if self.depth > MAX_DEPTH {
            self.out.unresolved.push("nested too deep".into());
            return;
        }
        self.depth += 1;
        match parse(text) {
            Some(p) => {
                for cc in &p.complete_commands {
                    self.list(cc, fed_by);
                }
            }
            None => {
                // Bash runs the lines before a syntax error: read what parses, piece by piece.
                self.out.syntax_error = true;
                self.out.unresolved.push("syntax error".into());
                for piece in text.split(['\n', ';', '&', '|', '(', ')', '`', '{', '}']) {
                    if piece.trim().is_empty() {
                        continue;
                    }
                    if let Some(p) = parse(piece) {
                        for cc in &p.complete_commands {
                            self.list(cc, fed_by);
                        }
                    }
                }
            }
        }
        self.depth -= 1;
    }

    fn list(&mut self, l: &ast::CompoundList, fed_by: &[String]) {
        for item in &l.0 {
            self.pipeline(&item.0.first, fed_by);
            for more in &item.0.additional {
                match more {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, fed_by),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, fed_by: &[String]) {
        let mut upstream = fed_by.to_vec();
        let mut piped: Option<String> = None;
        for cmd in &p.seq {
            let before = self.out.commands.len();
            self.piped_text = piped.take();
            self.command(cmd, &upstream);
            self.piped_text = None;
            let stage = &self.out.commands[before..];
            piped = static_output(stage);
            upstream.extend(stage.iter().map(|c| c.program.clone().unwrap_or_else(|| "?".into())));
        }
    }

    fn command(&mut self, c: &ast::Command, fed_by: &[String]) {
        if self.full() {
            return;
        }
        match c {
            ast::Command::Simple(s) => self.simple(s, fed_by),
            ast::Command::Compound(cc, redirects) => {
                self.compound(cc, fed_by);
                if let Some(r) = redirects {
                    for r in &r.0 {
                        let mut group = Command::default();
                        self.redirect(r, &mut group);
                        self.out.redirects.extend(group.redirects);
                    }
                }
            }
            ast::Command::Function(f) => {
                let name = f.fname.value.clone();
                self.out.functions.push(name.clone());
                let before = self.out.commands.len();
                self.defining.push(name.clone());
                self.compound(&f.body.0, fed_by);
                self.defining.pop();
                if self.out.commands[before..].iter().any(|c| c.program.as_deref() == Some(name.as_str())) {
                    self.out.recursive_functions.push(name);
                }
            }
            ast::Command::ExtendedTest(t, _) => self.test_expr(&t.expr),
        }
    }

    fn test_expr(&mut self, e: &ast::ExtendedTestExpr) {
        use ast::ExtendedTestExpr as E;
        match e {
            E::And(a, b) | E::Or(a, b) => {
                self.test_expr(a);
                self.test_expr(b);
            }
            E::Not(a) | E::Parenthesized(a) => self.test_expr(a),
            E::UnaryTest(_, w) => {
                self.word(&w.value);
            }
            E::BinaryTest(_, a, b) => {
                self.word(&a.value);
                self.word(&b.value);
            }
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand, fed_by: &[String]) {
        use ast::CompoundCommand as C;
        match c {
            C::Arithmetic(a) => {
                self.word(&a.expr.value);
            }
            C::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater].into_iter().flatten() {
                    self.word(&e.value);
                }
                self.list(&f.body.list, fed_by);
            }
            C::BraceGroup(b) => self.list(&b.list, fed_by),
            C::Subshell(s) => self.list(&s.list, fed_by),
            C::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(&w.value);
                }
                self.vars.insert(f.variable_name.clone(), None);
                self.list(&f.body.list, fed_by);
            }
            C::CaseClause(c) => {
                self.word(&c.value.value);
                for item in &c.cases {
                    for p in &item.patterns {
                        self.word(&p.value);
                    }
                    if let Some(l) = &item.cmd {
                        self.list(l, fed_by);
                    }
                }
            }
            C::IfClause(i) => {
                self.list(&i.condition, fed_by);
                self.list(&i.then, fed_by);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, fed_by);
                    }
                    self.list(&e.body, fed_by);
                }
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                self.list(&w.0, fed_by);
                self.list(&w.1.list, fed_by);
            }
            C::Coprocess(c) => self.command(&c.body, fed_by),
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand, fed_by: &[String]) {
        let mut cmd = Command { fed_by: fed_by.to_vec(), ..Command::default() };
        let mut words: Vec<Arg> = Vec::new();
        let mut assignments: Vec<(String, Option<String>)> = Vec::new();
        for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, true, &mut words, &mut assignments, &mut cmd);
        }
        if let Some(w) = &s.word_or_name {
            words.extend(self.word(&w.value));
        }
        for item in s.suffix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, false, &mut words, &mut assignments, &mut cmd);
        }
        if words.is_empty() {
            // Only assignments (and redirections): they last for the rest of the line.
            for (name, value) in assignments {
                self.vars.insert(name, value);
            }
            self.out.redirects.extend(cmd.redirects);
            return;
        }
        cmd.text = words.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(" ");
        self.out.redirects.extend(cmd.redirects.iter().cloned());
        self.invoke(words, cmd);
    }

    fn item(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        in_prefix: bool,
        words: &mut Vec<Arg>,
        assignments: &mut Vec<(String, Option<String>)>,
        cmd: &mut Command,
    ) {
        use ast::CommandPrefixOrSuffixItem as I;
        match item {
            I::IoRedirect(r) => self.redirect(r, cmd),
            I::Word(w) => words.extend(self.word(&w.value)),
            I::AssignmentWord(a, w) => {
                let value = match &a.value {
                    ast::AssignmentValue::Scalar(v) => {
                        let args = self.word(&v.value);
                        match args.as_slice() {
                            [a] if !a.dynamic && !a.glob => Some(a.text.clone()),
                            [] => Some(String::new()),
                            _ => None,
                        }
                    }
                    ast::AssignmentValue::Array(items) => {
                        for (k, v) in items {
                            if let Some(k) = k {
                                self.word(&k.value);
                            }
                            self.word(&v.value);
                        }
                        None
                    }
                };
                let name = match &a.name {
                    ast::AssignmentName::VariableName(n) => n.clone(),
                    ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                };
                if in_prefix || words.is_empty() {
                    assignments.push((name, value));
                } else {
                    // `export X=…`, `declare X=…`: an argument, and a variable from now on.
                    words.extend(self.word(&w.value));
                    self.vars.insert(name, value);
                }
            }
            I::ProcessSubstitution(_, sub) => {
                let programs = self.nested_list(&sub.list);
                words.push(Arg { text: "/dev/fd/63".into(), dynamic: true, glob: false, sources: programs });
            }
        }
    }

    /// Walk a substitution's commands; returns the programs it runs.
    fn nested_list(&mut self, l: &ast::CompoundList) -> Vec<String> {
        let before = self.out.commands.len();
        self.list(l, &[]);
        self.out.commands[before..].iter().map(|c| c.program.clone().unwrap_or_else(|| "?".into())).collect()
    }

    fn redirect(&mut self, r: &ast::IoRedirect, cmd: &mut Command) {
        use ast::{IoFileRedirectKind as K, IoFileRedirectTarget as T, IoRedirect as R};
        match r {
            R::File(_, kind, target) => {
                let write = matches!(kind, K::Write | K::Append | K::ReadAndWrite | K::Clobber);
                match target {
                    T::Filename(w) | T::Duplicate(w) => {
                        let dup =
                            matches!(target, T::Duplicate(_)) || matches!(kind, K::DuplicateInput | K::DuplicateOutput);
                        let args = self.word(&w.value);
                        // `>&2`, `2>&1`: a descriptor, not a file.
                        if dup && args.iter().all(|a| a.text.chars().all(|c| c.is_ascii_digit() || c == '-')) {
                            return;
                        }
                        for a in args {
                            cmd.redirects.push(Redirect { write: write || dup, target: a });
                        }
                    }
                    T::Fd(_) => {}
                    T::ProcessSubstitution(_, sub) => {
                        let programs = self.nested_list(&sub.list);
                        cmd.fed_by.extend(programs);
                    }
                }
            }
            R::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    // `$(…)` in an unquoted here-document runs.
                    let body = doc.doc.value.as_str();
                    if let Some(Ok(pieces)) = guarded(|| brush_parser::word::parse_heredoc(body, &options())) {
                        let mut acc = Acc::default();
                        for p in pieces {
                            self.piece(p, true, &mut acc);
                        }
                        cmd.stdin_text = Some(acc.text());
                        return;
                    }
                }
                cmd.stdin_text = Some(doc.doc.value.clone());
            }
            R::HereString(_, w) => {
                let args = self.word(&w.value);
                cmd.stdin_text = Some(args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(" "));
            }
            R::OutputAndError(w, _) => {
                for a in self.word(&w.value) {
                    cmd.redirects.push(Redirect { write: true, target: a });
                }
            }
        }
    }
}
