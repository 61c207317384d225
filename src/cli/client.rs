//! A small blocking HTTP/1.1 client for the local daemon's JSON API (the CLI's actions).
//!
//! In: the daemon's URL (`http://HOST:PORT`, `--daemon` / `CLAUDE_SESSIONS_URL`), a path,
//! and for actions the control token (read from `--token-file` /
//! `CLAUDE_SESSIONS_TOKEN_FILE`, else `<state dir>/control-token`). Out: the status and
//! the JSON body. Plain HTTP over one `std` TCP connection per request, `Connection:
//! close`: the daemon is on loopback, and a command sends one or two requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// The daemon's address when none is given (`serve`'s default listen address).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9477";
/// Connecting gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer (a long-poll's included) must come within this long.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Answers are read up to this size.
const MAX_ANSWER: u64 = 16 << 20;

/// How a client command finds the daemon and its control token.
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// The daemon's address.
    #[arg(long = "daemon", value_name = "URL", env = "CLAUDE_SESSIONS_URL", default_value = DEFAULT_URL)]
    pub daemon: String,

    /// The daemon's control token file. Default: `control-token` in the state folder
    /// (CLAUDE_SESSIONS_STATE_DIR, else $XDG_STATE_HOME/claude-sessions, else ~/.local/state/claude-sessions).
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl DaemonArgs {
    /// Where the token is read from.
    pub fn token_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.token_file {
            return Ok(p.clone());
        }
        let dir = match std::env::var_os("CLAUDE_SESSIONS_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => super::serve::default_state_dir()?,
        };
        Ok(dir.join(crate::control::token::FILE_NAME))
    }

    /// The control token. Errors: the file is missing, unreadable or holds no token.
    pub fn token(&self) -> anyhow::Result<String> {
        let path = self.token_path()?;
        crate::control::token::read(&path).with_context(|| {
            format!("cannot read the control token {} (written by `serve`; see --token-file)", path.display())
        })
    }
}

/// `POST {url}{path}` with a JSON body and `Authorization: Bearer {token}`: the status and the JSON answer
/// (`null` when the body is not JSON). Errors: the daemon cannot be reached or answers no HTTP.
pub fn post_json(
    url: &str,
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let body = serde_json::to_vec(body)?;
    request(url, "POST", path, Some(token), Some(&body))
}

/// `GET {url}{path}`: the status and the JSON answer (`null` when the body is not JSON).
/// Errors: the daemon cannot be reached or answers no HTTP.
pub fn get_json(url: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    request(url, "GET", path, None, None)
}

/// `http://host:port[/]` → (`host:port`, host header).
fn authority(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim()
        .strip_prefix("http://")
        .with_context(|| format!("daemon URL {url:?}: expected http://HOST:PORT (the daemon is local; no TLS here)"))?;
    let host = rest.split('/').next().unwrap_or("");
    anyhow::ensure!(!host.is_empty(), "daemon URL {url:?}: no host");
    Ok(if host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())) && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:80")
    })
}

fn request(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let host = authority(url)?;
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("cannot reach the daemon at {url} (is `claude-sessions serve` running?)"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(b) = body {
        stream.write_all(b)?;
    }
    stream.flush()?;
    let mut r = BufReader::new(stream.take(MAX_ANSWER));
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{url} did not answer HTTP: {:?}", line.trim()))?;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("transfer-encoding")
            && v.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let mut raw = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = raw.len();
            raw.resize(start + size, 0);
            r.read_exact(&mut raw[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        r.read_to_end(&mut raw)?;
    }
    Ok((status, serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_local_address() {
        assert_eq!(authority("http://127.0.0.1:9477").unwrap(), "127.0.0.1:9477");
        assert_eq!(authority("http://127.0.0.1:9477/").unwrap(), "127.0.0.1:9477");
        assert_eq!(authority("http://localhost").unwrap(), "localhost:80");
        assert_eq!(authority("http://[::1]:9477").unwrap(), "[::1]:9477");
        assert!(authority("https://127.0.0.1:9477").is_err());
        assert!(authority("127.0.0.1:9477").is_err());
    }
}
