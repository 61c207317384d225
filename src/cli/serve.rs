//! `serve`: the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{SourceArgs, parse_duration};
use crate::engine::Engine;
use crate::engine::checkpoint::{self, CheckpointError};
use crate::engine::watch::{self, Msg};
use crate::server::{App, Exposition};
use crate::source::journal::Journal;

pub use crate::engine::capture::CAPTURE_BYTES;

mod otlp;
pub use otlp::OtlpArgs;
use otlp::{EVENT_BACKFILL_MARKER, event_backfill_until};

/// The default port: in the Prometheus exporter range, and not 9464, which
/// Claude Code's own OpenTelemetry Prometheus exporter uses.
pub const DEFAULT_PORT: u16 = 9477;

/// The flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where transcripts are and how to count them.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Address to listen on: `HOST:PORT`, `[::1]:PORT`, `localhost:PORT`, or `:PORT` (loopback).
    /// Use 0.0.0.0:PORT only if you mean to expose it.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = "127.0.0.1:9477", value_parser = super::units::parse_listen)]
    pub listen: SocketAddr,

    /// The URL people reach this server at (as Prometheus's flag of the same name), for
    /// links to the console in Slack lines. Default: from `--web.listen-address`
    /// (127.0.0.1 for an unspecified address; no links when the port is 0).
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Path of the metrics endpoint.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics")]
    pub telemetry_path: String,

    /// Limits, TLS and auth of the endpoint (boxed: `Command`'s variants stay alike in size).
    #[command(flatten)]
    pub web: Box<WebArgs>,

    /// Folder for the checkpoint (positions and counter totals).
    /// Default: $XDG_STATE_HOME/claude-sessions, else ~/.local/state/claude-sessions.
    #[arg(long, value_name = "DIR", env = "CLAUDE_SESSIONS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Poll only (no inotify): for network filesystems or where events are unreliable.
    #[arg(long)]
    pub poll: bool,

    /// How often to scan folders for changes events missed (and, with --poll, for all
    /// changes) while file events cannot be trusted: a folder not watched, an event lost,
    /// a file or folder to retry. While they can, every 5 min (or this, if longer).
    /// Default: 10s with file events, 1s with --poll.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub reconcile_interval: Option<Duration>,

    /// How often to see whether the whole state should be rewritten: new lines are
    /// made durable at once in a journal, folded into the checkpoint once it is as
    /// large as the checkpoint (at least 4 MiB), and every 15 minutes when something changed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,

    /// How often to look for exited Claude Code processes: a session whose process is gone
    /// ends (`session_end`, reason `process_exit`). 0 turns the check off.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub process_check_interval: Duration,

    /// What realtime events carry, and the rules checked on tool calls.
    #[command(flatten)]
    pub events: EventArgs,

    // The brackets are the help's syntax, not doc links.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// POST realtime events to URL[,format=slack][,type=a|b][,project=…][,tool=…][,agent=main]
    /// (repeatable). Headers (tokens) go in --webhook-config, never on the command line.
    #[arg(long, value_name = "URL[,KEY=VALUE…]")]
    pub webhook: Vec<String>,

    #[allow(rustdoc::broken_intra_doc_links)]
    /// TOML file of [[webhook]] tables (per-hook filters, headers, limits).
    #[arg(long, value_name = "FILE")]
    pub webhook_config: Option<PathBuf>,

    /// Ended sessions are forgotten this long after their last activity (their counts stay in
    /// the counters). The default outlives Claude Code's 30-day transcript clean-up.
    #[arg(long, value_name = "DURATION", default_value = "40d", value_parser = parse_duration)]
    pub session_retention: Duration,

    /// OTLP metrics, traces and logs (boxed, as `web`).
    #[command(flatten)]
    pub otlp: Box<OtlpArgs>,
}

