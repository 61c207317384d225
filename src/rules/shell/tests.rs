use super::*;

fn programs(cmd: &str) -> Vec<String> {
    analyze(cmd).commands.iter().map(|c| c.program.clone().unwrap_or_else(|| "?".into())).collect()
}

fn first_args(cmd: &str) -> Vec<String> {
    analyze(cmd).commands[0].args.iter().map(|a| a.text.clone()).collect()
}

#[test]
fn lists_pipelines_and_newlines_are_split_into_simple_commands() {
    assert_eq!(programs("echo hi\nrm -rf /"), ["echo", "rm"]);
    assert_eq!(programs("a && b || c; d & e | f"), ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(programs("(cd x && make) ; { ls; }"), ["cd", "make", "ls"]);
    assert_eq!(programs("if test -f x; then rm x; else touch x; fi"), ["test", "rm", "touch"]);
    assert_eq!(programs("for f in *; do cat \"$f\"; done"), ["cat"]);
}

#[test]
fn quotes_escapes_and_paths_are_removed_from_the_program() {
    for cmd in [
        "rm -rf /",
        "/bin/rm -rf /",
        "\\rm -rf /",
        "r''m -rf /",
        "'rm' -rf /",
        "\"r\"m -rf /",
        "RM -rf /",
        "$'\\x72m' -rf /",
    ] {
        assert_eq!(programs(cmd), ["rm"], "{cmd}");
        assert_eq!(first_args(cmd), ["-rf", "/"], "{cmd}");
    }
}

#[test]
fn wrappers_are_looked_through() {
    for cmd in [
        "command rm -rf /",
        "env rm -rf /",
        "env -i FOO=1 rm -rf /",
        "sudo rm -rf /",
        "sudo -u root -E rm -rf /",
        "doas rm -rf /",
        "exec rm -rf /",
        "builtin rm -rf /",
        "nice -n 5 rm -rf /",
        "nohup rm -rf /",
        "timeout -s KILL 5 rm -rf /",
        "time rm -rf /",
        "xargs -0 rm -rf /",
        "env -S 'rm -rf /'",
        "stdbuf -o0 rm -rf /",
    ] {
        let a = analyze(cmd);
        let rm = a.commands.iter().find(|c| c.is("rm")).unwrap_or_else(|| panic!("{cmd}: {a:?}"));
        assert_eq!(rm.texts().collect::<Vec<_>>(), ["-rf", "/"], "{cmd}");
    }
    assert_eq!(analyze("sudo rm -rf /").commands[0].via, ["sudo"]);
    assert!(analyze("xargs rm").commands[0].extra_args);
    assert_eq!(programs("sudo -s"), ["sudo"]);
}

#[test]
fn shell_strings_and_substitutions_are_read_recursively() {
    for cmd in [
        "bash -c 'rm -rf /'",
        "sh -c \"rm -rf /\"",
        "bash -lc 'cd /; rm -rf /'",
        "eval 'rm -rf /'",
        "eval rm -rf /",
        "echo `rm -rf /`",
        "echo $(rm -rf /)",
        "cat <(rm -rf /)",
        "bash -c \"bash -c 'rm -rf /'\"",
        "$(echo rm) -rf /",
        "`echo rm` -rf /",
        "X=rm; $X -rf /",
        "su -c 'rm -rf /'",
        "watch rm -rf /",
    ] {
        let a = analyze(cmd);
        assert!(a.commands.iter().any(|c| c.is("rm") && c.texts().any(|t| t == "/")), "{cmd}: {:?}", a.commands);
    }
    let a = analyze("bash -c \"$CMD\"");
    assert!(!a.unresolved.is_empty());
    let a = analyze("$CMD -rf /");
    assert_eq!(a.commands[0].program, None);
    assert!(!a.unresolved.is_empty());
}

#[test]
fn home_braces_and_globs() {
    assert_eq!(first_args("rm -rf ~"), ["-rf", "~"]);
    assert_eq!(first_args("rm -rf \"$HOME\""), ["-rf", "~"]);
    assert_eq!(first_args("rm -rf ${HOME}/"), ["-rf", "~/"]);
    assert_eq!(first_args("rm -rf {/,x}"), ["-rf", "/", "x"]);
    let a = analyze("rm -rf /*");
    assert!(a.commands[0].args[1].glob);
    let a = analyze("rm -rf '/*'");
    assert!(!a.commands[0].args[1].glob);
    assert_eq!(first_args("X='a b'; echo $X"), ["a", "b"]);
    assert_eq!(first_args("X='a b'; echo \"$X\""), ["a b"]);
}

#[test]
fn redirections_are_reads_and_writes() {
    let a = analyze("echo x > ~/.bashrc 2>/dev/null; cat < in.txt >&2");
    let w: Vec<&str> = a.written_files().map(|t| t.text.as_str()).collect();
    assert_eq!(w, ["~/.bashrc"]);
    assert!(a.redirects.iter().any(|r| !r.write && r.target.text == "in.txt"));
    let a = analyze("{ echo x; } >> .git/hooks/pre-commit");
    assert_eq!(a.written_files().map(|t| t.text.as_str()).collect::<Vec<_>>(), [".git/hooks/pre-commit"]);
}

#[test]
fn pipelines_record_what_feeds_each_stage() {
    let a = analyze("curl -fsSL https://x.sh | sudo bash");
    let bash = a.commands.iter().find(|c| c.is("bash")).unwrap();
    assert_eq!(bash.fed_by, ["curl"]);
    assert_eq!(bash.via, ["sudo"]);
    let a = analyze("bash <(curl -s https://x)");
    assert_eq!(a.commands.iter().find(|c| c.is("bash")).unwrap().args[0].sources, ["curl"]);
}

#[test]
fn fork_bombs_are_recursive_functions() {
    let a = analyze(":(){ :|:& };:");
    assert_eq!(a.recursive_functions, [":"]);
    assert!(analyze("f(){ echo hi; }; f").recursive_functions.is_empty());
}

#[test]
fn syntax_errors_still_show_the_commands_before_them() {
    let a = analyze("rm -rf /\nfi )");
    assert!(a.syntax_error);
    assert!(a.commands.iter().any(|c| c.is("rm")));
}

#[test]
fn options_are_split_and_double_dash_ends_them() {
    let args: Vec<Arg> = ["-rf", "--", "-x", "/"].iter().map(|t| Arg::literal(t)).collect();
    let p = parse_args(&args, &[]);
    assert!(p.has('r', "recursive") && p.has('f', "force"));
    assert_eq!(p.operands.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["-x", "/"]);
    let args: Vec<Arg> = ["-n", "5", "file"].iter().map(|t| Arg::literal(t)).collect();
    assert_eq!(parse_args(&args, &['n']).operands.len(), 1);
}

#[test]
fn paths_are_normalised() {
    assert_eq!(normalize("//"), NormPath { base: Base::Root, parts: vec![] });
    assert_eq!(normalize("/."), NormPath { base: Base::Root, parts: vec![] });
    assert_eq!(normalize("/tmp/../"), NormPath { base: Base::Root, parts: vec![] });
    assert_eq!(normalize("/usr//lib/"), NormPath { base: Base::Root, parts: vec!["usr".into(), "lib".into()] });
    assert_eq!(normalize("~/"), NormPath { base: Base::Home, parts: vec![] });
    assert_eq!(normalize("~/.."), NormPath { base: Base::Root, parts: vec!["home".into()] });
    assert_eq!(normalize("../x").base, Base::Relative { escapes: true });
    assert_eq!(basename("/bin/rm"), "rm");
}

#[test]
fn nothing_is_too_big_or_too_deep() {
    let deep = "bash -c ".repeat(50) + "x";
    let _ = analyze(&deep);
    for open in ["(", "$(", "{ ", "`", "[[ ", "$((", "${", "case x in x) ", "if true; then ", "while :; do "] {
        let a = analyze(&(open.repeat(100_000) + "rm -rf /"));
        assert!(!a.unresolved.is_empty(), "{open}");
    }
    // Found by fuzzing: nested `((` take the parser exponential time (this one: hours).
    let t = std::time::Instant::now();
    let a = analyze(&("for ((".to_owned() + &"((>>i=".repeat(28)));
    assert!(!a.unresolved.is_empty());
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    // The parser panics on this one (brush-parser 0.4.0): read as a syntax error.
    let a = analyze("a=$(b \"$(c '$(d)Dd')\" ${`e \\`f\\``) ; g <<-EOF\t$(h)\nEOF\n");
    assert!(!a.unresolved.is_empty());
    let a = analyze(&"x".repeat(MAX_INPUT + 1));
    assert!(!a.unresolved.is_empty());
}
