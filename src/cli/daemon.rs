//! The one client of the daemon's control API, for the hooks (pause check, approvals,
//! notes) and for the CLI's actions (`approve`, `deny`, `pause`, `resume`, `note`): a
//! small blocking HTTP/1.1 client over loopback.
//!
//! In: the daemon's URL (`--daemon`, plain `http://` only: the daemon listens on
//! 127.0.0.1) and the control token file. Out: typed answers, or an [`Error`] that the
//! hooks turn into their safe answer (`ask`, or no output) and the CLI into a message. Every call has its own connect and
//! read timeouts, so a daemon that is down costs a refused connection (immediate) and a
//! daemon that hangs costs at most those timeouts. Requests and answers are never
//! logged: the summary of a call is tool input.
//!
//! A blocking client on purpose: a hook is a short-lived process that makes one to three
//! calls, one after the other; starting an async runtime would cost more than the calls.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// How to reach the daemon (shared by the hooks and the CLI's actions).
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// The daemon's base URL (`serve --web.listen-address`; plain http on loopback).
    #[arg(long = "daemon", value_name = "URL", env = "CLAUDE_SESSIONS_URL", default_value = "http://127.0.0.1:9477")]
    pub url: String,

    /// The control token file `serve` writes. Default: `control-token` in the state folder
    /// (CLAUDE_SESSIONS_STATE_DIR, else $XDG_STATE_HOME/claude-sessions, else
    /// ~/.local/state/claude-sessions), as `serve` chooses it. Needed for the calls that
    /// change something (approvals, pauses, notes).
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Why a call to the daemon gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `http://host[:port][/prefix]`.
    #[error("bad daemon URL {0:?} (expected http://HOST:PORT)")]
    BadUrl(String),
    /// No connection (refused, unresolvable, connect timeout).
    #[error("the daemon at {0} cannot be reached ({1})")]
    Unreachable(String, String),
    /// Connected, but the answer did not come in time or the connection broke.
    #[error("the daemon at {0} did not answer ({1})")]
    NoAnswer(String, String),
    /// An answer that is not HTTP with a JSON body.
    #[error("the daemon at {0} gave a malformed answer ({1})")]
    Malformed(String, String),
    /// An HTTP status other than 2xx.
    #[error("the daemon answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error` field of the JSON body, or the body itself (cut short).
        message: String,
        /// The whole JSON body (`null` when there was none), for callers that explain
        /// a refusal (a 409 carries the approval as it was decided).
        body: serde_json::Value,
    },
    /// No token file to authorize an action.
    #[error("no control token at {0} ({1}); is `claude-sessions serve` running with this state folder?")]
    NoToken(String, String),
}

/// The largest answer read from the daemon (its answers are small JSON objects).
const MAX_ANSWER: u64 = 1 << 20;

/// A daemon endpoint: host, port and path prefix, plus the token for actions.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
    /// Path prefix without a trailing slash (usually empty).
    prefix: String,
    /// The token for POSTs, or why there is none.
    token: Result<String, (String, String)>,
}

/// One HTTP call's limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Per address tried.
    pub connect: Duration,
    /// Per read and write on the connection.
    pub read: Duration,
}

impl Daemon {
    /// The daemon of `args`; the token is read now (a missing one fails only the actions).
    pub fn new(args: &DaemonArgs) -> Result<Daemon, Error> {
        let rest = args.url.strip_prefix("http://").ok_or_else(|| Error::BadUrl(args.url.clone()))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(Error::BadUrl(args.url.clone()));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let token = args
            .token_path()
            .and_then(|p| crate::control::token::read(&p).map_err(|e| (p.display().to_string(), e.to_string())));
        Ok(Daemon { authority, prefix: prefix.to_owned(), token })
    }

    /// `GET path` (no token: reads are open).
    pub fn get(&self, path: &str, t: Timeouts) -> Result<serde_json::Value, Error> {
        self.call("GET", path, None, t)
    }

    /// `POST path` with a JSON body and the token.
    pub fn post(&self, path: &str, body: &serde_json::Value, t: Timeouts) -> Result<serde_json::Value, Error> {
        self.call("POST", path, Some(body), t)
    }

