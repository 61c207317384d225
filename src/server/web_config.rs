//! `--web.config.file`: TLS and basic auth for the HTTP endpoint, in the format of the
//! Prometheus exporter-toolkit (`tls_server_config`, `basic_auth_users`,
//! `http_server_config`), so a file written for node_exporter works here.
//!
//! In: a YAML file and the files it names (certificate, key, client CA). Out: a
//! validated [`Config`]: a rustls acceptor or none, bcrypt hashes per user, extra
//! response headers. A file that fails to parse or validate never becomes the
//! config: at start it is a [`WebConfigError`] naming the file and the key; later,
//! [`Watched`] keeps the previous config and logs a warning. [`Watched::current`] is
//! asked on each new connection and reads the files again when one of them changed
//! (size, mtime or inode), so a new user or a renewed certificate needs no restart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// A web config file that cannot be used, with the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The config file itself cannot be read (missing, a folder, no permission).
    #[error("web config {}: cannot read: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why it cannot be read.
        source: io::Error,
    },
    /// YAML syntax, an unknown key or a value of the wrong type; the parser's message
    /// names the key and the line.
    #[error("web config {}: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The YAML parser's message.
        message: String,
    },
    /// A value that parses but cannot be used: a bad bcrypt hash, a certificate or key
    /// that cannot be read or does not match, a TLS version or header not allowed, a
    /// file that became empty while watched.
    #[error("web config {}: {key}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The key at fault, dotted (`tls_server_config.cert_file`; `(file)` for a file
        /// that became empty).
        key: String,
        /// What is wrong with its value.
        message: String,
    },
}

/// The file as written. Unknown keys are errors (a misspelt `cert_file` must not
/// silently serve plain HTTP), as with the exporter-toolkit's strict parsing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// The toolkit's request rate limiter; accepted and ignored with a warning.
    #[serde(default)]
    rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The headers the exporter-toolkit lets a config set, with the values it allows
/// (empty: any value).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A validated web config.
#[derive(Debug, Default)]
pub struct Config {
    /// `None`: plain HTTP.
    pub tls: Option<Tls>,
    /// `None`: no basic auth.
    pub users: Option<Users>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Keys that were accepted but do nothing here, one sentence each.
    pub ignored: Vec<String>,
    /// The certificate, key and CA files read (a change to one is a change of config).
    files: Vec<PathBuf>,
}

/// TLS settings ready for connections.
#[derive(Clone)]
pub struct Tls {
    /// Performs the server side of the TLS handshake (certificate, key, versions,
    /// client CA).
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// A client must present a certificate signed by the client CA.
    pub requires_client_cert: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("requires_client_cert", &self.requires_client_cert).finish_non_exhaustive()
    }
}

/// Basic-auth users and their bcrypt hashes.
#[derive(Debug)]
pub struct Users {
    /// bcrypt hash of each user's password, by user name.
    pub hashes: BTreeMap<String, String>,
    /// The hash an unknown user's password is checked against, so that an unknown
    /// user costs as much time as a known one with a wrong password (no user
    /// enumeration by timing). Made at load with the highest cost among the users.
    pub dummy: String,
}

