//! The identity of each fact a transcript holds, as a stable 64-bit key, and
//! the hashers for maps keyed by such keys or by short strings.
//!
//! Keys are persisted (in the dedup window of the checkpoint): they must not
//! change between versions or platforms.

use std::collections::HashMap;

/// 64-bit FNV-1a: stable across versions and platforms (keys are persisted).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator byte that cannot appear in ids keeps ("ab","c") ≠ ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Keys are already FNV hashes: hash them again with SipHash for nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // Spread the bits a little: hashbrown uses the top 7 bits as a tag.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

/// The hasher of the hot in-memory maps keyed by short strings (session ids,
/// label sets), where SipHash's DoS resistance buys nothing: eight bytes a step
/// (the multiply-rotate scheme of rustc's `FxHasher`). Its values are never
/// persisted, so it may change between versions; persisted keys use [`fnv1a`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = self.0.wrapping_add(w).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the best bits at the top; hashbrown takes the
        // bucket from the low bits and its tag from the top seven.
        self.0.rotate_left(26)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
        // The length keeps "ab\0" and "ab" apart.
        self.add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A `HashMap` with the [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// Key of an API response: `message.id` + `requestId`, or `message.id` alone.
pub fn response_key(message_id: &str, request_id: Option<&str>) -> u64 {
    match request_id {
        Some(r) => fnv1a(&[b"r", message_id.as_bytes(), r.as_bytes()]),
        None => fnv1a(&[b"r", message_id.as_bytes()]),
    }
}

/// Key of a tool call (`tool_use.id`).
pub fn tool_use_key(id: &str) -> u64 {
    fnv1a(&[b"u", id.as_bytes()])
}

/// Key of a tool result (`tool_result.tool_use_id`).
pub fn tool_result_key(id: &str) -> u64 {
    fnv1a(&[b"t", id.as_bytes()])
}

/// Key of a fact that one line stands for — `what` is `p` (a prompt), `c` (a
/// compaction) or `e` (an API error) — from the hash of the line's `uuid`.
pub fn line_key(what: u8, uuid: u64) -> u64 {
    fnv1a(&[&[what], &uuid.to_le_bytes()])
}

/// Key of a session (`sessionId`): counted as started once, ever.
pub fn session_key(id: &str) -> u64 {
    fnv1a(&[b"s", id.as_bytes()])
}
