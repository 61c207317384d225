//! Unit tests of the reader: partial, oversized and long lines, truncation,
//! rewrites and rotation, a random model check, draining a deleted file.

use super::*;
use std::io::Write;

fn read_all(t: &mut Tail, p: &Path, max: usize) -> (Vec<String>, Report) {
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let r = t.read(p, max, false, &mut buf, &mut |l| lines.push(String::from_utf8_lossy(l).into_owned())).unwrap();
    (lines, r)
}

fn append(p: &Path, s: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap().write_all(s.as_bytes()).unwrap();
}

#[test]
fn half_lines_wait_until_completed() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    append(&p, "{\"a\":1}\n{\"b\":");
    let mut t = Tail::default();
    assert_eq!(read_all(&mut t, &p, 100).0, ["{\"a\":1}"]);
    assert_eq!(read_all(&mut t, &p, 100).0, Vec::<String>::new());
    append(&p, "2}\n\n{\"c\":3}\n");
    assert_eq!(read_all(&mut t, &p, 100).0, ["{\"b\":2}", "{\"c\":3}"]);
    assert_eq!(t.pos.offset, std::fs::metadata(&p).unwrap().len());
}

#[test]
fn truncation_and_replacement_restart_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    append(&p, "one\ntwo\n");
    let mut t = Tail::default();
    read_all(&mut t, &p, 100);
    std::fs::write(&p, "x\n").unwrap();
    let (lines, r) = read_all(&mut t, &p, 100);
    assert!(r.truncated);
    assert_eq!(lines, ["x"]);
    // Replaced by a new file (new inode) with more content than before.
    let tmp = d.path().join("b");
    std::fs::write(&tmp, "new1\nnew2\nnew3\n").unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    let (lines, r) = read_all(&mut t, &p, 100);
    assert!(r.replaced);
    assert_eq!(lines, ["new1", "new2", "new3"]);
    // Rewritten in place with a different first line, longer than before.
    std::fs::write(&p, "other1\nnew2\nnew3\nnew4\n").unwrap();
    let (lines, r) = read_all(&mut t, &p, 100);
    assert!(r.replaced, "{r:?}");
    assert_eq!(lines.len(), 4);
}

/// Same inode, same first line, as long or longer than what was read: the
/// bytes before the position changed, so the file was truncated and written
/// again. Found by a reader that kept its handle, one that did not, and one
/// restored from a saved position.
#[test]
fn a_file_rewritten_in_place_with_the_same_first_line_is_read_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    let rewritten = ["head", "new1", "new2", "new3", "new4"];
    for keep_open in [false, true] {
        std::fs::write(&p, "head\nold1\nold2\n").unwrap();
        let mut t = Tail::default();
        let mut buf = Vec::new();
        t.read(&p, 100, keep_open, &mut buf, &mut |_| {}).unwrap();
        let saved: Position = serde_json::from_str(&serde_json::to_string(&t.pos).unwrap()).unwrap();
        std::fs::write(&p, rewritten.map(|l| format!("{l}\n")).concat()).unwrap();
        for (who, t) in [("live", &mut t), ("restored", &mut Tail::new(saved))] {
            let mut lines = Vec::new();
            let r = t.read(&p, 100, keep_open, &mut buf, &mut |l| lines.push(l.to_vec())).unwrap();
            assert!(r.truncated && !r.replaced, "{who}, keep_open {keep_open}: {r:?}");
            assert_eq!(lines, rewritten.map(|l| l.as_bytes().to_vec()), "{who}, keep_open {keep_open}");
        }
    }
    // Rewritten to exactly the length that was read.
    std::fs::write(&p, "head\nold1\n").unwrap();
    let mut t = Tail::default();
    read_all(&mut t, &p, 100);
    std::fs::write(&p, "head\nnew1\n").unwrap();
    let (lines, r) = read_all(&mut t, &p, 100);
    assert!(r.truncated, "{r:?}");
    assert_eq!(lines, ["head", "new1"]);
    // Appending leaves what was read alone.
    append(&p, "new2\n");
    let (lines, r) = read_all(&mut t, &p, 100);
    assert_eq!((lines, r.truncated), (vec!["new2".to_owned()], false));
}

/// A checkpoint written before the tail fingerprint existed resumes at its
/// offset as it always did, and the position can be checked from then on.
#[test]
fn a_position_saved_without_a_tail_fingerprint_resumes_at_its_offset() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    append(&p, "head\nold1\n");
    let mut t = Tail::default();
    read_all(&mut t, &p, 100);
    let mut v = serde_json::to_value(&t.pos).unwrap();
    assert!(v.as_object_mut().unwrap().remove("tail_fingerprint").is_some());
    let old: Position = serde_json::from_value(v).unwrap();
    assert_eq!(old.tail_fingerprint, None);
    let mut t = Tail::new(old);
    append(&p, "new1\n");
    let (lines, r) = read_all(&mut t, &p, 100);
    assert_eq!((lines, r.truncated), (vec!["new1".to_owned()], false));
    std::fs::write(&p, "head\nold1\nNEW1\nnew2\n").unwrap();
    let (lines, r) = read_all(&mut t, &p, 100);
    assert!(r.truncated, "checked once read: {r:?}");
    assert_eq!(lines.len(), 4);
}

