//! `GET /api/ws`: the event stream of `/api/events` over a WebSocket, for clients that
//! prefer one.
//!
//! The same query (`?project=&session=&type=&tool=&agent=`, as
//! [`crate::events::Filter::from_pairs`]), the same resume (`Last-Event-ID` or
//! `?last_event_id=N`: what was missed from the replay ring, a `reset` notice when the
//! ring no longer holds it), the same `lagged` notice, from the same task
//! ([`api::pump`]). One text frame per message: `{"id": N, "event": "<type>", "data":
//! <the JSON of the SSE data line>}`; `snapshot`, `reset` and `lagged` have no `id`. A
//! ping every [`api::KEEP_ALIVE`]; the client's pings are answered and its close is
//! answered with a close. Anything the client sends otherwise is ignored.
//!
//! The handshake is checked here (GET, `Upgrade: websocket`, `Connection: upgrade`,
//! version 13, a key): a plain GET gets 426, a bad handshake 400, another method 405.
//! The 101 answer carries an [`Upgrade`] in its extensions; the connection's task
//! (`serve_http` in `server.rs`) takes it and runs the session once hyper hands the
//! socket over, so the socket stays counted, watched and evictable like an `/api/events`
//! stream. Memory per connection is bounded as for SSE: a queue of [`api::QUEUE_FRAMES`]
//! writes, and a slow reader makes its broadcast receiver fall behind, never the daemon
//! buffer more.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use hyper::header::{SEC_WEBSOCKET_VERSION, UPGRADE};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::server::api::{self, Api, Framing, HttpBody};

/// Where the WebSocket is served.
pub(crate) const PATH: &str = "/api/ws";

/// The largest message or frame a client may send (it has nothing to say but pings and a close).
const MAX_INCOMING: usize = 4 << 10;

type Session = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebSocket session waiting for its connection's socket, put in a 101 answer's extensions.
#[derive(Clone)]
pub(crate) struct Upgrade(Arc<Mutex<Option<Session>>>);

impl Upgrade {
    /// Run the session (once the 101 is written and hyper gave the socket up) until it closes.
    pub(crate) async fn run(self) {
        let session = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = session {
            s.await;
        }
    }
}

