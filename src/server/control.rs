//! The control API: approvals, pause and resume, notes; the token check and the console login.
//!
//! In: requests for [`crate::control::Control`]. Out: JSON answers and the store's changes.
//!
//! * `POST /api/approvals` (a [`NewApproval`]) → 201 `{"id"}`; `GET /api/approvals` →
//!   `{"approvals": [...]}`; `GET /api/approvals/{id}` (`?wait=SECONDS` long-polls until
//!   it is decided); `POST /api/approvals/{id}` `{"decision": "allow"|"deny", "reason"}`
//!   → the approval, 404 unknown, 409 already decided; `POST /api/approvals/{id}/expire`.
//! * `POST /api/sessions/{id}/pause` `{"message"}`, `POST /api/sessions/{id}/resume`,
//!   `GET /api/control/{id}` → `{"paused", "message", "notes_pending"}`.
//! * `POST /api/sessions/{id}/notes` `{"text"}` → 201 `{"id"}`;
//!   `POST /api/sessions/{id}/notes/take` → `{"notes": [{id, text}]}`, each note once.
//!
//! Promises: every request that is not GET or HEAD under `/api` (an action) needs the
//! control token, as `Authorization: Bearer <token>` or the cookie `cs_token` (401
//! otherwise), and is refused with 403 when its `Origin` names another host:port than
//! its `Host`: a page of another site cannot act, and no CORS header is ever sent.
//! `GET /?token=<token>` sets the cookie (HttpOnly, SameSite=Strict) and redirects to `/`.
//! Request bodies are read up to [`MAX_BODY`]; reads stay open to all, as the rest of the API.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, AUTHORIZATION, COOKIE, HOST, HeaderValue, LOCATION, ORIGIN, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::control::{Control, DecideError, Decision, NewApproval, token};
use crate::server::api::{HttpBody, error, json, query_pairs};
use crate::sinks::http::percent_decode;

/// A request body is read up to this many bytes (413 beyond).
pub const MAX_BODY: usize = 64 << 10;
/// The cookie the console keeps the token in.
pub const COOKIE_NAME: &str = "cs_token";

/// What the control API needs.
#[derive(Debug)]
pub struct Access {
    /// The store of approvals, pauses and notes.
    pub control: Arc<Control>,
    /// The control token actions must show.
    pub token: String,
    /// The longest `?wait=` of a long-poll: under the endpoint's stall limit, so the
    /// connection's watchdog never cuts a waiting request.
    pub max_wait: Duration,
}

/// Who acted, by how the token came.
fn caller(access: &Access, req: &Request<Incoming>) -> Option<&'static str> {
    let bearer = req
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .any(|(_, t)| token::matches(&access.token, t.trim()));
    if bearer {
        return Some("api");
    }
    cookie(req).any(|t| token::matches(&access.token, t)).then_some("console")
}

/// Every `cs_token` value in the `Cookie` headers.
fn cookie(req: &Request<Incoming>) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.trim())
}

/// `Some(403)` when the request carries an `Origin` that is not the host it was sent to.
fn cross_origin<B>(req: &Request<B>) -> Option<Response<HttpBody>> {
    let origin = req.headers().get(ORIGIN)?;
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    let same = origin.to_str().ok().and_then(|o| o.split_once("://")).is_some_and(|(scheme, authority)| {
        let authority = authority.trim_end_matches('/').to_ascii_lowercase();
        let default_port = match scheme {
            "http" => ":80",
            "https" => ":443",
            _ => return false,
        };
        host.as_deref().is_some_and(|h| h == authority || *h == format!("{authority}{default_port}"))
    });
    (!same).then(|| error(StatusCode::FORBIDDEN, "cross-origin request refused"))
}