#[test]
fn oversized_lines_are_skipped_while_streaming() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    append(&p, "ok1\n");
    append(&p, &"x".repeat(CHUNK * 3));
    let mut t = Tail::default();
    let (lines, r) = read_all(&mut t, &p, 1000);
    assert_eq!((lines.len(), r.oversized), (1, 1));
    append(&p, &"x".repeat(500));
    append(&p, "\nok2\n");
    let (lines, r) = read_all(&mut t, &p, 1000);
    assert_eq!(lines, ["ok2"]);
    assert_eq!(r.oversized, 0, "the same long line is counted once");
    append(&p, &format!("{}\n", "y".repeat(1001)));
    assert_eq!(read_all(&mut t, &p, 1000).1.oversized, 1);
}

#[test]
fn a_line_longer_than_the_window_is_read_at_its_size_and_an_oversized_one_never_held() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    let long = "l".repeat(500);
    let over = "o".repeat(5000);
    append(&p, &format!("a\n{long}\n{over}\nb\n"));
    let mut t = Tail::default().with_window(16);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let r = t.read(&p, 1000, false, &mut buf, &mut |l| lines.push(l.to_vec())).unwrap();
    assert_eq!(lines, [b"a".to_vec(), long.clone().into_bytes(), b"b".to_vec()]);
    assert_eq!((r.lines, r.oversized, r.bytes), (3, 1, std::fs::metadata(&p).unwrap().len()));
    // The 500-byte line got a buffer of its size, not a doubled one; the
    // 5000-byte one none at all.
    assert!(buf.capacity() <= 600, "buffer grew to {}", buf.capacity());
    // A long line still being written waits, then is read once complete.
    append(&p, &"w".repeat(300));
    assert_eq!(read_all(&mut t, &p, 1000).0, Vec::<String>::new());
    append(&p, "w\n");
    assert_eq!(read_all(&mut t, &p, 1000).0, ["w".repeat(301)]);
    // One that passes the limit while being written is skipped, and counted once
    // (a fresh reader: the 5000-byte line is the other oversized one).
    let mut t2 = Tail::default().with_window(16);
    append(&p, &"z".repeat(1500));
    let (lines, r) = read_all(&mut t2, &p, 1000);
    assert_eq!((lines.len(), r.oversized), (4, 2));
    assert!(t2.pos.skipping);
    append(&p, &format!("{}\nend\n", "z".repeat(100)));
    let (lines, r) = read_all(&mut t2, &p, 1000);
    assert_eq!((lines, r.oversized), (vec!["end".to_owned()], 0));
}

/// SplitMix64: a seeded, dependency-free source of test cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a reader must hand on from complete `data`: (lines, oversized).
fn model(data: &[u8], max_line: usize) -> (Vec<Vec<u8>>, u64) {
    let (mut lines, mut over) = (Vec::new(), 0);
    let complete = &data[..data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)];
    for line in complete.split_inclusive(|b| *b == b'\n') {
        let line = &line[..line.len() - 1];
        if line.len() > max_line {
            over += 1;
        } else {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line.to_vec());
            }
        }
    }
    (lines, over)
}

#[test]
fn random_appends_read_in_random_pieces_match_a_model() {
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let window = [1, 2, 3, 7, 16, 64, 1024][rng.below(7)];
        let max_line = [1, 5, 16, 40, 100][rng.below(5)];
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        let mut data = Vec::new();
        let mut t = Tail::default().with_window(window);
        let mut buf = Vec::new();
        let (mut got, mut over, mut bytes) = (Vec::new(), 0, 0);
        for _ in 0..rng.below(30) + 1 {
            // Lines around the limit and the window, blank ones, CRLF, split anywhere.
            let mut piece = Vec::new();
            for _ in 0..rng.below(4) {
                let len = [0, 1, max_line, max_line + 1, window, window + 1, rng.below(3 * max_line + 3)][rng.below(7)];
                piece.extend((0..len).map(|i| [b'x', b' ', b'{', b'\r'][(i + rng.below(4)) % 4]));
                piece.extend_from_slice(if rng.below(4) == 0 { b"\r\n" } else { b"\n" });
            }
            let cut = rng.below(piece.len() + 1);
            for part in [&piece[..cut], &piece[cut..]] {
                append(&p, std::str::from_utf8(part).unwrap());
                data.extend_from_slice(part);
                if rng.below(2) == 0 {
                    let r = t.read(&p, max_line, rng.below(2) == 0, &mut buf, &mut |l| got.push(l.to_vec())).unwrap();
                    (over, bytes) = (over + r.oversized, bytes + r.bytes);
                }
            }
        }
        append(&p, "\n");
        data.push(b'\n');
        let r = t.read(&p, max_line, false, &mut buf, &mut |l| got.push(l.to_vec())).unwrap();
        (over, bytes) = (over + r.oversized, bytes + r.bytes);
        let (want, want_over) = model(&data, max_line);
        assert_eq!(got, want, "seed {seed} window {window} max_line {max_line}");
        assert_eq!(over, want_over, "seed {seed}: oversized");
        assert_eq!(bytes, data.len() as u64, "seed {seed}: bytes");
        assert!(buf.capacity() <= window.max(max_line + 1) * 2 + 64, "seed {seed}: buffer {}", buf.capacity());
    }
}

#[test]
fn deleted_file_is_drained_through_a_held_handle() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl");
    append(&p, "a\n");
    let mut t = Tail::default();
    let mut buf = Vec::new();
    t.read(&p, 100, true, &mut buf, &mut |_| {}).unwrap();
    assert!(t.is_open());
    append(&p, "b\n");
    std::fs::remove_file(&p).unwrap();
    let mut got = Vec::new();
    let r = t.read(&p, 100, true, &mut buf, &mut |l| got.push(l.to_vec())).unwrap();
    assert!(r.gone);
    assert_eq!(got, [b"b".to_vec()]);
    assert!(!t.is_open());
}
