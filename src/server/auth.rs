//! Basic auth against the bcrypt hashes of the web config file.
//!
//! In: a request's `Authorization` header and the users in force. Out: yes or no.
//! Promises: a wrong password and an unknown user take the same time (the unknown
//! user is checked against a dummy hash of the same cost, and bcrypt compares in
//! constant time); one bcrypt runs at a time, off the async thread, so a flood of
//! bad passwords costs one core at most and never stalls the other connections; a
//! right password is remembered (as an HMAC under a key made at start, never in
//! clear), so a scrape every 15 s does not pay a bcrypt each time.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::web_config::Users;

/// Remembered logins; past this many the memory is cleared (an attacker can only add
/// logins that are right, so this bounds memory, not guesses).
const REMEMBERED: usize = 256;

/// Checks credentials; one per server.
#[derive(Debug)]
pub struct Auth {
    /// Tags of `(user, hash, password)` that were right.
    remembered: Mutex<HashSet<[u8; 32]>>,
    key: ring::hmac::Key,
    /// One bcrypt at a time (the machine may have two cores, and the engine needs one).
    bcrypt: Semaphore,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new()
    }
}

impl Auth {
    pub fn new() -> Auth {
        let rng = ring::rand::SystemRandom::new();
        // A key nobody knows makes the remembered tags useless outside this process.
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &std::process::id().to_le_bytes()));
        Auth { remembered: Mutex::new(HashSet::new()), key, bcrypt: Semaphore::new(1) }
    }

    /// Whether `header` holds the right password of one of `users`.
    pub async fn check(&self, users: &Users, header: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
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
            return true;
        }
        let right = {
            let Ok(_permit) = self.bcrypt.acquire().await else { return false };
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
        ok
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
        assert!(auth.check(&users, Some(&header("alice:pw"))).await);
        // Remembered, and still right.
        assert!(auth.check(&users, Some(&header("alice:pw"))).await);
        assert!(!auth.check(&users, Some(&header("alice:nope"))).await);
        assert!(!auth.check(&users, Some(&header("bob:pw"))).await);
        assert!(!auth.check(&users, Some(&header("bob:something else"))).await, "the dummy's password opens nothing");
        assert!(!auth.check(&users, None).await);
    }
}