/// The control API's answer to `req`, or the request back when it is not the control API's.
pub(crate) async fn route(access: &Access, req: Request<Incoming>) -> Result<Response<HttpBody>, Request<Incoming>> {
    let path = req.uri().path();
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    if path == "/" && read && query_pairs(req.uri().query().unwrap_or("")).iter().any(|(k, _)| k == "token") {
        return Ok(login(access, &req));
    }
    if !crate::server::api::is_api_path(path) {
        return Err(req);
    }
    if read {
        return match path.strip_prefix("/api/") {
            Some("approvals" | "approvals/") => {
                Ok(json(StatusCode::OK, &serde_json::json!({ "approvals": access.control.list() })))
            }
            Some(rest) if rest.starts_with("approvals/") || rest.starts_with("control/") => Ok(get(access, &req).await),
            _ => Err(req),
        };
    }
    if let Some(r) = cross_origin(&req) {
        return Ok(r);
    }
    let Some(by) = caller(access, &req) else {
        return Ok(error(StatusCode::UNAUTHORIZED, "missing or wrong control token (see `serve`'s console URL)"));
    };
    if req.method() != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "actions are POST");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
        return Ok(r);
    }
    let path = path.to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, &format!("body over {MAX_BODY} bytes")));
        }
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "body could not be read")),
    };
    Ok(post(access, &path, &body, by))
}

/// `GET /?token=…`: the right token becomes the console's cookie.
fn login(access: &Access, req: &Request<Incoming>) -> Response<HttpBody> {
    if let Some(r) = cross_origin(req) {
        return r;
    }
    let pairs = query_pairs(req.uri().query().unwrap_or(""));
    let given = pairs.iter().rev().find(|(k, _)| k == "token").map_or("", |(_, v)| v.as_str());
    if !token::matches(&access.token, given) {
        return error(StatusCode::UNAUTHORIZED, "wrong control token");
    }
    let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *r.status_mut() = StatusCode::SEE_OTHER;
    let cookie = format!("{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/", access.token);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r.headers_mut().insert(LOCATION, HeaderValue::from_static("/"));
    r
}

/// A session or approval id from a path segment: decoded, not empty, no slash, bounded.
fn id(segment: &str) -> Option<String> {
    let id = percent_decode(segment);
    (!id.is_empty() && !id.contains('/') && id.len() <= 256).then_some(id)
}

async fn get(access: &Access, req: &Request<Incoming>) -> Response<HttpBody> {
    let path = req.uri().path();
    if let Some(sid) = path.strip_prefix("/api/control/").and_then(id) {
        return json(StatusCode::OK, &access.control.status(&sid));
    }
    let Some(aid) = path.strip_prefix("/api/approvals/").and_then(id) else {
        return error(StatusCode::NOT_FOUND, "not found: see /api/approvals/{id}, /api/control/{session_id}");
    };
    let pairs = query_pairs(req.uri().query().unwrap_or(""));
    let wait = match pairs.iter().rev().find(|(k, _)| k == "wait") {
        None => None,
        Some((_, v)) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s).min(access.max_wait)),
            _ => return error(StatusCode::BAD_REQUEST, &format!("wait={v:?}: expected seconds")),
        },
    };
    let found = match wait {
        Some(w) if !w.is_zero() => access.control.wait(&aid, w).await,
        _ => access.control.get(&aid),
    };
    match found {
        Some(a) => json(StatusCode::OK, &a),
        None => json(StatusCode::NOT_FOUND, &serde_json::json!({"error": "unknown approval", "id": aid})),
    }
}

#[derive(Deserialize)]
struct DecideBody {
    decision: Decision,
    #[serde(default)]
    reason: String,
    /// Who decided (`cli`, `console`…), when the client says.
    #[serde(default)]
    by: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExpireBody {
    by: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PauseBody {
    message: Option<String>,
}

#[derive(Deserialize)]
struct NoteBody {
    text: String,
}

/// A refused action: its status and the message of its JSON error.
struct Refused(StatusCode, String);

impl Refused {
    fn new(status: StatusCode, message: &str) -> Refused {
        Refused(status, message.to_owned())
    }
}

/// The body as `T`; an empty body is `{}`.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { body };
    serde_json::from_slice(body).map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("body: {e}")))
}

/// A client-given `by`, kept short and plain; else how the token came.
fn who(given: Option<&str>, by: &'static str) -> String {
    match given.map(str::trim) {
        Some(g) if !g.is_empty() && g.len() <= 32 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            g.to_owned()
        }
        _ => by.to_owned(),
    }
}

fn decided(r: Result<crate::control::Approval, DecideError>, id: &str) -> Response<HttpBody> {
    match r {
        Ok(a) => json(StatusCode::OK, &a),
        Err(DecideError::Unknown) => {
            json(StatusCode::NOT_FOUND, &serde_json::json!({"error": "unknown approval", "id": id}))
        }
        Err(DecideError::Decided(a)) => json(
            StatusCode::CONFLICT,
            &serde_json::json!({"error": format!("already {}", a.state.as_str()), "approval": a}),
        ),
    }
}

