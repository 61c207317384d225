//! HTTP API on the metrics server: live sessions as JSON, events as Server-Sent Events.
//!
//! * `GET /api/sessions` (`?state=active,idle&project=app&limit=N`): session snapshots,
//!   latest activity first.
//! * `GET /api/sessions/{id}`: one snapshot, or a 404 JSON error.
//! * `GET /api/sessions/{id}/events`: the session's recent events, oldest first
//!   ([`crate::server::history`]: the latest 5,000 of each of the 64 sessions with the latest
//!   events), and `last_event_id` to resume `/api/events` after. A page of them with
//!   `?limit=N&before=ID` (the latest N with a smaller id; `more` says whether earlier ones
//!   are kept) and `type=`, `tool=`, `agent=` as below ([`crate::server::history::Select`]).
//! * `GET /api/events` (`?project=&session=&type=&tool=&agent=`, as [`Filter::from_pairs`]):
//!   first a `snapshot` event (the live sessions), then one SSE event per bus event
//!   (`id:` its sequence number, `event:` its type, `data:` its JSON). A client that
//!   reconnects with `Last-Event-ID` (or `?last_event_id=`) first gets what it missed
//!   from the bus's replay ring, then the live stream, with no gap and no duplicate;
//!   if the ring no longer holds all of it, a `reset` event says so first.
//! * `GET /api/ws`: the same over a WebSocket, one JSON text frame per message
//!   (`{"id": N, "event": "<type>", "data": …}`), from the same `pump`; see
//!   `server/ws.rs` (routed in `server.rs`, which runs the upgraded socket).
//!
//! Memory per connection is bounded: events go through a small queue into the
//! response body; a client that does not read makes its broadcast receiver fall
//! behind (counted in the bus's `lagged`, and told with a `lagged` event once it
//! reads again), it never makes the daemon buffer more. Nothing here carries more
//! than the events themselves (content only with `serve --include-content`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::sinks::http::percent_decode;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

use crate::events::{Bus, Event, Filter};
use crate::state::live::{SessionSnapshot, State};
use crate::watcher::LiveSessions;

/// The body of every response of the server.
pub type HttpBody = UnsyncBoxBody<Bytes, Infallible>;

/// A comment line this often keeps proxies and clients from timing an idle stream out.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Writes queued per connection between its task and the socket, each of at most about
/// [`COALESCE_BYTES`] (plus one event): what a client that does not read can hold up.
pub(crate) const QUEUE_FRAMES: usize = 8;
const COALESCE_BYTES: usize = 16 << 10;

/// What the API reads.
#[derive(Clone)]
pub(crate) struct Api {
    /// The event bus `/api/events` subscribes to.
    pub bus: Arc<Bus>,
    /// The live sessions `/api/sessions` lists, and `/api/events` sends first.
    pub sessions: LiveSessions,
    /// Each recent session's recent events, for `/api/sessions/{id}/events`.
    pub history: Arc<crate::server::history::History>,
}

/// Whether `path` belongs to the API.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Answer an `/api/…` request. `GET /api/events` spawns a task on the current tokio runtime.
pub(crate) fn handle<B>(api: &Api, req: &Request<B>) -> Response<HttpBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let pairs = query_pairs(req.uri().query().unwrap_or(""));
    let path = req.uri().path();
    match path {
        "/api/sessions" | "/api/sessions/" => list_sessions(api, &pairs),
        "/api/events" => events(api, req, &pairs),
        _ => match path.strip_prefix("/api/sessions/").map(percent_decode) {
            Some(id) if id.strip_suffix("/events").is_some_and(|s| !s.is_empty() && !s.contains('/')) => {
                let session = id.strip_suffix("/events").unwrap_or_default();
                match crate::server::history::Select::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    Ok(sel) => json(StatusCode::OK, &api.history.select(session, sel.as_ref())),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                }
            }
            Some(id) if !id.is_empty() && !id.contains('/') => match api.sessions.get(&id) {
                Some(s) => json(StatusCode::OK, &s),
                None => json(StatusCode::NOT_FOUND, &serde_json::json!({"error": "unknown session", "id": id})),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                "not found: see /api/sessions, /api/sessions/{id}, /api/sessions/{id}/events, /api/events",
            ),
        },
    }
}

