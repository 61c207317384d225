//! The table of wrappers: programs that run the command in their arguments (`sudo`,
//! `env`, `nice`, `timeout`, `xargs`, `flock`, `watch`, `su`, the shells' `-c`…), each
//! with the options that take a value, so that what they run can be found.

use super::Arg;

/// Programs that run the command given in their arguments.
pub(super) const SHELLS: &[&str] =
    &["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "yash", "posh", "csh", "tcsh"];

/// What a wrapper does with the words after it.
pub(super) enum Unwrap {
    /// Not a wrapper: the program itself.
    Stop,
    /// Runs the remaining words as a command.
    Run,
    /// Runs the remaining words as a command, with arguments added at run time (`xargs`).
    Extra,
    /// Runs a shell string (`None`: not static).
    Script(Option<String>),
}

/// Remove a wrapper's own options from `words`, leaving the command it runs.
pub(super) fn unwrap(program: &str, words: &mut Vec<Arg>) -> Unwrap {
    // Options that take a value in the next word, per wrapper.
    let (with_value, wrapper): (&[&str], bool) = match program {
        "sudo" => (
            &[
                "-u",
                "-g",
                "-h",
                "-p",
                "-C",
                "-D",
                "-r",
                "-t",
                "-T",
                "-U",
                "-R",
                "--user",
                "--group",
                "--host",
                "--prompt",
                "--close-from",
                "--chdir",
                "--role",
                "--type",
                "--command-timeout",
                "--other-user",
                "--chroot",
            ],
            true,
        ),
        "doas" => (&["-u", "-C"], true),
        "pkexec" => (&["--user"], true),
        "run0" => (
            &[
                "--user",
                "-u",
                "--unit",
                "--property",
                "--description",
                "--slice",
                "--nice",
                "-D",
                "--chdir",
                "--setenv",
            ],
            true,
        ),
        "env" => (&["-u", "--unset", "-C", "--chdir", "-S", "--split-string", "-a", "--argv0"], true),
        "command" | "builtin" | "nohup" | "setsid" | "unbuffer" | "caffeinate" | "chronic" => (&[], true),
        "exec" => (&["-a"], true),
        "time" => (&["-o", "--output", "-f", "--format"], true),
        "nice" => (&["-n", "--adjustment"], true),
        "ionice" => (&["-c", "--class", "-n", "--classdata", "-p", "-P", "-u"], true),
        "timeout" => (&["-s", "--signal", "-k", "--kill-after"], true),
        "stdbuf" => (&["-i", "-o", "-e", "--input", "--output", "--error"], true),
        "xargs" => (
            &[
                "-I",
                "-n",
                "-L",
                "-P",
                "-s",
                "-d",
                "-E",
                "-a",
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-lines",
                "--max-procs",
                "--max-chars",
                "--replace",
                "--eof",
                "--process-slot-var",
            ],
            true,
        ),
        "flock" => (&["-w", "--timeout", "-E", "--conflict-exit-code"], true),
        "chroot" => (&["--userspec", "--groups"], true),
        "busybox" | "toybox" => (&[], true),
        "strace" | "ltrace" => (&["-o", "-e", "-p", "-s", "-u", "-E", "-P", "-a", "-O", "-S", "-X", "-b", "-I"], true),
        "taskset" | "chrt" | "numactl" | "unshare" | "nsenter" | "firejail" | "systemd-run" => (
            &[
                "-t",
                "-n",
                "-m",
                "-p",
                "-C",
                "-N",
                "-i",
                "-u",
                "-U",
                "-S",
                "-G",
                "-w",
                "--unit",
                "--property",
                "-E",
                "--setenv",
                "--uid",
                "--gid",
                "--slice",
            ],
            true,
        ),
        "watch" => (&["-n", "--interval", "-d", "--differences", "-q", "--equexit"], true),
        "su" => (
            &[
                "-c",
                "--command",
                "-s",
                "--shell",
                "-g",
                "--group",
                "-G",
                "--supp-group",
                "-w",
                "--whitelist-environment",
            ],
            true,
        ),
        "eval" => (&[], true),
        "source" | "." => (&[], false),
        p if SHELLS.contains(&p) => (&["-o", "+o", "-O", "+O", "--rcfile", "--init-file"], true),
        _ => (&[], false),
    };
    if !wrapper {
        return Unwrap::Stop;
    }
    let is_shell = SHELLS.contains(&program);
    if program == "eval" {
        if words.iter().any(|w| w.dynamic) {
            return Unwrap::Script(None);
        }
        let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        return Unwrap::Script(Some(text));
    }
    // Walk the wrapper's options.
    let mut i = 0;
    let mut command_string: Option<usize> = None;
    let mut split_string: Option<Arg> = None;
    let mut lists_only = false;
    while i < words.len() {
        let w = &words[i].text;
        if w == "--" {
            i += 1;
            break;
        }
        if !(w.starts_with('-') || (is_shell && w.starts_with('+'))) || w == "-" {
            break;
        }
        let (name, inline) = match w.split_once('=') {
            Some((n, _)) if w.starts_with("--") => (n, true),
            _ => (w.as_str(), false),
        };
        if is_shell && !w.starts_with("--") && w[1..].contains('c') {
            command_string = Some(i + 1);
            i += 1;
            continue;
        }
        if program == "env" && (name == "-S" || name == "--split-string" || (w.starts_with("-S") && w.len() > 2)) {
            split_string = if inline {
                Some(Arg { text: w.split_once('=').map(|x| x.1).unwrap_or("").into(), ..words[i].clone() })
            } else if w.len() > 2 && !w.starts_with("--") {
                Some(Arg { text: w[2..].into(), ..words[i].clone() })
            } else {
                words.get(i + 1).cloned()
            };
            i += if inline || (w.len() > 2 && !w.starts_with("--")) { 1 } else { 2 };
            continue;
        }
        if program == "sudo" && matches!(name, "-l" | "-v" | "-k" | "-K" | "--list" | "--validate") {
            lists_only = true;
        }
        if (program == "command") && matches!(name, "-v" | "-V") {
            lists_only = true;
        }
        i += if takes_value(w, name, inline, with_value) { 2 } else { 1 };
    }
    if program == "su" {
        // `su [-] [user] [-c CMD]`: options and the user may come in any order.
        split_string = su_command(words);
    }
    words.drain(..i.min(words.len()));
    if lists_only {
        words.clear();
        return Unwrap::Run;
    }
    if is_shell {
        return match command_string {
            Some(_) => {
                // `bash -c STRING [NAME ARGS…]`: the string is the first word after the options.
                if words.is_empty() {
                    return Unwrap::Script(Some(String::new()));
                }
                let s = words.remove(0);
                words.clear();
                if s.dynamic { Unwrap::Script(None) } else { Unwrap::Script(Some(s.text)) }
            }
            // `bash script.sh` or `bash` reading standard input: the shell is the command.
            None => Unwrap::Stop,
        };
    }
    if let Some(s) = split_string {
        let tail: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
        words.clear();
        if s.dynamic {
            return Unwrap::Script(None);
        }
        let mut text = s.text;
        if program == "env" {
            for t in tail {
                text.push(' ');
                text.push_str(&t);
            }
        }
        return Unwrap::Script(Some(text));
    }
    match program {
        "env" => {
            // NAME=VALUE words before the command.
            while words.first().is_some_and(|w| is_assignment(&w.text)) {
                words.remove(0);
            }
        }
        // The duration.
        "timeout" | "taskset" | "chrt" if !words.is_empty() => {
            words.remove(0);
        }
        "flock" | "chroot" => {
            if !words.is_empty() {
                words.remove(0); // the lock file, the new root
            }
            if program == "flock" && words.first().is_some_and(|w| w.text == "-c" || w.text == "--command") {
                words.remove(0);
                let s = if words.is_empty() { Arg::default() } else { words.remove(0) };
                words.clear();
                return if s.dynamic { Unwrap::Script(None) } else { Unwrap::Script(Some(s.text)) };
            }
        }
        "watch" => {
            // watch joins its words into a shell command.
            if words.iter().any(|w| w.dynamic) {
                words.clear();
                return Unwrap::Script(None);
            }
            let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
            words.clear();
            return Unwrap::Script(Some(text));
        }
        "su" => {
            // `su [user]` without -c: an interactive root shell.
            words.clear();
        }
        "xargs" => return Unwrap::Extra,
        _ => {}
    }
    Unwrap::Run
}

/// Whether option word `w` takes the next word as its value: a long option listed in
/// `with_value` without `=`, or a short cluster whose first valued letter is its last
/// (`-iu root`; in `-uroot` the value is inline).
fn takes_value(w: &str, name: &str, inline: bool, with_value: &[&str]) -> bool {
    if w.starts_with("--") {
        return with_value.contains(&name) && !inline;
    }
    let letters: Vec<char> = w.chars().skip(1).collect();
    for (k, c) in letters.iter().enumerate() {
        if with_value.contains(&format!("-{c}").as_str()) {
            return k + 1 == letters.len();
        }
    }
    false
}

/// The command of `su … -c CMD …` / `--command=CMD`, wherever it stands.
fn su_command(words: &[Arg]) -> Option<Arg> {
    for (i, w) in words.iter().enumerate() {
        if let Some(v) = w.text.strip_prefix("--command=") {
            return Some(Arg { text: v.to_owned(), ..w.clone() });
        }
        if w.text == "-c" || w.text == "--command" {
            return Some(words.get(i + 1).cloned().unwrap_or_default());
        }
    }
    None
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}