impl Config {
    /// Parse and validate `text`; relative file names are taken from `dir`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, WebConfigError> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_yaml_ng::from_str(text)
                .map_err(|e| WebConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let mut cfg = Config::default();
        if raw.rate_limit.is_some() {
            cfg.ignored.push("rate_limit is not supported and is ignored (see --web.max-connections)".into());
        }
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                cfg.ignored.push("http_server_config.http2 is ignored: the endpoint speaks HTTP/1.1".into());
            }
            for (name, value) in http.headers.unwrap_or_default() {
                let key = format!("http_server_config.headers.{name}");
                let Some((canonical, allowed)) = ALLOWED_HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(&name))
                else {
                    let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(h, _)| *h).collect();
                    return Err(invalid(&key, format!("this header cannot be set; one of {}", names.join(", "))));
                };
                if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                    return Err(invalid(&key, format!("expected one of {}, got {value:?}", allowed.join(", "))));
                }
                let v = HeaderValue::from_str(&value).map_err(|_| invalid(&key, "not a valid header value".into()))?;
                cfg.headers.push((HeaderName::from_static(lower(canonical)), v));
            }
        }
        if let Some(users) = raw.basic_auth_users.filter(|u| !u.is_empty()) {
            let mut max_cost = 0;
            for (user, hash) in &users {
                let key = format!("basic_auth_users.{user}");
                if user.contains(':') {
                    return Err(invalid(&key, "a basic-auth user name cannot contain ':'".into()));
                }
                // bcrypt's message may quote the value, and a value that is no hash may be a password.
                let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
                    invalid(&key, "not a bcrypt hash; make one with `htpasswd -nbBC 10 USER PASSWORD`".into())
                })?;
                max_cost = max_cost.max(parts.get_cost());
            }
            let dummy = bcrypt::hash(random_secret(), max_cost)
                .map_err(|e| invalid("basic_auth_users", format!("cannot make the comparison hash: {e}")))?;
            cfg.users = Some(Users { hashes: users, dummy });
        }
        if let Some(tls) = raw.tls_server_config {
            cfg.tls = tls_config(tls, dir, &invalid, &mut cfg.ignored, &mut cfg.files)?;
        }
        Ok(cfg)
    }

    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, WebConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| WebConfigError::Read { path: path.to_owned(), source: e })?;
        Config::parse(path, &text)
    }

    /// Whether clients must prove who they are (a password or a CA-signed certificate).
    pub fn authenticates(&self) -> bool {
        self.users.is_some() || self.tls.as_ref().is_some_and(|t| t.requires_client_cert)
    }

    /// What is unsafe about serving `addr` with this config, if anything.
    pub fn exposure(&self, addr: SocketAddr) -> Option<&'static str> {
        if addr.ip().is_loopback() {
            return None;
        }
        match (self.tls.is_some(), self.authenticates()) {
            (false, false) => Some(
                "Listening beyond loopback without TLS or authentication: anyone who can reach this address can read session data (see --web.config.file).",
            ),
            (true, false) => Some(
                "Listening beyond loopback without authentication: anyone who can reach this address can read session data (add basic_auth_users or client certificates).",
            ),
            (false, true) => Some(
                "Listening beyond loopback without TLS: basic-auth passwords and session data cross the network in clear.",
            ),
            (true, true) => None,
        }
    }
}