fn list_sessions(api: &Api, pairs: &[(String, String)]) -> Response<HttpBody> {
    let mut states = Vec::new();
    let mut projects = Vec::new();
    let mut limit = usize::MAX;
    for (k, v) in pairs {
        let values = v.split(',').map(str::trim).filter(|s| !s.is_empty());
        match k.as_str() {
            "state" => {
                for s in values {
                    match parse_state(s) {
                        Some(st) => states.push(st),
                        None => {
                            let msg = format!("unknown state {s:?}; one of active, idle, ended");
                            return error(StatusCode::BAD_REQUEST, &msg);
                        }
                    }
                }
            }
            "project" => projects.extend(values.map(str::to_owned)),
            "limit" => match v.parse::<usize>() {
                Ok(n) if n > 0 => limit = n,
                Ok(_) => {}
                Err(_) => return error(StatusCode::BAD_REQUEST, &format!("limit={v:?}: expected a number")),
            },
            _ => {}
        }
    }
    let list: Vec<SessionSnapshot> = api
        .sessions
        .list()
        .into_iter()
        .filter(|s| states.is_empty() || states.contains(&s.state))
        .filter(|s| projects.is_empty() || projects.contains(&s.project))
        .take(limit)
        .collect();
    let mut r = json(StatusCode::OK, &list);
    // The list is what is remembered: say how many older sessions the retention forgot.
    r.headers_mut().insert(FORGOTTEN_HEADER, HeaderValue::from(api.sessions.forgotten()));
    r
}

/// `/api/sessions`' header: sessions forgotten after `--session-retention` (not listed).
pub const FORGOTTEN_HEADER: &str = "x-sessions-forgotten";

/// `active`, `idle` or `ended`.
fn parse_state(s: &str) -> Option<State> {
    match s {
        "active" => Some(State::Active),
        "idle" => Some(State::Idle),
        "ended" => Some(State::Ended),
        _ => None,
    }
}

/// The filter and the resume point of an event stream (`/api/events`, `/api/ws`): the
/// filters of [`Filter::from_pairs`], and `Last-Event-ID` (header) or `?last_event_id=`.
/// `Err`: what is wrong, for a 400 answer.
pub(crate) fn stream_params<B>(req: &Request<B>, pairs: &[(String, String)]) -> Result<(Filter, Option<u64>), String> {
    let filter = Filter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let header = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let param = pairs.iter().rev().find(|(k, _)| k == "last_event_id").map(|(_, v)| v.trim());
    let last_id = match header.filter(|h| !h.is_empty()).or(param.filter(|p| !p.is_empty())) {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(format!("Last-Event-ID {s:?}: expected an event id"));
            }
        },
    };
    Ok((filter, last_id))
}

fn events<B>(api: &Api, req: &Request<B>, pairs: &[(String, String)]) -> Response<HttpBody> {
    let (filter, last_id) = match stream_params(req, pairs) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let mut r = if req.method() == Method::HEAD {
        Response::new(Full::new(Bytes::new()).boxed_unsync())
    } else {
        // Subscribed before the ring is read (in the task): nothing published in between is lost.
        let rx = api.bus.subscribe();
        let (tx, body) = mpsc::channel(QUEUE_FRAMES);
        tokio::spawn(pump::<SseFrames>(api.clone(), rx, tx, filter, last_id));
        Response::new(SseBody(body).boxed_unsync())
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    r
}

/// How an event stream's messages are put on the wire: one value is one write (one
/// queued item, at most about [`COALESCE_BYTES`] plus one message).
pub(crate) trait Framing: Default + Send + 'static {
    /// Written once, before the snapshot.
    fn opening() -> Option<Self> {
        None
    }
    /// Add a message: `id` for bus events, `None` for `snapshot`, `reset` and `lagged`;
    /// `data` is compact JSON.
    fn push(&mut self, id: Option<u64>, event: &str, data: &str);
    /// Add something that keeps an idle connection from timing out.
    fn keep_alive(&mut self);
    /// Bytes added so far.
    fn len(&self) -> usize;
    /// Nothing added.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// One message alone.
    fn one(id: Option<u64>, event: &str, data: &str) -> Self {
        let mut f = Self::default();
        f.push(id, event, data);
        f
    }
    /// A bus event.
    fn push_event(&mut self, e: &Event) {
        self.push(Some(e.id), e.kind.name(), &serde_json::to_string(e).unwrap_or_default());
    }
}

/// Server-Sent Events: `retry:` first, keep-alive comments.
#[derive(Default)]
struct SseFrames(Vec<u8>);

impl Framing for SseFrames {
    fn opening() -> Option<Self> {
        // `retry`: how long an EventSource waits before reconnecting.
        Some(SseFrames(b"retry: 1000\n\n".to_vec()))
    }

    fn push(&mut self, id: Option<u64>, event: &str, data: &str) {
        self.0.extend_from_slice(&sse(id, event, data));
    }