/// Answer `GET /api/ws`: 101 with an [`Upgrade`] in the extensions, or an error.
pub(crate) fn handle<B>(api: &Api, mut req: Request<B>) -> Response<HttpBody> {
    if req.method() != Method::GET {
        let mut r = api::error(StatusCode::METHOD_NOT_ALLOWED, "only GET, with a WebSocket upgrade");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let h = req.headers();
    if !has_token(h, &UPGRADE, "websocket") || !has_token(h, &CONNECTION, "upgrade") {
        return upgrade_required("a WebSocket: send Connection: Upgrade and Upgrade: websocket");
    }
    if h.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return upgrade_required("WebSocket version 13 only");
    }
    let key = match h.get(SEC_WEBSOCKET_KEY) {
        Some(k) if valid_key(k.as_bytes()) => derive_accept_key(k.as_bytes()),
        _ => return api::error(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key: expected 16 bytes in base64"),
    };
    if req.version() != Version::HTTP_11 {
        return api::error(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs HTTP/1.1");
    }
    let pairs = api::query_pairs(req.uri().query().unwrap_or(""));
    let (filter, last_id) = match api::stream_params(&req, &pairs) {
        Ok(p) => p,
        Err(e) => return api::error(StatusCode::BAD_REQUEST, &e),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // Subscribed before the ring is read (in the pump): nothing published in between is lost.
    let rx = api.bus.subscribe();
    let api = api.clone();
    let session: Session = Box::pin(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_INCOMING)).max_frame_size(Some(MAX_INCOMING));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        let (tx, queue) = mpsc::channel(api::QUEUE_FRAMES);
        // The pump ends when the queue's receiver is gone; the socket side when the pump is.
        tokio::join!(api::pump::<WsFrames>(api, rx, tx, filter, last_id), serve_socket(ws, queue));
    });
    let mut r = Response::new(Empty::new().boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r.extensions_mut().insert(Upgrade(Arc::new(Mutex::new(Some(session)))));
    r
}

fn upgrade_required(message: &str) -> Response<HttpBody> {
    let mut r = api::error(StatusCode::UPGRADE_REQUIRED, message);
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    r
}

/// Whether a comma-separated header (any of its lines) lists `token`, in any case.
fn has_token(h: &HeaderMap, name: &hyper::header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Sec-WebSocket-Key`: 16 bytes in base64 (24 characters).
fn valid_key(key: &[u8]) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(key).is_ok_and(|k| k.len() == 16)
}

/// The messages of one write: text frames, and a ping for the keep-alive.
#[derive(Default)]
struct WsFrames {
    texts: Vec<String>,
    bytes: usize,
    ping: bool,
}

impl Framing for WsFrames {
    fn push(&mut self, id: Option<u64>, event: &str, data: &str) {
        let text = message(id, event, data);
        self.bytes += text.len();
        self.texts.push(text);
    }

    fn keep_alive(&mut self) {
        self.ping = true;
    }

    fn len(&self) -> usize {
        self.bytes + usize::from(self.ping)
    }
}

/// `{"id":N,"event":"…","data":…}`, `data` (compact JSON) as it is.
fn message(id: Option<u64>, event: &str, data: &str) -> String {
    let event = serde_json::to_string(event).unwrap_or_default();
    let data = if data.is_empty() { "null" } else { data };
    match id {
        Some(id) => format!(r#"{{"id":{id},"event":{event},"data":{data}}}"#),
        None => format!(r#"{{"event":{event},"data":{data}}}"#),
    }
}

/// Write what the pump queues, answer the client, until either side is done.
async fn serve_socket<S>(mut ws: WebSocketStream<S>, mut queue: mpsc::Receiver<WsFrames>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            next = queue.recv() => match next {
                // Waits while the client does not read: the queue fills, the pump waits.
                Some(frames) => {
                    if write(&mut ws, frames).await.is_err() {
                        return;
                    }
                }
                // The bus closed (the daemon stops).
                None => {
                    let _ = ws.close(None).await;
                    return;
                }
            },
            got = ws.next() => match got {
                // Pongs (to pings and closes) are queued by tungstenite as it reads; send them now.
                Some(Ok(Message::Ping(_))) => {
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    let _ = ws.flush().await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

async fn write<S>(ws: &mut WebSocketStream<S>, frames: WsFrames) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for text in frames.texts {
        ws.feed(Message::Text(text.into())).await?;
    }
    if frames.ping {
        ws.feed(Message::Ping(Bytes::new())).await?;
    }
    ws.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_id_event_and_data_as_json() {
        let m: serde_json::Value = serde_json::from_str(&message(Some(7), "tool_use", r#"{"a":[1,"x"]}"#)).unwrap();
        assert_eq!(m, serde_json::json!({"id": 7, "event": "tool_use", "data": {"a": [1, "x"]}}));
        let m: serde_json::Value = serde_json::from_str(&message(None, "snapshot", "[]")).unwrap();
        assert_eq!(m, serde_json::json!({"event": "snapshot", "data": []}));
    }

    #[test]
    fn handshakes_are_checked() {
        let agg = crate::state::live::Aggregator::new(crate::state::live::Config::default());
        let sessions = crate::watcher::LiveSessions::new(Arc::new(Mutex::new(agg)));
        let bus = crate::events::Bus::new(16, 16);
        let history = crate::server::history::History::new(&bus);
        let api = Api { bus, sessions, history };
        let req = |method: Method, headers: &[(&str, &str)]| {
            let mut b = Request::builder().method(method).uri("/api/ws?type=tool_use");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let r = handle(&api, req(Method::GET, &good));
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's example key and answer.
        assert_eq!(r.headers()[SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(r.extensions().get::<Upgrade>().is_some());
        assert_eq!(handle(&api, req(Method::GET, &[])).status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(handle(&api, req(Method::POST, &good)).status(), StatusCode::METHOD_NOT_ALLOWED);
        let old = [good[0], good[1], ("sec-websocket-version", "8"), good[3]];
        assert_eq!(handle(&api, req(Method::GET, &old)).status(), StatusCode::UPGRADE_REQUIRED);
        let bad_key = [good[0], good[1], good[2], ("sec-websocket-key", "short")];
        assert_eq!(handle(&api, req(Method::GET, &bad_key)).status(), StatusCode::BAD_REQUEST);
        let mut bad_filter = req(Method::GET, &good);
        *bad_filter.uri_mut() = "/api/ws?type=nope".parse().unwrap();
        assert_eq!(handle(&api, bad_filter).status(), StatusCode::BAD_REQUEST);
    }
}
