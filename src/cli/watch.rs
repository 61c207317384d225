//! `watch`: follow sessions live in the terminal, one line per event (or one JSON
//! event per line), with each session's running totals.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::serve::EventArgs;
use super::sessions::{count, cut, duration, short_id, short_model, utc};
use super::{SourceArgs, parse_duration};
use crate::events::{Event, Filter, Kind};
use crate::watcher::SessionWatcher;

/// When `watch` colours its lines (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Colour even into a pipe or a file, and despite NO_COLOR.
    Always,
    /// No colour, even on a terminal.
    Never,
}

/// Which conversations `--agent` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentArg {
    /// The main conversation only.
    Main,
    /// Sub-agents only.
    Subagent,
}

/// The flags of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Where transcripts are and how to count them.
    #[command(flatten)]
    pub source: SourceArgs,

    /// One JSON event per line, written as it happens (for programs).
    #[arg(long)]
    pub json: bool,

    /// Only these projects (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub project: Vec<String>,

    /// Only these sessions, by full id (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub session: Vec<String>,

    /// Only these event types (repeatable or comma-separated): message, tool_use,
    /// tool_result, session_start, session_idle, session_resume, session_end, agent_spawn,
    /// compaction, api_error, context_growth, rule_match, approval_pending, approval_decided,
    /// session_paused, session_resumed, note_queued, note_delivered, error.
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPE")]
    pub kinds: Vec<String>,

    /// Only events of these tools (repeatable or comma-separated): names (Bash,
    /// mcp__github__create_issue) or categories (file_read, file_write, shell, web, mcp, agent, other).
    #[arg(long, value_delimiter = ',', value_name = "TOOL")]
    pub tool: Vec<String>,

    /// Only the main conversation, or only sub-agents.
    #[arg(long, value_enum)]
    pub agent: Option<AgentArg>,

    /// First replay the events of this much recent history (e.g. 10m, 2h), then follow.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,

    /// What events carry, and the rules checked on tool calls.
    #[command(flatten)]
    pub events: EventArgs,

    /// Leave out tool summaries (the command, file path, URL or pattern of each call).
    #[arg(long)]
    pub no_summaries: bool,

    /// Colour the readable output.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Poll the folders instead of using file events (network filesystems).
    #[arg(long)]
    pub poll: bool,
}

impl WatchArgs {
    /// The flags' filter (validated like `/api/events` query parameters).
    pub(crate) fn filter(&self) -> anyhow::Result<Filter> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        pairs.extend(self.project.iter().map(|v| ("project", v.as_str())));
        pairs.extend(self.session.iter().map(|v| ("session", v.as_str())));
        pairs.extend(self.kinds.iter().map(|v| ("type", v.as_str())));
        pairs.extend(self.tool.iter().map(|v| ("tool", v.as_str())));
        match self.agent {
            Some(AgentArg::Main) => pairs.push(("agent", "main")),
            Some(AgentArg::Subagent) => pairs.push(("agent", "subagent")),
            None => {}
        }
        Filter::from_pairs(pairs).map_err(|e| anyhow::anyhow!("--type: {e}"))
    }
}

