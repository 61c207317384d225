//! `sessions`: a table (or JSON) of live and recent sessions, from history read once or
//! from a running daemon's `/api/sessions`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::SourceArgs;
use crate::engine::Engine;
use crate::state::live::{SessionSnapshot, State};
use crate::watcher::LiveSessions;

/// A session state `--state` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Activity within the idle timeout.
    Active,
    /// No activity for the idle timeout, and not ended.
    Idle,
    /// No activity for the end timeout, or its Claude Code process has exited.
    Ended,
}

impl StateArg {
    fn state(self) -> State {
        match self {
            StateArg::Active => State::Active,
            StateArg::Idle => State::Idle,
            StateArg::Ended => State::Ended,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StateArg::Active => "active",
            StateArg::Idle => "idle",
            StateArg::Ended => "ended",
        }
    }
}

/// The flags of `sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Where transcripts are and how to count them (unused with --url).
    #[command(flatten)]
    pub source: SourceArgs,

    /// Ask a running daemon instead of reading history, e.g. http://127.0.0.1:9477
    /// (its `/api/sessions`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// A JSON array of session snapshots instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Only sessions in these states (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATE")]
    pub state: Vec<StateArg>,

    /// Only these projects (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub project: Vec<String>,

    /// At most this many sessions, latest activity first (0: all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// Print the sessions (a table, or JSON with --json), latest activity first. Errors:
/// bad source settings, or a daemon at --url that cannot be reached or answers no list.
pub fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let (all, forgotten) = match &args.url {
        Some(url) => fetch(url, &args)?,
        None => {
            let mut engine = Engine::new(args.source.settings()?);
            engine.scan(2, &|_, _| {});
            let live = LiveSessions::new(engine.aggregator());
            (live.list(), live.forgotten())
        }
    };
    let filtered = !args.state.is_empty() || !args.project.is_empty();
    let states: Vec<State> = args.state.iter().map(|s| s.state()).collect();
    let list: Vec<SessionSnapshot> = all
        .into_iter()
        .filter(|s| states.is_empty() || states.contains(&s.state))
        .filter(|s| args.project.is_empty() || args.project.contains(&s.project))
        .take(if args.limit == 0 { usize::MAX } else { args.limit })
        .collect();
    let out = if args.json { serde_json::to_string_pretty(&list)? + "\n" } else { table(&list, filtered) };
    if forgotten > 0 {
        eprintln!("{}", forgotten_note(forgotten));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Why older sessions are missing, and where to find them.
fn forgotten_note(n: u64) -> String {
    format!(
        "note: {n} older session{} not listed: the daemon forgot {} after --session-retention (default 40d). \
         Their usage is still in /metrics; list them with `claude-sessions scan --by session`, \
         or run serve with a longer --session-retention (e.g. 400d).",
        if n == 1 { " is" } else { "s are" },
        if n == 1 { "it" } else { "them" }
    )
}

/// `GET {url}/api/sessions` with the state and project filters: the sessions, and how
/// many the daemon forgot (its `x-sessions-forgotten` header).
fn fetch(url: &str, args: &SessionsArgs) -> anyhow::Result<(Vec<SessionSnapshot>, u64)> {
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/api/sessions").unwrap_or(base);
    anyhow::ensure!(
        base.starts_with("http://") || base.starts_with("https://"),
        "--url {url}: expected http://HOST:PORT (the daemon's address)"
    );
    let mut query = Vec::new();
    if !args.state.is_empty() {
        query.push(format!("state={}", args.state.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
    }
    for p in &args.project {
        query.push(format!("project={}", crate::server::api::percent_encode(p)));
    }
    let target = if query.is_empty() {
        format!("{base}/api/sessions")
    } else {
        format!("{base}/api/sessions?{}", query.join("&"))
    };
    let uri: hyper::Uri = target.parse().map_err(|e| anyhow::anyhow!("--url {url}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body, forgotten) = rt.block_on(async {
        use http_body_util::BodyExt;
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
        let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<hyper::body::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        let req = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::new())?;
        let fut = async {
            let res = client.request(req).await?;
            let status = res.status();
            let forgotten = res
                .headers()
                .get(crate::server::api::FORGOTTEN_HEADER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            let body = res.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body, forgotten))
        };
        match tokio::time::timeout(Duration::from_secs(30), fut).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("cannot reach {target}: {e:#}")),
            Err(_) => anyhow::bail!("no answer from {target} within 30s"),
        }
    })?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        anyhow::bail!("{target} answered {status}: {}", text.trim());
    }
    let list = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("{target} did not answer a list of sessions: {e}"))?;
    Ok((list, forgotten))
}