/// The HTTP endpoint's limits, TLS and basic auth.
#[derive(Debug, Args, Clone)]
pub struct WebArgs {
    /// TLS and basic auth, in the Prometheus exporter-toolkit format (tls_server_config,
    /// basic_auth_users). Read again when it changes; a broken change keeps the old one.
    #[arg(id = "web.config.file", long = "web.config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Most connections at once (event streams included), lowered to fit the descriptor
    /// limit. At the cap, a new connection closes the one idle longest.
    #[arg(
        id = "web.max-connections",
        long = "web.max-connections",
        value_name = "N",
        default_value_t = 512,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_connections: u64,

    /// A connection must send its request head (and TLS handshake) within this long of
    /// connecting, or of the first byte of a later request.
    #[arg(
        id = "web.header-timeout",
        long = "web.header-timeout",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub header_timeout: Duration,

    /// A kept-alive connection with no request for this long is closed; so is a response
    /// that moves no byte for this long (at least 30s, so event streams stay).
    #[arg(
        id = "web.idle-timeout",
        long = "web.idle-timeout",
        value_name = "DURATION",
        default_value = "2m",
        value_parser = parse_duration
    )]
    pub idle_timeout: Duration,
}

/// What realtime events carry (serve's `/api/events` and webhooks, `watch`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Events")]
pub struct EventArgs {
    /// Put message content on events: prompt text, tool input and output (each cut to
    /// --content-max-bytes). Off by default: transcripts hold code and secrets.
    #[arg(long)]
    pub include_content: bool,

    /// With --include-content: the size cap of each prompt, tool input or output.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = super::units::size_at_least(16))]
    pub content_max_bytes: u64,

    /// Rules file (TOML) for risky tool calls (rule_match events, rule_matches_total);
    /// it adds to the built-in rules unless it says `builtin = false`.
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_RULES")]
    pub rules: Option<PathBuf>,

    /// Check no rules at all.
    #[arg(long, conflicts_with = "rules")]
    pub no_rules: bool,
}

impl EventArgs {
    /// The rules to check (`None` with --no-rules). Errors: an unreadable or invalid
    /// rules file.
    pub(crate) fn rules(&self) -> anyhow::Result<Option<crate::rules::Rules>> {
        if self.no_rules {
            return Ok(None);
        }
        Ok(Some(match &self.rules {
            Some(p) => crate::rules::Rules::load(p)?,
            None => crate::rules::Rules::builtin(),
        }))
    }
}

/// `scheme://host:port` of a listen address, as a person's browser reaches it (127.0.0.1
/// for an unspecified address).
fn base_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}", addr.port())
}

/// The state folder when `--state-dir` and `CLAUDE_SESSIONS_STATE_DIR` are not given:
/// `$XDG_STATE_HOME/claude-sessions`, else `~/.local/state/claude-sessions`. Errors: neither is set.
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("claude-sessions"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --state-dir")?;
    Ok(PathBuf::from(home).join(".local/state/claude-sessions"))
}