fn post(access: &Access, path: &str, body: &[u8], by: &'static str) -> Response<HttpBody> {
    let ctl = &access.control;
    let segments: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    let r = match segments.as_slice() {
        ["approvals"] => parse::<NewApproval>(body).and_then(|new| {
            if new.session_id.is_empty() || new.tool_name.is_empty() {
                return Err(Refused::new(StatusCode::BAD_REQUEST, "session_id and tool_name are required"));
            }
            match ctl.register(new) {
                Ok(a) => Ok(json(StatusCode::CREATED, &serde_json::json!({"id": a.id}))),
                Err(full) => Err(Refused::new(StatusCode::SERVICE_UNAVAILABLE, full.0)),
            }
        }),
        ["approvals", aid] => parse::<DecideBody>(body).map(|d| {
            let aid = percent_decode(aid);
            decided(ctl.decide(&aid, d.decision, &d.reason, &who(d.by.as_deref(), by)), &aid)
        }),
        ["approvals", aid, "expire"] => parse::<ExpireBody>(body).map(|e| {
            let aid = percent_decode(aid);
            decided(ctl.expire(&aid, &who(e.by.as_deref(), "hook")), &aid)
        }),
        ["sessions", sid, action @ ("pause" | "resume" | "notes")] | ["sessions", sid, action @ "notes", "take"]
            if id(sid).is_some() =>
        {
            let sid = percent_decode(sid);
            let take = segments.len() == 4;
            match (*action, take) {
                ("pause", _) => parse::<PauseBody>(body).and_then(|p| {
                    ctl.pause(&sid, p.message.as_deref())
                        .map(|s| json(StatusCode::OK, &s))
                        .map_err(|full| Refused::new(StatusCode::TOO_MANY_REQUESTS, full.0))
                }),
                ("resume", _) => Ok(json(StatusCode::OK, &ctl.resume(&sid))),
                ("notes", false) => parse::<NoteBody>(body).and_then(|n| {
                    if n.text.trim().is_empty() {
                        return Err(Refused::new(StatusCode::BAD_REQUEST, "text is empty"));
                    }
                    if n.text.len() > crate::control::MAX_NOTE_BYTES {
                        return Err(Refused::new(StatusCode::PAYLOAD_TOO_LARGE, "note over 16 KiB"));
                    }
                    ctl.queue_note(&sid, &n.text)
                        .map(|note| json(StatusCode::CREATED, &serde_json::json!({"id": note.id})))
                        .map_err(|full| Refused::new(StatusCode::TOO_MANY_REQUESTS, full.0))
                }),
                _ => {
                    let notes: Vec<_> = ctl
                        .take_notes(&sid)
                        .into_iter()
                        .map(|n| serde_json::json!({"id": n.id, "text": n.text}))
                        .collect();
                    Ok(json(StatusCode::OK, &serde_json::json!({ "notes": notes })))
                }
            }
        }
        _ => {
            Err(Refused::new(StatusCode::NOT_FOUND, "no such action: see the README's \"Approvals, pause and notes\""))
        }
    };
    r.unwrap_or_else(|Refused(status, message)| error(status, &message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> Request<()> {
        let mut b = Request::post("/api/approvals").header(HOST, host);
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_the_same_origin_may_act() {
        assert!(cross_origin(&req(None, "127.0.0.1:9477")).is_none());
        assert!(cross_origin(&req(Some("http://127.0.0.1:9477"), "127.0.0.1:9477")).is_none());
        assert!(cross_origin(&req(Some("http://LOCALHOST"), "localhost:80")).is_none());
        for bad in ["http://evil.example", "http://127.0.0.1:9478", "null", "http://127.0.0.1:9477.evil", "file://"] {
            assert!(cross_origin(&req(Some(bad), "127.0.0.1:9477")).is_some(), "{bad}");
        }
    }

    #[test]
    fn who_keeps_plain_names_only() {
        assert_eq!(who(Some("cli"), "api"), "cli");
        assert_eq!(who(Some("x y"), "api"), "api");
        assert_eq!(who(None, "console"), "console");
    }
}