    /// Whether a token was found (actions need one).
    pub fn token_error(&self) -> Option<Error> {
        self.token.as_ref().err().map(|(p, why)| Error::NoToken(p.clone(), why.clone()))
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        t: Timeouts,
    ) -> Result<serde_json::Value, Error> {
        let base = format!("http://{}{}", self.authority, self.prefix);
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.prefix, self.authority
        );
        let body = body.map(|b| b.to_string());
        if let Some(b) = &body {
            let token = self.token.as_ref().map_err(|(p, why)| Error::NoToken(p.clone(), why.clone()))?;
            head.push_str(&format!(
                "Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut stream = self.connect(&base, t.connect)?;
        let broke = |e: std::io::Error| Error::NoAnswer(base.clone(), e.kind().to_string());
        stream.set_read_timeout(Some(t.read)).map_err(broke)?;
        stream.set_write_timeout(Some(t.read)).map_err(broke)?;
        stream.write_all(head.as_bytes()).map_err(broke)?;
        if let Some(b) = &body {
            stream.write_all(b.as_bytes()).map_err(broke)?;
        }
        let mut raw = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut raw).map_err(broke)?;
        let (status, json) = parse_response(&raw).map_err(|why| Error::Malformed(base.clone(), why))?;
        if !(200..300).contains(&status) {
            let message = json
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string().chars().take(200).collect());
            return Err(Error::Status { status, message, body: json });
        }
        Ok(json)
    }

    fn connect(&self, base: &str, timeout: Duration) -> Result<TcpStream, Error> {
        let addrs =
            self.authority.to_socket_addrs().map_err(|e| Error::Unreachable(base.to_owned(), e.kind().to_string()))?;
        let mut last = "no address".to_owned();
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = e.kind().to_string(),
            }
        }
        Err(Error::Unreachable(base.to_owned(), last))
    }
}

impl DaemonArgs {
    /// The token file: `--token-file` (or its env), else `control-token` in the state
    /// folder `serve` uses with the same environment. Errors: (what was looked for, why
    /// it cannot be named) when no home folder is known.
    pub fn token_path(&self) -> Result<PathBuf, (String, String)> {
        if let Some(p) = &self.token_file {
            return Ok(p.clone());
        }
        let dir = match std::env::var_os("CLAUDE_SESSIONS_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => Ok(PathBuf::from(d)),
            None => crate::cli::serve::default_state_dir(),
        };
        dir.map(|d| d.join(crate::control::token::FILE_NAME))
            .map_err(|e| (format!("<state dir>/{}", crate::control::token::FILE_NAME), e.to_string()))
    }
}

/// Status and JSON body of a whole HTTP/1.1 response (plain or chunked body).
fn parse_response(raw: &[u8]) -> Result<(u16, serde_json::Value), String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or("no HTTP status line")?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = &raw[end + 4..];
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((status, serde_json::Value::Null));
    }
    let json = serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))?;
    Ok((status, json))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&b[..eol]).ok().and_then(|s| s.split(';').next());
        let size = size.and_then(|s| usize::from_str_radix(s.trim(), 16).ok()).ok_or("bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".to_owned());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// `s` as one URL path segment (session ids are UUIDs; anything else is escaped).
pub fn segment(s: &str) -> String {
    crate::server::api::percent_encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (s, v) = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\": true}").unwrap();
        assert_eq!((s, v), (200, serde_json::json!({"a": true})));
        let raw =
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"id\r\n7\r\n\": \"x\"}\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (201, serde_json::json!({"id": "x"})));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nnot json").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(), (204, serde_json::Value::Null));
    }

    #[test]
    fn urls_and_segments() {
        let d = |url: &str| Daemon::new(&DaemonArgs { url: url.into(), token_file: Some("/nonexistent".into()) });
        let x = d("http://127.0.0.1:9477/").unwrap();
        assert_eq!((x.authority.as_str(), x.prefix.as_str()), ("127.0.0.1:9477", ""));
        let x = d("http://localhost/cs/").unwrap();
        assert_eq!((x.authority.as_str(), x.prefix.as_str()), ("localhost:80", "/cs"));
        assert!(d("https://127.0.0.1:9477").is_err(), "plain http only");
        assert!(d("http://").is_err());
        assert!(matches!(x.token_error(), Some(Error::NoToken(..))));
        assert_eq!(segment("a1-b2_c.3"), "a1-b2_c.3");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