/// Run the daemon until SIGINT or SIGTERM (or its engine stops): resume from the
/// checkpoint and journal, follow transcripts live, serve the endpoint, push OTLP and
/// webhooks; write the checkpoint at exit. Errors: bad flags, web config or OTLP
/// settings, a state folder that cannot be created or that another daemon holds, an
/// address that cannot be bound.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !args.telemetry_path.starts_with('/') || args.telemetry_path == "/" {
        anyhow::bail!("--web.telemetry-path must start with / and not be / itself");
    }
    if args.web.header_timeout.is_zero() || args.web.idle_timeout.is_zero() {
        anyhow::bail!("--web.header-timeout and --web.idle-timeout must be above 0");
    }
    // Before anything else opens files: a bad web config is a start-up error.
    let web_config = match &args.web.config_file {
        Some(p) => {
            let w = crate::server::web_config::Watched::load(p)?;
            let cfg = w.snapshot();
            tracing::info!(
                path = %p.display(),
                tls = cfg.tls.is_some(),
                users = cfg.users.as_ref().map_or(0, |u| u.hashes.len()),
                "Web config loaded."
            );
            Some(Arc::new(w))
        }
        None => None,
    };
    let requested = usize::try_from(args.web.max_connections).unwrap_or(usize::MAX);
    let budget = crate::server::conn::budget(requested);
    if budget.max_connections < requested {
        tracing::info!(
            fd_limit = budget.fd_limit,
            reserve = budget.reserve,
            max_connections = budget.max_connections,
            "Connection cap lowered to fit the descriptor limit."
        );
    }
    let limits = crate::server::conn::Limits {
        max_connections: budget.max_connections,
        header_timeout: args.web.header_timeout,
        idle_timeout: args.web.idle_timeout,
    };
    let mut settings = args.source.settings()?;
    let otlp = args.otlp.config()?;
    if args.otlp.otlp_include_content {
        if otlp.as_ref().is_none_or(|c| c.traces.is_none()) {
            anyhow::bail!("--otlp-include-content needs OTLP traces (--otlp-traces)");
        }
        let cap = args.otlp.otlp_content_max_bytes as usize;
        // Captured in full up to 64 KiB; each consumer cuts to its own cap.
        settings.capture_content = Some(settings.capture_content.unwrap_or(0).max(cap).max(CAPTURE_BYTES));
        settings.aggregator.trace_content = Some(cap);
        tracing::warn!("Message content goes into traces (--otlp-include-content).");
    }
    if args.otlp.otlp_logs_include_content && !args.events.include_content {
        anyhow::bail!("--otlp-logs-include-content needs --include-content (events carry the text)");
    }
    let state_dir = match args.state_dir {
        Some(d) => d,
        None => default_state_dir()?,
    };
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create state folder {}", state_dir.display()))?;
    // A folder used before held counters that may have been served: never serve
    // below them, even when no checkpoint was written (a first run killed early).
    let used_before = state_dir.join(checkpoint::LOCK_NAME).exists();
    // One daemon per state folder; held until this function returns, after the last checkpoint.
    let _lock = checkpoint::lock(&state_dir)?;

    let detail = crate::events::Detail {
        summaries: args.events.include_content,
        content: args.events.include_content,
        max_bytes: args.events.content_max_bytes as usize,
    };
    let rules = args.events.rules()?.map(std::sync::Arc::new);
    if detail.content || rules.is_some() {
        settings.capture_content = Some(settings.capture_content.unwrap_or(0).max(CAPTURE_BYTES));
    }
    let mut engine = Engine::new(settings);
    let mut restored = false;
    let mut journal_seq = 0;
    match checkpoint::load(&state_dir) {
        Ok(Some(cp)) => {
            tracing::info!(path = %state_dir.display(), files = cp.files.len(), "Resuming from checkpoint.");
            journal_seq = cp.journal_seq;
            engine.restore(cp);
            restored = true;
        }
        Ok(None) => tracing::info!(path = %state_dir.display(), "No checkpoint; reading all history."),
        Err(e @ CheckpointError::Corrupt { .. }) => tracing::warn!(error = %e, "Rebuilding from transcript files."),
        Err(e) => tracing::warn!(error = %e, "Rebuilding from transcript files."),
    }
    // What was counted after the checkpoint, durable in the journal, counts again
    // before anything is served. Without a checkpoint the files are read from the
    // start, so the journal's records (all after some checkpoint) would count twice.
    let (mut journal, records) = Journal::open(&state_dir, journal_seq)?;
    if restored {
        let n = engine.replay(records);
        if n > 0 {
            tracing::info!(records = n, "Applied the journal written after the checkpoint.");
        }
    } else if journal.bytes() > 0 {
        tracing::warn!("Journal without a usable checkpoint; rebuilding from transcript files instead.");
        journal.reset()?;
    }
    engine.set_journal(journal);
    let mut exporter = match otlp {
        Some(cfg) => {
            for (signal, ep) in [("metrics", &cfg.metrics), ("traces", &cfg.traces), ("logs", &cfg.logs)] {
                if let Some(ep) = ep {
                    tracing::info!(signal, endpoint = %ep.url, protocol = ?ep.protocol, "Pushing OTLP.");
                }
            }
            let traces = cfg.traces.is_some();
            let backfill = cfg.backfill;
            let exporter = crate::sinks::otlp::Exporter::start(cfg, engine.aggregator(), Some(&state_dir))?;
            if traces {
                let history = backfill.then(|| {
                    let sink = exporter.blocking_sink();
                    let send: crate::engine::TraceBackfill =
                        Box::new(move |settings, since| crate::sinks::backfill::traces(settings, since, sink));
                    send
                });
                engine.set_span_sink(Some(exporter.sink()), history);
            } else {
                engine.set_span_sink(None, None);
            }
            Some(exporter)
        }
        None => {
            engine.set_span_sink(None, None);
            None
        }
    };
    // Realtime events for new activity: /api/events, webhooks.
    let bus = crate::events::Bus::new(4096, 10_000);
    let emitter = crate::state::live::Emitter {
        sink: bus.sink(),
        detail,
        since_ms: 0,
        rules,
        stats: Some(std::sync::Arc::clone(&bus.stats)),
    };
    if let Some(x) = &mut exporter {
        // Subscribed before anything is published: every event is a log record.
        x.follow_events(&bus);
        if let Some(sink) = x.blocking_event_sink().filter(|_| args.otlp.otlp_backfill) {
            let template = crate::state::live::Emitter { sink, stats: None, ..emitter.clone() };
            let marker = state_dir.join(EVENT_BACKFILL_MARKER);
            engine.set_event_backfill(Box::new(move |settings, since| {
                let Some(until) = event_backfill_until(&marker, since) else { return 0 };
                let n = crate::sinks::backfill::events(settings, until, template);
                if let Err(e) = std::fs::write(&marker, format!("{{\"until_ms\":{until},\"done\":true}}\n")) {
                    tracing::warn!(error = %e, "Cannot record that the events of history were sent.");
                }
                n
            }));
        }
    }
    engine.set_events(emitter, None);
    if !args.process_check_interval.is_zero() {
        engine.enable_process_check();
    }
    // Parsed here, not by clap: its errors would print the whole value, and a webhook URL is a secret.
    let mut hooks = args
        .webhook
        .iter()
        .map(|v| crate::sinks::webhook::WebhookConfig::parse_flag(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    if let Some(p) = &args.webhook_config {
        hooks.extend(crate::sinks::webhook::load_config(p)?);
    }
    let tls = web_config.as_ref().is_some_and(|w| w.snapshot().tls.is_some());
    let console = args.external_url.clone().or_else(|| (args.listen.port() != 0).then(|| base_url(args.listen, tls)));
    for h in &mut hooks {
        h.console_url = console.clone();
    }
    let webhooks = crate::sinks::webhook::Webhooks::start(hooks, &bus)?;
    for d in &engine.settings().projects_dirs {
        if !d.is_dir() {
            tracing::info!(path = %d.display(), "Folder does not exist yet; waiting for it.");
        }
    }

    let listener = std::net::TcpListener::bind(args.listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {}: address already in use (pick another with --web.listen-address)",
                args.listen
            )
        } else {
            anyhow::anyhow!("cannot listen on {}: {e}", args.listen)
        }
    })?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    match &web_config {
        Some(w) => w.set_listen(local),
        None => {
            if let Some(msg) = crate::server::web_config::Config::default().exposure(local) {
                tracing::warn!(listen = %local, "{msg}");
            }
        }
    }
    let endpoint = Arc::new(crate::server::Endpoint::new(limits, web_config));
    let mut exposition = Exposition::new(engine.aggregator());
    exposition.register(endpoint.collector());
    exposition.register(webhooks.collector());
    if let Some(e) = &exporter {
        exposition.register(e.collector());
    }

    // Actions (approve, deny, pause, notes) need this token; the hook and the CLI read the file.
    let (token, token_path) = crate::control::token::load_or_create(&state_dir)
        .with_context(|| format!("cannot create the control token in {}", state_dir.display()))?;
    let sessions = crate::watcher::LiveSessions::new(engine.aggregator());
    let project_of: crate::control::ProjectOf = {
        let sessions = sessions.clone();
        Arc::new(move |id| sessions.get(id).map(|s| s.project))
    };
    let store = Arc::new(crate::control::Control::new(Arc::clone(&bus), Some(state_dir.clone()), project_of));
    exposition.register(store.collector());
    let control = crate::server::control::Access {
        control: store,
        token,
        // A long-poll answers before the connection's watchdog would take it for a stalled response.
        max_wait: (limits.idle_timeout.max(crate::server::conn::MIN_STALL) - Duration::from_secs(5))
            .min(Duration::from_secs(300)),
    };
    let ready = Arc::new(AtomicBool::new(false));
    let app = Arc::new(App {
        exposition,
        ready: Arc::clone(&ready),
        serve_while_reading: !restored && !used_before,
        telemetry_path: args.telemetry_path.clone(),
        bus: std::sync::Arc::clone(&bus),
        sessions,
        history: crate::server::history::History::new(&bus),
        control,
    });
    let opts = watch::Options {
        poll: args.poll,
        reconcile_every: args.reconcile_interval.unwrap_or(if args.poll {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        }),
        tick_every: Duration::from_secs(1),
        checkpoint_every: args.checkpoint_interval,
        state_dir: Some(state_dir),
        session_retention: args.session_retention,
        process_check_every: (!args.process_check_interval.is_zero()).then_some(args.process_check_interval),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4096);
    let engine_tx = tx.clone();
    // The engine thread tells the server when it stops, even by a panic: then the
    // daemon exits with an error instead of serving numbers that no longer move.
    let (engine_done_tx, engine_done) = tokio::sync::oneshot::channel::<()>();
    let engine_thread = std::thread::Builder::new().name("engine".into()).spawn(move || {
        struct Done(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Done {
            fn drop(&mut self) {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(());
                }
            }
        }
        let _done = Done(Some(engine_done_tx));
        watch::run(engine, opts, engine_tx, rx, ready)
    })?;

    tracing::info!(
        address = %local,
        path = %args.telemetry_path,
        max_connections = limits.max_connections,
        "Serving metrics."
    );
    let tls = endpoint.config.as_ref().is_some_and(|w| w.snapshot().tls.is_some());
    let base = args.external_url.clone().unwrap_or_else(|| base_url(local, tls));
    tracing::info!(token_file = %token_path.display(), "console: {}/?token={}", base.trim_end_matches('/'), app.control.token);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let stop = async {
            tokio::select! {
                _ = super::shutdown_signal() => {}
                _ = engine_done => {}
            }
        };
        crate::server::serve(listener, app, endpoint, stop).await;
        anyhow::Ok(())
    })?;
    if engine_thread.is_finished() {
        let how = match engine_thread.join() {
            Err(_) => "panicked",
            Ok(()) => "stopped",
        };
        if let Some(e) = exporter {
            e.shutdown();
        }
        webhooks.shutdown();
        anyhow::bail!("the reading engine {how} unexpectedly; exiting so that a supervisor restarts the daemon");
    }
    tracing::info!("Shutting down; writing checkpoint.");
    let _ = tx.send(Msg::Shutdown);
    let _ = engine_thread.join();
    if let Some(e) = exporter {
        // A last metrics export and the queued spans (open turns stay in the checkpoint).
        e.shutdown();
    }
    webhooks.shutdown();
    Ok(())
}
