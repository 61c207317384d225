//! `completions` and `man`: generated from the CLI definition, so they never drift.

use clap::{Args, CommandFactory};

use super::Cli;

/// The flags of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write the completion script for `args.shell` on standard output.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "claude-sessions", &mut out);
    let mut script = String::from_utf8(out)?;
    if matches!(args.shell, clap_complete::Shell::Bash) {
        // clap_complete names the states of a dashed binary two ways (`claude__sessions__subcmd__scan`
        // where it sets them, `claude__subcmd__sessions__subcmd__scan` where it reads them), so no
        // subcommand's flags would complete; one spelling makes them agree (tests/it/first_hour.rs).
        script = script.replace("claude__subcmd__sessions", "claude__sessions");
    }
    super::print_stdout(&script)
}

/// Write the man page (roff, section 1) on standard output: the command, then each
/// subcommand as a section of its own.
pub fn man() -> anyhow::Result<()> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_subcommand(&mut out, &cmd, sub, &[])?;
    }
    page.render_version_section(&mut out)?;
    super::print_stdout(&String::from_utf8(out)?)
}

fn render_subcommand(
    out: &mut Vec<u8>,
    root: &clap::Command,
    sub: &clap::Command,
    path: &[&str],
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut names = path.to_vec();
    names.push(sub.get_name());
    let title = format!("{} {}", root.get_name(), names.join(" "));
    writeln!(out, ".SH \"{}\"", title.to_uppercase())?;
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        writeln!(out, "{}", escape(&about.to_string()))?;
    }
    let mut usage = sub.clone().bin_name(&title);
    writeln!(out, ".PP\n.B Usage:\n{}", escape(&usage.render_usage().to_string().replace("Usage: ", "")))?;
    for arg in sub.get_arguments().filter(|a| !a.is_hide_set() && a.get_id() != "help") {
        let mut flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => format!("<{}>", arg.get_id()),
        };
        if arg.get_action().takes_values() && arg.get_long().is_some() {
            let value = arg.get_value_names().and_then(|v| v.first()).map_or("VALUE".into(), |v| v.to_string());
            flag += &format!(" {value}");
        }
        writeln!(out, ".TP\n\\fB{}\\fR", escape(&flag))?;
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            writeln!(out, "{}", escape(&help.to_string()))?;
        }
        let defaults: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        if !defaults.is_empty() {
            writeln!(out, "[default: {}]", escape(&defaults.join(", ")))?;
        }
    }
    for s in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_subcommand(out, root, s, &names)?;
    }
    Ok(())
}

/// Text for roff: backslashes doubled, characters beyond ASCII as `\[uXXXX]`, and a
/// line starting with `.` or `'` kept as text.
fn escape(s: &str) -> String {
    let ascii: String = s
        .replace('\\', "\\\\")
        .chars()
        .map(|c| if c.is_ascii() { c.to_string() } else { format!("\\[u{:04X}]", c as u32) })
        .collect();
    ascii
        .lines()
        .map(|l| if l.starts_with(['.', '\'']) { format!("\\&{l}") } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\n")
}
