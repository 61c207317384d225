//! Command line: clap definitions shared by the subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::Settings;
use crate::state::live::{self, ProjectLabel};
use crate::state::pricing;

pub mod analyze;
pub mod backfill;
pub mod control;
pub mod daemon;
pub mod docgen;
pub mod hook;
pub mod hooks;
pub mod scan;
pub mod serve;
pub mod sessions;
pub mod units;
pub mod watch;

/// Follow Claude Code session transcripts and turn them into metrics.
#[derive(Debug, Parser)]
#[command(name = "claude-sessions", version = crate::LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,

    /// Log level or filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, global = true, env = "CLAUDE_SESSIONS_LOG", default_value = "info")]
    pub log_level: String,
}

/// The subcommands; each variant's first doc line is its line in `--help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: follow transcripts live and serve /metrics.
    Serve(serve::ServeArgs),
    /// Read all history once, print a report, and exit.
    Scan(scan::ScanArgs),
    /// Study how context accumulates: JSON and an HTML report of every session's context.
    Analyze(analyze::AnalyzeArgs),
    /// Write history as timestamped OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
    Backfill(backfill::BackfillArgs),
    /// Follow sessions live in the terminal: one line per event (or JSON with --json).
    Watch(watch::WatchArgs),
    /// List live and recent sessions.
    Sessions(sessions::SessionsArgs),
    /// Claude Code hooks: answer allow / ask / deny from the rules and a person; deliver notes.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Install, remove or check claude-sessions' hooks in Claude Code's settings.json.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// Allow a tool call waiting for approval (a rule's `approve` action).
    Approve(control::ApproveArgs),
    /// Deny a tool call waiting for approval, with a reason Claude reads.
    Deny(control::DenyArgs),
    /// Pause a session: its tool calls are denied with your message until `resume`.
    Pause(control::PauseArgs),
    /// Resume a paused session.
    Resume(control::ResumeArgs),
    /// Queue a note, delivered once to Claude at the session's next prompt or tool result.
    Note(control::NoteArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions(docgen::CompletionsArgs),
    /// Print the man page (roff): `claude-sessions man > claude-sessions.1`.
    Man,
}

/// Where transcripts are and how to count them (shared by serve and scan).
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// A `projects` folder to read (repeatable). Default: `projects/` under each
    /// config root: `CLAUDE_CONFIG_DIR` (comma-separated), else ~/.config/claude and ~/.claude.
    #[arg(long = "projects-dir", value_name = "DIR")]
    pub projects_dirs: Vec<PathBuf>,

    /// Lines longer than this are skipped and counted (lines_total{result="oversized"}),
    /// never held in memory. A line within it is held whole while it is parsed, so this
    /// is also about what one reader may hold. Units allowed (`64MiB`, `64 MiB`, `1GB`).
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = units::size_at_least(1024))]
    pub max_line_bytes: u64,

    /// How the `project` label is derived from a session's working directory.
    #[arg(long, value_enum, default_value_t = ProjectLabel::Basename)]
    pub project_label: ProjectLabel,

    /// At most this many label sets per metric; further ones are folded into `other`.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_series_per_metric: u64,

    /// TOML price table whose models replace or add to the embedded one.
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,

    /// A session with no activity for this long is idle.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A session with no activity for this long has ended.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub end_timeout: Duration,

    /// How many response and tool ids the deduplication window remembers.
    #[arg(long, value_name = "N", default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1000..))]
    pub dedup_window: u64,
}

impl SourceArgs {
    /// Validate into engine settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let projects_dirs = if self.projects_dirs.is_empty() {
            let env = std::env::var("CLAUDE_CONFIG_DIR").ok();
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let roots = crate::source::discover::config_roots(env.as_deref(), home.as_deref());
            if roots.is_empty() {
                anyhow::bail!("no transcript folder: set HOME, CLAUDE_CONFIG_DIR or --projects-dir");
            }
            crate::source::discover::projects_dirs(&roots)
        } else {
            // Absolute: file events name absolute paths, which must match the tracked ones.
            let dirs: Vec<PathBuf> =
                self.projects_dirs.iter().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())).collect();
            dirs.into_iter().map(projects_folder).collect::<anyhow::Result<_>>()?
        };
        for d in &projects_dirs {
            if d.exists() && !d.is_dir() {
                anyhow::bail!("--projects-dir {} is not a folder", d.display());
            }
            if d.is_dir() && std::fs::read_dir(d).is_err() {
                anyhow::bail!("cannot read folder {}: permission denied or unreadable", d.display());
            }
        }
        if self.end_timeout < self.idle_timeout {
            anyhow::bail!("--end-timeout must not be shorter than --idle-timeout");
        }
        let pricing = pricing::Table::load(self.pricing_file.as_deref())?;
        Ok(Settings {
            projects_dirs,
            max_line_bytes: usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX),
            aggregator: live::Config {
                idle_after_ms: self.idle_timeout.as_millis() as i64,
                end_after_ms: self.end_timeout.as_millis() as i64,
                project_label: self.project_label,
                max_series: self.max_series_per_metric as usize,
                dedup_capacity: self.dedup_window as usize,
                pricing,
                trace_content: None,
            },
            ..Settings::default()
        })
    }
}

/// An explicit `--projects-dir`: it must exist; a Claude config folder (it holds
/// `projects/` and no project folders of its own) stands for its `projects/`, with a note.
fn projects_folder(d: PathBuf) -> anyhow::Result<PathBuf> {
    if !d.exists() {
        anyhow::bail!(
            "--projects-dir {} does not exist (Claude Code keeps transcripts in ~/.claude/projects)",
            d.display()
        );
    }
    let inner = d.join("projects");
    let holds_projects = || {
        std::fs::read_dir(&d).map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                (name.starts_with('-') && e.path().is_dir()) || name.ends_with(".jsonl")
            })
        })
    };
    if inner.is_dir() && !holds_projects().unwrap_or(true) {
        eprintln!(
            "note: {} is a Claude config folder, not a projects folder: reading {}",
            d.display(),
            inner.display()
        );
        return Ok(inner);
    }
    Ok(d)
}

pub use crate::state::duration::parse as parse_duration;

/// Ctrl-C, or SIGTERM where it can be caught (else Ctrl-C only): how `serve` and `watch` stop.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Write `out` on standard output; a closed pipe (`| head`) is not an error.
pub fn print_stdout(out: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