fn lower(canonical: &'static str) -> &'static str {
    match canonical {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

/// 32 random bytes as text: the dummy hash's password, which nobody can send.
fn random_secret() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    // Without randomness the dummy would still cost the same time; only its secret would be guessable.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

type Invalid<'a> = dyn Fn(&str, String) -> WebConfigError + 'a;

fn tls_config(
    raw: RawTls,
    dir: &Path,
    invalid: &Invalid<'_>,
    ignored: &mut Vec<String>,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Tls>, WebConfigError> {
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    let set = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
    let enabled = nonempty(&raw.cert)
        || nonempty(&raw.key)
        || nonempty(&raw.client_ca)
        || set(&raw.cert_file)
        || set(&raw.key_file)
        || set(&raw.client_ca_file)
        || nonempty(&raw.client_auth_type);
    if !enabled {
        // As the toolkit: a TLS section without certificate or key serves plain HTTP.
        return Ok(None);
    }
    // Closed sets first: a typo there is reported before any file is read.
    let version = |key: &str, v: &Option<String>, default: u8| -> Result<u8, WebConfigError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("TLS12") => Ok(12),
            Some("TLS13") => Ok(13),
            Some("TLS10" | "TLS11") => Err(invalid(key, "not supported: TLS 1.2 and 1.3 only (TLS12, TLS13)".into())),
            Some(other) => Err(invalid(key, format!("unknown version {other:?}; one of TLS12, TLS13"))),
        }
    };
    let min = version("tls_server_config.min_version", &raw.min_version, 12)?;
    let max = version("tls_server_config.max_version", &raw.max_version, 13)?;
    if min > max {
        return Err(invalid("tls_server_config.min_version", "is above max_version".into()));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if raw.client_allowed_sans.as_ref().is_some_and(|s| !s.is_empty()) {
        // Ignoring it would let in clients the file means to keep out.
        return Err(invalid("tls_server_config.client_allowed_sans", "not supported".into()));
    }
    let auth_key = "tls_server_config.client_auth_type";
    let has_ca = set(&raw.client_ca_file) || nonempty(&raw.client_ca);
    let auth_type = raw.client_auth_type.as_deref().map(str::trim).unwrap_or("");
    // None: no client certificates; Some(true): required; Some(false): verified if given.
    let client_certs = match auth_type {
        "" | "NoClientCert" if has_ca => {
            return Err(invalid(auth_key, "a client CA is set but client_auth_type is NoClientCert".into()));
        }
        "" | "NoClientCert" => None,
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" if !has_ca => {
            return Err(invalid(auth_key, format!("{auth_type} needs client_ca_file (or client_ca)")));
        }
        "VerifyClientCertIfGiven" => Some(false),
        "RequireAndVerifyClientCert" => Some(true),
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
            return Err(invalid(
                auth_key,
                format!(
                    "{auth_type} is not supported: it accepts certificates nobody checked; use \
                     RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file"
                ),
            ));
        }
        other => {
            return Err(invalid(
                auth_key,
                format!("unknown {other:?}; one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
            ));
        }
    };
    for (name, present) in [
        ("cipher_suites", raw.cipher_suites.as_ref().is_some_and(|c| !c.is_empty())),
        ("curve_preferences", raw.curve_preferences.as_ref().is_some_and(|c| !c.is_empty())),
        ("prefer_server_cipher_suites", raw.prefer_server_cipher_suites.is_some()),
    ] {
        if present {
            ignored.push(format!(
                "tls_server_config.{name} is ignored: rustls's defaults are used (AEAD cipher suites only, X25519, P-256, P-384)"
            ));
        }
    }

    let mut read = |key: &str,
                    file: &Option<PathBuf>,
                    inline: &Option<String>|
     -> Result<Option<Vec<u8>>, WebConfigError> {
        match (file.as_ref().filter(|p| !p.as_os_str().is_empty()), inline.as_ref().filter(|s| !s.trim().is_empty())) {
            (Some(_), Some(_)) => Err(invalid(key, "set either the file or the inline value, not both".into())),
            (Some(p), None) => {
                let p = dir.join(p);
                files.push(p.clone());
                std::fs::read(&p).map(Some).map_err(|e| invalid(key, format!("cannot read {}: {e}", p.display())))
            }
            (None, Some(s)) => Ok(Some(s.as_bytes().to_vec())),
            (None, None) => Ok(None),
        }
    };
    let cert_pem = read("tls_server_config.cert_file", &raw.cert_file, &raw.cert)?
        .ok_or_else(|| invalid("tls_server_config.cert_file", "missing (one of cert_file or cert is needed)".into()))?;
    let key_pem = read("tls_server_config.key_file", &raw.key_file, &raw.key)?
        .ok_or_else(|| invalid("tls_server_config.key_file", "missing (one of key_file or key is needed)".into()))?;
    let ca_pem = read("tls_server_config.client_ca_file", &raw.client_ca_file, &raw.client_ca)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("tls_server_config.cert_file", format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("tls_server_config.cert_file", "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid("tls_server_config.key_file", format!("not a PEM private key: {e}")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("tls_server_config.min_version", e.to_string()))?;
    let builder = match (client_certs, &ca_pem) {
        (Some(required), Some(pem)) => {
            let ca_key = "tls_server_config.client_ca_file";
            let mut store = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| invalid(ca_key, format!("not a PEM certificate: {e}")))?;
                store.add(c).map_err(|e| invalid(ca_key, format!("unusable CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(invalid(ca_key, "holds no PEM certificate".into()));
            }
            let mut v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider));
            if !required {
                v = v.allow_unauthenticated();
            }
            let v = v.build().map_err(|e| invalid(ca_key, e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        _ => builder.with_no_client_auth(),
    };
    let requires_client_cert = client_certs == Some(true);
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid("tls_server_config.key_file", format!("does not go with the certificate: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)), requires_client_cert }))
}

/// What identifies one version of a file: device, inode, size and mtime (`None`: missing).
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// A change younger than this is not read yet: an editor or `cp` may be half-way
/// through writing it, and half a file can be valid YAML that lost its TLS section.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The web config file, followed for changes.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    /// Where the server listens, for the warning about exposure after a reload.
    listen: Mutex<Option<SocketAddr>>,
    state: Mutex<State>,
    last_ok: AtomicBool,
}

#[derive(Debug)]
struct State {
    current: Arc<Config>,
    /// Stamps of the config file and the files it names, as last read.
    seen: Vec<Stamp>,
}

impl Watched {
    /// Read `path` at start: an error here is fatal for the caller.
    pub fn load(path: &Path) -> Result<Watched, WebConfigError> {
        let before = stamp(path);
        let cfg = Config::load(path)?;
        for msg in &cfg.ignored {
            tracing::warn!(path = %path.display(), "{msg}");
        }
        let mut seen = vec![before];
        seen.extend(cfg.files.iter().map(|f| stamp(f)));
        Ok(Watched {
            path: path.to_owned(),
            listen: Mutex::new(None),
            state: Mutex::new(State { current: Arc::new(cfg), seen }),
            last_ok: AtomicBool::new(true),
        })
    }

    /// Tell where the server listens; logs the exposure warning, if any, now and after each reload.
    pub fn set_listen(&self, addr: SocketAddr) {
        *self.listen.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
        let cfg = self.snapshot();
        if let Some(msg) = cfg.exposure(addr) {
            tracing::warn!(listen = %addr, path = %self.path.display(), "{msg}");
        }
    }

    /// The config in force, without looking at the files.
    pub fn snapshot(&self) -> Arc<Config> {
        Arc::clone(&self.state.lock().unwrap_or_else(|p| p.into_inner()).current)
    }

    /// Whether the latest attempt to read a changed file succeeded.
    pub fn last_reload_ok(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed)
    }

    /// Whether one of the files changed since it was last read (a few `stat` calls).
    pub fn changed(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = vec![stamp(&self.path)];
        now.extend(st.current.files.iter().map(|f| stamp(f)));
        now != st.seen
    }

    /// The config for a new connection: the files are read again if one of them changed
    /// (and has been still for `SETTLE`). Blocking: a reload reads files and makes a
    /// bcrypt hash; call it off the async thread, and only when [`Watched::changed`].
    pub fn current(&self) -> Arc<Config> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = vec![stamp(&self.path)];
        now.extend(st.current.files.iter().map(|f| stamp(f)));
        if now == st.seen {
            return Arc::clone(&st.current);
        }
        let settled = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age >= SETTLE);
        if !settled {
            return Arc::clone(&st.current);
        }
        let result = std::fs::read_to_string(&self.path)
            .map_err(|e| WebConfigError::Read { path: self.path.clone(), source: e })
            .and_then(|text| {
                // At start an empty file means "no TLS, no auth"; a file that becomes empty
                // is far more likely being rewritten than meant to switch both off.
                if text.trim().is_empty() {
                    Err(WebConfigError::Invalid {
                        path: self.path.clone(),
                        key: "(file)".into(),
                        message: "empty; to switch TLS and auth off, restart without --web.config.file".into(),
                    })
                } else {
                    Config::parse(&self.path, &text)
                }
            });
        match result {
            Ok(cfg) => {
                for msg in &cfg.ignored {
                    tracing::warn!(path = %self.path.display(), "{msg}");
                }
                let listen = *self.listen.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((addr, msg)) = listen.and_then(|a| cfg.exposure(a).map(|m| (a, m))) {
                    tracing::warn!(listen = %addr, path = %self.path.display(), "{msg}");
                }
                tracing::info!(
                    path = %self.path.display(),
                    tls = cfg.tls.is_some(),
                    users = cfg.users.as_ref().map_or(0, |u| u.hashes.len()),
                    "Web config reloaded."
                );
                now.truncate(1);
                now.extend(cfg.files.iter().map(|f| stamp(f)));
                st.current = Arc::new(cfg);
                self.last_ok.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Web config changed but cannot be used; keeping the previous one.");
                self.last_ok.store(false, Ordering::Relaxed);
            }
        }
        st.seen = now;
        Arc::clone(&st.current)
    }
}

#[cfg(test)]
mod tests;