/// Follow sessions until interrupted, printing each event as it comes (after the
/// `--since` replay). Errors: bad flags or source settings, an unreadable rules file.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let filter = args.filter()?;
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let mut settings = args.source.settings()?;
    // File events name absolute paths: follow the folders by theirs, so that a relative
    // --projects-dir is followed live too, not only by the periodic scan.
    for d in &mut settings.projects_dirs {
        if let Ok(abs) = std::path::absolute(&*d) {
            *d = abs;
        }
    }
    let mut builder = SessionWatcher::builder()
        .settings(settings)
        .summaries(!args.no_summaries)
        .poll(args.poll)
        // A replay of history comes in a burst: room for it, so a terminal that prints
        // slower than the history is read misses nothing. No resumption ring is needed here.
        .buffers(if args.since.is_some() { 65_536 } else { 4096 }, 1);
    if args.events.include_content {
        builder = builder.include_content(true, args.events.content_max_bytes as usize);
    }
    if let Some(ago) = args.since {
        builder = builder.since(ago);
    }
    if let Some(rules) = args.events.rules()? {
        builder = builder.rules(rules);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let watcher = builder.start()?;
    // At once: `--since` events are published while the history is read.
    // Every event, filtered here: the running totals count what the filter hides too.
    let mut stream = watcher.events();
    let mut running: std::collections::HashMap<String, Totals> = std::collections::HashMap::new();
    tracing::debug!("Subscribed to events.");
    let human = !args.json || std::io::stderr().is_terminal();
    if !args.json && std::io::stderr().is_terminal() {
        eprintln!("Watching Claude Code sessions (Ctrl-C to stop)…");
    }
    if human {
        eprintln!("{}", history_note(args.since));
    }
    // Lines stamped before the start appended after it (a copied transcript): said once.
    // Without --since, events begin once history is read: lines counted are all new.
    let mut baseline: Option<u64> = if args.since.is_none() { Some(0) } else { None };
    let mut hinted = !human;
    let mut out = std::io::stdout().lock();
    let mut lagged = 0;
    let result = rt.block_on(async {
        use tokio_stream::StreamExt;
        let stop = super::shutdown_signal();
        tokio::pin!(stop);
        let mut quiet_check = tokio::time::interval(Duration::from_secs(3));
        loop {
            let e = tokio::select! {
                e = stream.next() => match e {
                    Some(e) => e,
                    None => return anyhow::Ok(()),
                },
                _ = &mut stop => return Ok(()),
                _ = quiet_check.tick(), if !hinted => {
                    if watcher.is_ready() {
                        let old = watcher.history_lines();
                        match baseline {
                            None => baseline = Some(old),
                            Some(before) if old > before => {
                                eprintln!("{}", old_lines_note(old - before, args.since));
                                hinted = true;
                            }
                            Some(_) => {}
                        }
                    }
                    continue;
                }
            };
            let now_lagged = watcher.stats().lagged;
            if now_lagged > lagged {
                eprintln!("claude-sessions: watch fell behind; {} events were skipped", now_lagged - lagged);
                lagged = now_lagged;
            }
            let totals = (!e.session_id.is_empty()).then(|| {
                // Totals since watching began (or since --since): counted from the events.
                let t = running.entry(e.session_id.clone()).or_default();
                t.add(&e);
                *t
            });
            if !filter.matches(&e) {
                continue;
            }
            let written = if args.json {
                serde_json::to_writer(&mut out, &*e).map_err(std::io::Error::from).and_then(|_| out.write_all(b"\n"))
            } else {
                out.write_all(line(&e, totals.as_ref(), color).as_bytes())
            };
            match written.and_then(|_| out.flush()) {
                Ok(()) => {}
                // `watch | head`: the reader is gone.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    });
    if watcher.is_ready() {
        watcher.stop();
    } else {
        // Still reading history: do not wait for it, the process is exiting.
        std::mem::forget(watcher);
    }
    result
}

/// What `watch` shows, said once at the start: events of lines stamped from now on
/// (or from `--since` ago); older lines are history.
fn history_note(since: Option<Duration>) -> String {
    match since {
        None => "Showing lines stamped from now on; older lines (history, or a copied transcript) \
                 are not shown: --since 2h (or 400d) replays them first."
            .into(),
        Some(d) => format!(
            "Replaying the events of the last {}, then following; older lines are history (a longer --since shows them).",
            crate::state::duration::format(d)
        ),
    }
}

/// Said once when lines were read but none made an event: they were stamped before
/// the start (or before `--since`), so they are history.
fn old_lines_note(lines: u64, since: Option<Duration>) -> String {
    let window = since.map_or("watch started".to_owned(), |d| format!("--since {}", crate::state::duration::format(d)));
    format!(
        "note: {lines} new line{} read, but stamped before {window}: they count as history and show no events \
         (a longer --since shows them).",
        if lines == 1 { " was" } else { "s were" }
    )
}

/// A session's running totals since watching began (or since `--since`), from its events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    /// Tokens of every kind (input, output, cache reads and writes).
    tokens: u64,
    /// Estimated cost in US dollars (responses without a price add 0).
    cost_usd: f64,
    /// Tool calls.
    tools: u64,
    /// Failed tool results and API errors.
    errors: u64,
}

impl Totals {
    /// What one event adds.
    fn delta(e: &Event) -> Totals {
        match &e.kind {
            Kind::Message { usage: Some(u), cost_usd, .. } => Totals {
                tokens: u.input + u.output + u.cache_read + u.cache_creation,
                cost_usd: cost_usd.unwrap_or(0.0),
                ..Totals::default()
            },
            Kind::ToolUse { .. } => Totals { tools: 1, ..Totals::default() },
            Kind::ToolResult { is_error: true, .. } | Kind::ApiError { .. } => {
                Totals { errors: 1, ..Totals::default() }
            }
            _ => Totals::default(),
        }
    }

    fn add(&mut self, e: &Event) {
        let d = Totals::delta(e);
        self.tokens += d.tokens;
        self.cost_usd += d.cost_usd;
        self.tools += d.tools;
        self.errors += d.errors;
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
/// Session ids get one of these, by id: lines of one session look alike.
const SESSION_COLORS: [&str; 6] = ["\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[32m", "\x1b[33m", "\x1b[96m"];

/// Text from a transcript as one harmless line: control characters (escape sequences,
/// newlines) become spaces, and it is cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cut(one.trim(), max)
}

/// One readable line for an event, with the session's running totals at the end:
/// `14:03:07  3f2a91c0  app  main  tool_use  Bash cargo test  │ 12.3k tok $0.42 7 tools`.
fn line(e: &Event, totals: Option<&Totals>, color: bool) -> String {
    let paint = |code: &str, s: &str| if color { format!("{code}{s}{RESET}") } else { s.to_owned() };
    let (y, mo, d, h, m, s) = utc(e.ts_ms);
    // The day too, for an event of another day (a replay with --since, a long watch).
    let today = utc(crate::transcript::entry::now_ms());
    let time = if (y, mo, d) == (today.0, today.1, today.2) {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
    };
    let time = paint(DIM, &time);
    let sid = short_id(&e.session_id);
    let hue = SESSION_COLORS
        [e.session_id.bytes().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize)) % SESSION_COLORS.len()];
    let session = paint(hue, &format!("{sid:<8}"));
    let project = format!("{:<16}", cut(&clean(&e.project, 64), 16));
    let who = match &e.agent_id {
        Some(a) => format!("↳{}", cut(&clean(a, 64), 7)),
        None => "main".to_owned(),
    };
    let who = paint(DIM, &format!("{who:<8}"));
    let name = e.kind.name();
    let (detail, alert) = describe(&e.kind, color);
    let kind = if alert { paint(RED, &format!("{name:<14}")) } else { paint(BOLD, &format!("{name:<14}")) };
    let mut l = format!("{time}  {session}  {project}  {who}  {kind}  {detail}");
    if let Some(t) = totals {
        let mut sum = format!("│ {} tok  ${:.2}  {} tools", count(t.tokens), t.cost_usd, t.tools);
        if t.errors > 0 {
            sum.push_str(&format!("  {} err", t.errors));
        }
        l.push_str("  ");
        l.push_str(&paint(DIM, &sum));
    }
    l.push('\n');
    l
}

/// The event's own part of the line, and whether it reports a failure.
fn describe(k: &Kind, color: bool) -> (String, bool) {
    let paint = |code: &str, s: &str| if color { format!("{code}{s}{RESET}") } else { s.to_owned() };
    let bold = |s: &str| paint(BOLD, s);
    match k {
        Kind::Message { role, model, usage, cost_usd, text, continued } => {
            let mut d = if role == "user" { "user prompt".to_owned() } else { role.clone() };
            if *continued {
                d.push_str(" (continued)");
            }
            if let Some(m) = model {
                d.push(' ');
                d.push_str(&short_model(m));
            }
            if let Some(u) = usage {
                d.push_str(&format!(
                    " {} in / {} out",
                    count(u.input + u.cache_read + u.cache_creation),
                    count(u.output)
                ));
            }
            if let Some(c) = cost_usd {
                d.push_str(&format!(" ${c:.4}"));
            }
            if let Some(t) = text {
                d.push_str(&format!(" «{}»", clean(t, 120)));
            }
            (d, false)
        }
        Kind::ToolUse { name, summary, .. } => {
            let s = summary.as_deref().map(|s| format!(" {}", clean(s, 160))).unwrap_or_default();
            (format!("{}{s}", bold(&clean(name, 64))), false)
        }
        Kind::ToolResult { name, is_error, duration_ms, output, .. } => {
            let took = duration_ms.map(|d| format!(" {}", seconds(d))).unwrap_or_default();
            let status = if *is_error { paint(RED, "✗ error") } else { paint(GREEN, "ok") };
            let out = output.as_deref().map(|o| format!(" «{}»", clean(o, 120))).unwrap_or_default();
            (format!("{} {status}{took}{out}", bold(&clean(name, 64))), *is_error)
        }
        Kind::SessionStart { cwd, git_branch } => {
            let mut d = cwd.as_deref().map(|c| clean(c, 120)).unwrap_or_default();
            if let Some(b) = git_branch {
                d.push_str(&format!(" ({})", clean(b, 60)));
            }
            (d, false)
        }
        Kind::SessionIdle {} => (paint(DIM, "idle"), false),
        Kind::SessionResume {} => ("active again".into(), false),
        Kind::SessionEnd { reason } => {
            let r = serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            (r.replace('_', " "), false)
        }
        Kind::AgentSpawn { agent_type, description, .. } => {
            let d = description.as_deref().map(|d| format!(" {}", clean(d, 120))).unwrap_or_default();
            (format!("{}{d}", bold(&clean(agent_type, 64))), false)
        }
        Kind::Compaction { trigger, tokens_before, tokens_after } => {
            let mut d = clean(trigger, 32);
            if let (Some(b), Some(a)) = (tokens_before, tokens_after) {
                d.push_str(&format!(" {} → {} tok", count(*b), count(*a)));
            } else if let Some(b) = tokens_before {
                d.push_str(&format!(" from {} tok", count(*b)));
            }
            (d, false)
        }
        Kind::ApiError { kind } => (paint(RED, &format!("✗ {}", clean(kind, 64))), true),
        Kind::ContextGrowth { tokens_added, source, cumulative, .. } => {
            let sign = if *tokens_added >= 0 { "+" } else { "-" };
            (
                format!(
                    "{sign}{} → {} tok ({})",
                    count(tokens_added.unsigned_abs()),
                    count(*cumulative),
                    clean(source, 32)
                ),
                false,
            )
        }
        Kind::RuleMatch { rule, severity, tool, .. } => {
            let d = format!("⚑ {} [{}] {}", clean(rule, 64), clean(severity, 16), clean(tool, 64));
            let alert = severity != "info";
            (if alert { paint(YELLOW, &d) } else { d }, false)
        }
        Kind::Error { message } => (paint(RED, &format!("✗ {}", clean(message, 200))), true),
        Kind::ApprovalPending { approval_id, tool, summary, rule, .. } => {
            let d = format!(
                "✋ approval {} needed: {} {} [{}]",
                clean(approval_id, 32),
                clean(tool, 64),
                clean(summary, 120),
                clean(rule, 64)
            );
            (paint(YELLOW, &d), false)
        }
        Kind::ApprovalDecided { approval_id, state, reason, .. } => {
            let mut d = format!("approval {} {}", clean(approval_id, 32), clean(state, 16));
            if let Some(r) = reason {
                d.push_str(&format!(": {}", clean(r, 120)));
            }
            (if state == "allowed" { paint(GREEN, &d) } else { d }, false)
        }
        Kind::SessionPaused { message } => {
            let d =
                format!("⏸ paused{}", message.as_deref().map(|m| format!(": {}", clean(m, 120))).unwrap_or_default());
            (paint(YELLOW, &d), false)
        }
        Kind::SessionResumed {} => ("▶ resumed".into(), false),
        Kind::NoteQueued { note_id, text } => {
            (format!("✎ note {} queued: {}", clean(note_id, 32), clean(text, 120)), false)
        }
        Kind::NoteDelivered { note_id } => (format!("✎ note {} delivered", clean(note_id, 32)), false),
    }
}

/// `850ms`, `2.4s`, `3m05s`.
fn seconds(ms: i64) -> String {
    match ms {
        _ if ms < 1000 => format!("{}ms", ms.max(0)),
        _ if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => duration(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ToolCategory, Usage};

    fn ev(kind: Kind) -> Event {
        Event {
            id: 1,
            ts_ms: 1_763_042_587_000,
            session_id: "3f2a91c0-aaaa-bbbb".into(),
            project: "app".into(),
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind,
        }
    }

    #[test]
    fn lines_show_the_summary_the_error_and_totals() {
        let tool = ev(Kind::ToolUse {
            tool_use_id: "t".into(),
            name: "Bash".into(),
            category: ToolCategory::Shell,
            summary: Some("cargo test\u{1b}[2J".into()),
            input: None,
        });
        let l = line(&tool, None, false);
        // Another day than today: the date too.
        assert!(l.starts_with("2025-11-13 14:03:07  3f2a91c0  app "), "{l}");
        let today = Event { ts_ms: crate::transcript::entry::now_ms(), ..tool.clone() };
        let t = line(&today, None, false);
        assert!(t.as_bytes()[2] == b':' && t[8..].starts_with("  3f2a91c0"), "today: the time only: {t}");
        assert!(l.contains("tool_use") && l.contains("Bash cargo test [2J"), "escape sequences defused: {l}");
        assert!(!l.contains('\u{1b}'));
        let res = ev(Kind::ToolResult {
            tool_use_id: "t".into(),
            name: "Bash".into(),
            is_error: true,
            content_bytes: None,
            duration_ms: Some(2400),
            output: None,
        });
        assert!(line(&res, None, false).contains("Bash ✗ error 2.4s"));
        assert!(line(&res, None, true).contains(RED));
        let msg = ev(Kind::Message {
            role: "assistant".into(),
            model: Some("claude-opus-4-6".into()),
            usage: Some(Usage { input: 10, output: 20, cache_read: 1000, cache_creation: 0 }),
            cost_usd: Some(0.0123),
            text: None,
            continued: false,
        });
        assert!(line(&msg, None, false).contains("assistant opus-4-6 1.0k in / 20 out $0.0123"));
    }
}
