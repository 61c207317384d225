//! The engine's unit tests: failing files and folders, second paths, huge numbers.

use super::*;

fn read_errors(e: &Engine) -> f64 {
    e.lock().store.counter(Counter::ReadErrors, &["file"])
}

fn ok_lines(e: &Engine) -> f64 {
    e.lock().store.counter(Counter::Lines, &["ok"])
}

/// A folder named like a transcript opens but fails to read (EISDIR), even as root.
#[test]
fn a_failing_file_is_retried_each_reconcile_and_counted_once_per_episode() {
    let d = tempfile::tempdir().unwrap();
    let projects = d.path().join("projects");
    let p = projects.join("-w").join("s1.jsonl");
    std::fs::create_dir_all(&p).unwrap();
    let mut e = Engine::new(Settings { projects_dirs: vec![projects.clone()], ..Settings::default() });
    assert!(e.track(&p));
    assert!(!e.poll(&p));
    for _ in 0..5 {
        e.reconcile();
    }
    assert_eq!(read_errors(&e), 1.0, "one episode, however many retries");
    assert_eq!(e.files_tracked(), 1, "kept, with its position, while it fails");

    std::fs::remove_dir(&p).unwrap();
    std::fs::write(&p, "{\"type\":\"user\",\"sessionId\":\"s1\",\"message\":{\"content\":\"hi\"}}\n").unwrap();
    e.reconcile();
    assert_eq!((ok_lines(&e), read_errors(&e)), (1.0, 1.0), "read on the next reconcile");

    // A new failure after a success is a new episode.
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    e.poll(&p);
    e.reconcile();
    e.reconcile();
    assert_eq!(read_errors(&e), 2.0);
}

/// A hard link or a symlink to a followed file, reported by the watcher, is
/// not followed again; a symlink leading outside the projects folders never.
#[cfg(unix)]
#[test]
fn a_second_path_to_a_followed_file_is_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let projects = d.path().join("projects");
    let dir = projects.join("-w");
    std::fs::create_dir_all(&dir).unwrap();
    let line = "{\"type\":\"user\",\"sessionId\":\"s1\",\"message\":{\"content\":\"hi\"}}\n";
    std::fs::write(dir.join("s1.jsonl"), line).unwrap();
    std::fs::write(d.path().join("out.jsonl"), line).unwrap();
    std::fs::hard_link(dir.join("s1.jsonl"), dir.join("s2.jsonl")).unwrap();
    std::os::unix::fs::symlink("s1.jsonl", dir.join("s3.jsonl")).unwrap();
    std::os::unix::fs::symlink(d.path().join("out.jsonl"), dir.join("s4.jsonl")).unwrap();
    let mut e = Engine::new(Settings { projects_dirs: vec![projects.clone()], ..Settings::default() });
    assert!(e.track(&dir.join("s1.jsonl")));
    e.poll(&dir.join("s1.jsonl"));
    for other in ["s2.jsonl", "s3.jsonl", "s4.jsonl"] {
        assert!(!e.track(&dir.join(other)), "{other}");
    }
    e.reconcile();
    assert_eq!((e.files_tracked(), ok_lines(&e)), (1, 1.0));
    // Once the first name is gone, the file is followed under the other
    // (read again: its identity is not carried over from a vanished path).
    std::fs::remove_file(dir.join("s1.jsonl")).unwrap();
    e.reconcile();
    e.reconcile();
    assert_eq!(e.files_tracked(), 1);
    assert!(e.files.contains_key(&dir.join("s2.jsonl")));
}

#[test]
fn a_failing_folder_counts_once_per_episode() {
    let mut e = Engine::new(Settings::default());
    let err = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let dir = PathBuf::from("/nowhere/projects/-w");
    let count = |e: &Engine| e.lock().store.counter(Counter::ReadErrors, &["folder"]);
    for _ in 0..3 {
        e.folder_errors(vec![(dir.clone(), err())]);
    }
    assert_eq!(count(&e), 1.0);
    e.folder_errors(Vec::new());
    e.folder_errors(vec![(dir.clone(), err())]);
    assert_eq!(count(&e), 2.0, "listed fine once, then failing again: a second episode");
}

mod huge_numbers {
    use super::*;

    fn assistant(id: &str, tokens: u64) -> String {
        format!(
            r#"{{"type":"assistant","sessionId":"s1","timestamp":"2026-01-01T00:00:00.000Z","requestId":"r{id}","message":{{"id":"m{id}","model":"claude-sonnet-4-5-20250929","usage":{{"input_tokens":{tokens},"output_tokens":{tokens},"cache_creation_input_tokens":{tokens},"cache_read_input_tokens":{tokens},"cache_creation":{{"ephemeral_5m_input_tokens":{tokens},"ephemeral_1h_input_tokens":{tokens}}}}},"content":[{{"type":"text","text":"x"}}]}}}}"#
        ) + "\n"
    }

    fn engine_over(projects: &Path) -> Engine {
        Engine::new(Settings { projects_dirs: vec![projects.to_owned()], ..Settings::default() })
    }

    /// Usage numbers up to u64::MAX in a transcript are counted without a panic.
    #[test]
    fn usage_near_u64_max_in_a_transcript_is_counted() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let p = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, assistant("1", u64::MAX) + &assistant("2", u64::MAX) + &assistant("3", u64::MAX)).unwrap();
        let mut e = engine_over(&projects);
        e.scan(1, &|_, _| {});
        e.tick();
        let report = crate::report::Report::from_aggregator(&e.lock(), 1);
        assert!(report.table().contains("3 lines"), "{}", report.table());
        assert!(serde_json::from_slice::<Checkpoint>(&e.checkpoint_bytes()).is_ok());
    }

    /// Found by fuzzing (`checkpoint_reader`): a checkpoint whose session holds
    /// a token total near u64::MAX, then one more response read, overflowed
    /// `Tokens += ` (a panic in debug builds, a wrapped total in release). Totals saturate.
    #[test]
    fn a_restored_session_total_near_u64_max_saturates() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let p = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, assistant("1", 10)).unwrap();
        let mut e = engine_over(&projects);
        e.scan(1, &|_, _| {});
        let mut cp: serde_json::Value = serde_json::from_slice(&e.checkpoint_bytes()).unwrap();
        let sessions = cp["aggregator"]["sessions"].as_object_mut().expect("sessions in the checkpoint");
        let tokens = &mut sessions.values_mut().next().expect("one session")["tokens"];
        for k in ["input", "output", "cache_creation", "cache_creation_1h", "cache_read"] {
            tokens[k] = serde_json::Value::from(u64::MAX);
        }
        let cp: Checkpoint = serde_json::from_value(cp).unwrap();

        let mut restored = engine_over(&projects);
        restored.restore(cp);
        std::fs::write(&p, assistant("1", 10) + &assistant("2", 10)).unwrap();
        restored.reconcile();
        let back: serde_json::Value = serde_json::from_slice(&restored.checkpoint_bytes()).unwrap();
        let session = back["aggregator"]["sessions"].as_object().unwrap().values().next().unwrap();
        assert_eq!(session["tokens"]["cache_creation_1h"], serde_json::Value::from(u64::MAX));
        assert_eq!(
            restored.lock().store.counter(Counter::Lines, &["ok"]),
            2.0,
            "the first line, restored, and the new one"
        );
    }
}