    fn keep_alive(&mut self) {
        self.0.extend_from_slice(b": keep-alive\n\n");
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Feeds one event stream (SSE or WebSocket, by `F`) until the client goes away.
pub(crate) async fn pump<F: Framing>(
    api: Api,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<F>,
    filter: Filter,
    last_id: Option<u64>,
) {
    if let Some(opening) = F::opening()
        && tx.send(opening).await.is_err()
    {
        return;
    }
    let live: Vec<SessionSnapshot> = api
        .sessions
        .list()
        .into_iter()
        .filter(|s| s.state != State::Ended)
        .filter(|s| filter.projects.is_empty() || filter.projects.contains(&s.project))
        .filter(|s| filter.sessions.is_empty() || filter.sessions.contains(&s.id))
        .collect();
    if tx.send(F::one(None, "snapshot", &serde_json::to_string(&live).unwrap_or_default())).await.is_err() {
        return;
    }
    // Live events up to this id were already replayed from the ring (or predate the client's id).
    let mut replayed_to = 0;
    if let Some(last) = last_id {
        let next = api.bus.next_id();
        let (replay, note) = if last >= next {
            // An id this bus never gave out: the daemon restarted since. Everything it still has is new.
            let (replay, missed) = api.bus.since(0);
            let note = serde_json::json!({
                "reason": "unknown_id",
                "last_event_id": last,
                "next_id": next,
                "message": "this id is from an earlier run of the daemon: replaying this run's events from the oldest kept",
                "complete": !missed,
            });
            (replay, Some(note))
        } else {
            replayed_to = last;
            let (replay, missed) = api.bus.since(last);
            let note = missed.then(|| {
                let first = replay.first().map_or(next, |e| e.id);
                serde_json::json!({
                    "reason": "buffer_exceeded",
                    "last_event_id": last,
                    "first_available": first,
                    "missed": first.saturating_sub(last + 1),
                    "message": "events after last_event_id were already dropped from the replay buffer",
                })
            });
            (replay, note)
        };
        if let Some(note) = note
            && tx.send(F::one(None, "reset", &note.to_string())).await.is_err()
        {
            return;
        }
        for e in replay {
            replayed_to = replayed_to.max(e.id);
            if filter.matches(&e) {
                let mut f = F::default();
                f.push_event(&e);
                if tx.send(f).await.is_err() {
                    return;
                }
            }
        }
    }
    let start = tokio::time::Instant::now() + KEEP_ALIVE;
    let mut keep_alive = tokio::time::interval_at(start, KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lagged = |out: &mut F, n: u64| {
        api.bus.stats.lagged.fetch_add(n, Ordering::Relaxed);
        let note = serde_json::json!({
            "missed": n,
            "message": "this client read too slowly; the oldest events were skipped",
        });
        out.push(None, "lagged", &note.to_string());
    };
    let wanted = |e: &Event| e.id > replayed_to && filter.matches(e);
    loop {
        let mut out = F::default();
        let mut closed = false;
        tokio::select! {
            r = rx.recv() => match r {
                Ok(e) if wanted(&e) => out.push_event(&e),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => lagged(&mut out, n),
                Err(RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => out.keep_alive(),
            _ = tx.closed() => return,
        }
        // What else is already there goes out in the same write (fewer wake-ups and syscalls in a burst).
        while out.len() < COALESCE_BYTES {
            match rx.try_recv() {
                Ok(e) if wanted(&e) => out.push_event(&e),
                Ok(_) => {}
                Err(TryRecvError::Lagged(n)) => lagged(&mut out, n),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
        }
        // Waits while the client does not read; meanwhile the broadcast receiver falls behind.
        if !out.is_empty() && tx.send(out).await.is_err() {
            return;
        }
        if closed {
            return;
        }
    }
}

/// One SSE event; `data` must be a single line (compact JSON is).
fn sse(id: Option<u64>, event: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push('\n');
    }
    s.push_str("event: ");
    s.push_str(event);
    s.push_str("\ndata: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// A response body fed by a bounded channel.
struct SseBody(mpsc::Receiver<SseFrames>);

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(Bytes::from(b.0)))))
    }
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Response<HttpBody> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<HttpBody> {
    json(status, &serde_json::json!({ "error": message }))
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// `a b/c` → `a%20b%2Fc`: everything but unreserved characters escaped.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let p = query_pairs("type=tool_use,message&tool=mcp__github__x&project=my+app%2Fweb&x&bad=%zz%4");
        assert_eq!(
            p,
            vec![
                ("type".into(), "tool_use,message".into()),
                ("tool".into(), "mcp__github__x".into()),
                ("project".into(), "my app/web".into()),
                ("x".into(), String::new()),
                ("bad".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(percent_decode(&percent_encode("a b/ç&=")), "a b/ç&=");
    }

    #[test]
    fn sse_frames_are_well_formed() {
        assert_eq!(&sse(Some(7), "tool_use", "{\"a\":1}")[..], b"id: 7\nevent: tool_use\ndata: {\"a\":1}\n\n");
        assert_eq!(&sse(None, "snapshot", "[]")[..], b"event: snapshot\ndata: []\n\n");
    }
}
