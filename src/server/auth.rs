//! Basic auth against the bcrypt hashes of the web config file.
//!
//! In: a request's `Authorization` header and the users in force. Out: yes or no.
//! Promises: a wrong password and an unknown user take the same time (the unknown
//! user is checked against a dummy hash of the same cost, and bcrypt compares in
//! constant time); one bcrypt runs at a time, off the async thread, so a flood of
//! bad passwords costs one core at most and never stalls the other connections, and
//! only a few requests may wait for it (the rest get 503 at once, whoever they claim
//! to be): requests waiting there are busy, and busy connections are never closed
//! to make room, so a long queue would let bad passwords fill the connection cap. A
//! right password is remembered (as an HMAC under a key made at start, never in
//! clear), so a scrape every 15 s does not pay a bcrypt each time.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::server::web_config::Users;

/// Remembered logins; past this many the memory is cleared (an attacker can only add
/// logins that are right, so this bounds memory, not guesses).
const REMEMBERED: usize = 256;

/// Requests that may wait for the bcrypt check at once (about a second of work at cost 10).
const WAITING: usize = 8;

/// What a request's credentials get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user is known and the password right (checked now, or remembered).
    Allowed,
    /// 401: missing, unknown user or wrong password (not told apart).
    Denied,
    /// 503: too many logins waiting to be checked.
    Busy,
}

/// Checks credentials; one per server.
#[derive(Debug)]
pub struct Auth {
    /// Tags of `(user, hash, password)` that were right.
    remembered: Mutex<HashSet<[u8; 32]>>,
    key: ring::hmac::Key,
    /// One bcrypt at a time (the machine may have two cores, and the engine needs one).
    bcrypt: Semaphore,
    /// Requests waiting for or running a bcrypt check.
    waiting: AtomicUsize,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new()
    }
}

impl Auth {
    /// A checker with nothing remembered, and a fresh random key for its memory of
    /// logins (so the tags it keeps mean nothing outside this process).
    pub fn new() -> Auth {
        let rng = ring::rand::SystemRandom::new();
        // A key nobody knows makes the remembered tags useless outside this process.
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &std::process::id().to_le_bytes()));
        Auth { remembered: Mutex::new(HashSet::new()), key, bcrypt: Semaphore::new(1), waiting: AtomicUsize::new(0) }
    }

    /// Whether `header` holds the right password of one of `users`.
    pub async fn check(&self, users: &Users, header: Option<&HeaderValue>) -> Verdict {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let known = std::str::from_utf8(&user).ok().and_then(|u| users.hashes.get(u));
        let hash = known.unwrap_or(&users.dummy).clone();
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for part in [&user[..], b"\0", hash.as_bytes(), b"\0", &password[..]] {
            ctx.update(part);
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        if known.is_some() && self.remembered.lock().unwrap_or_else(|p| p.into_inner()).contains(&tag) {
            return Verdict::Allowed;
        }
        let Some(_queued) = Queued::enter(&self.waiting) else {
            return Verdict::Busy;
        };
        let right = {
            let Ok(_permit) = self.bcrypt.acquire().await else { return Verdict::Denied };
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let ok = right && known.is_some();
        if ok {
            let mut set = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
            if set.len() >= REMEMBERED {
                set.clear();
            }
            set.insert(tag);
        }
        if ok { Verdict::Allowed } else { Verdict::Denied }
    }
}

/// A place in the bcrypt queue, given back on drop (also when the request is dropped while waiting).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(waiting: &'a AtomicUsize) -> Option<Queued<'a>> {
        if waiting.fetch_add(1, Ordering::AcqRel) >= WAITING {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Queued(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `Basic base64(user:password)` → (user, password), as bytes.
fn parse_basic(v: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = v.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s))).unwrap()
    }

    #[test]
    fn basic_credentials_parse() {
        assert_eq!(parse_basic(&header("al:ice:pw")), Some((b"al".to_vec(), b"ice:pw".to_vec())));
        assert_eq!(parse_basic(&header("u:")), Some((b"u".to_vec(), Vec::new())));
        assert_eq!(parse_basic(&header("nocolon")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
    }

    #[tokio::test]
    async fn right_wrong_and_unknown() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users = Users {
            hashes: BTreeMap::from([("alice".to_owned(), hash)]),
            dummy: bcrypt::hash("something else", 4).unwrap(),
        };
        let auth = Auth::new();
        let check = |h: Option<HeaderValue>| {
            let (auth, users) = (&auth, &users);
            async move { auth.check(users, h.as_ref()).await }
        };
        assert_eq!(check(Some(header("alice:pw"))).await, Verdict::Allowed);
        // Remembered, and still right.
        assert_eq!(check(Some(header("alice:pw"))).await, Verdict::Allowed);
        assert_eq!(check(Some(header("alice:nope"))).await, Verdict::Denied);
        assert_eq!(check(Some(header("bob:pw"))).await, Verdict::Denied);
        assert_eq!(check(Some(header("bob:something else"))).await, Verdict::Denied, "the dummy opens nothing");
        assert_eq!(check(None).await, Verdict::Denied);
        assert_eq!(auth.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_bcrypt_queue_is_short() {
        let waiting = AtomicUsize::new(0);
        let places: Vec<_> = (0..WAITING).map(|_| Queued::enter(&waiting).expect("a place")).collect();
        assert!(Queued::enter(&waiting).is_none());
        drop(places);
        assert_eq!(waiting.load(Ordering::Relaxed), 0);
        assert!(Queued::enter(&waiting).is_some());
    }
}