/// The readable table.
fn table(list: &[SessionSnapshot], filtered: bool) -> String {
    if list.is_empty() {
        return if filtered { "no sessions match --state / --project\n" } else { "no sessions\n" }.into();
    }
    let head = [
        "SESSION",
        "PROJECT",
        "BRANCH",
        "STATE",
        "STARTED (UTC)",
        "DURATION",
        "MODELS",
        "TOKENS",
        "COST",
        "PROMPTS",
        "TOOLS",
        "ERRORS",
        "CONTEXT",
    ];
    // Numbers are right-aligned.
    let right = [false, false, false, false, false, true, false, true, true, true, true, true, true];
    // Unknown, not zero, for a session whose main transcript was not read.
    let main = |s: &SessionSnapshot, v: String| if s.main_chain { v } else { "-".into() };
    let rows: Vec<[String; 13]> = list
        .iter()
        .map(|s| {
            [
                if s.main_chain { short_id(&s.id).to_owned() } else { format!("{}*", short_id(&s.id)) },
                cut(&s.project, 24),
                cut(s.git_branch.as_deref().filter(|b| !b.is_empty()).unwrap_or("-"), 20),
                state_name(s.state).to_owned(),
                s.first_ms.map_or("-".into(), utc_minute),
                duration(s.duration_ms),
                cut(&s.models.iter().map(|m| short_model(m)).collect::<Vec<_>>().join(","), 28),
                count(total_tokens(s)),
                format!("${:.2}", s.cost_usd),
                main(s, s.prompts.to_string()),
                s.tool_calls.to_string(),
                (s.tool_errors + s.api_errors).to_string(),
                main(
                    s,
                    if s.context_window > 0 { format!("{:.0}%", s.context_utilization * 100.0) } else { "-".into() },
                ),
            ]
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut o = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        let _ = writeln!(o, "{}", l.trim_end());
    };
    line(&head);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if list.iter().any(|s| !s.main_chain) {
        o.push_str("* only its sub-agents' files were read (the main transcript is not in the projects folders): prompts and context unknown\n");
    }
    o
}

pub(crate) fn state_name(s: State) -> &'static str {
    match s {
        State::Active => "active",
        State::Idle => "idle",
        State::Ended => "ended",
    }
}

/// Input, output and cache tokens together.
pub(crate) fn total_tokens(s: &SessionSnapshot) -> u64 {
    s.tokens.input + s.tokens.output + s.tokens.cache_read + s.tokens.cache_creation
}

/// The first 8 characters of a session id (a UUID's first group).
pub(crate) fn short_id(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// `claude-opus-4-6` → `opus-4-6`; `claude-sonnet-4-5-20250929` → `sonnet-4-5`.
pub(crate) fn short_model(m: &str) -> String {
    let m = m.strip_prefix("claude-").unwrap_or(m);
    match m.rsplit_once('-') {
        Some((head, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => head.to_owned(),
        _ => m.to_owned(),
    }
}

/// At most `max` characters, `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `950`, `12.3k`, `4.56M`, `1.2B`.
pub(crate) fn count(n: u64) -> String {
    let f = n as f64;
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", f / 1e3)
    } else if n < 1_000_000_000 {
        format!("{:.2}M", f / 1e6)
    } else {
        format!("{:.2}B", f / 1e9)
    }
}

/// `45s`, `12m05s`, `3h07m`, `2d04h`.
pub(crate) fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        _ if s < 60 => format!("{s}s"),
        _ if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// (year, month, day, hour, minute, second) in UTC of epoch milliseconds.
pub(crate) fn utc(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) / 1000);
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `2025-11-13 14:03`.
pub(crate) fn utc_minute(ms: i64) -> String {
    let (y, m, d, h, min, _) = utc(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc_minute(1_763_042_587_000), "2025-11-13 14:03");
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(duration(3_725_000), "1h02m");
        assert_eq!(duration(59_999), "59s");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(4_560_000), "4.56M");
        assert_eq!(short_model("claude-sonnet-4-5-20250929"), "sonnet-4-5");
        assert_eq!(short_model("claude-opus-4-6"), "opus-4-6");
        assert_eq!(short_id("3f2a91c0-1111-2222"), "3f2a91c0");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
