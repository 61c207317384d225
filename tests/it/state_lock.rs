//! One daemon per state folder: a second `serve` on the same `--state-dir`
//! refuses to start and names the folder and the holder's pid; the lock dies
//! with its process, so a daemon killed with `kill -9` does not block a restart.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::support;

/// Run a second `serve` on `state`; it must exit by itself. Returns (success, stderr).
fn second_serve(config_root: &std::path::Path, state: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(support::bin())
        .args(["serve", "--web.listen-address", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .env("CLAUDE_CONFIG_DIR", config_root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second serve on a held state folder kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn a_second_daemon_on_a_state_folder_refuses_and_a_killed_one_does_not_block_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = Daemon::start(root.path(), state.path(), &[]);
    first.wait_ready(Duration::from_secs(20));
    let holder = first.pid().expect("running");

    let (ok, stderr) = second_serve(root.path(), state.path());
    assert!(!ok, "the second daemon exited with success:\n{stderr}");
    assert!(stderr.contains(&state.path().display().to_string()), "names the folder:\n{stderr}");
    assert!(stderr.contains(&format!("pid {holder}")), "names the holder's pid {holder}:\n{stderr}");
    assert!(!stderr.contains("Serving metrics"), "it must not have started serving:\n{stderr}");

    // The holder is untouched, and after kill -9 its lock is gone with it.
    assert_eq!(first.get("/healthz", &[]).0, 200);
    first.kill9();
    let restarted = Daemon::start(root.path(), state.path(), &[]);
    restarted.wait_ready(Duration::from_secs(20));
    let pid = std::fs::read_to_string(state.path().join("lock")).expect("lock file");
    assert_eq!(pid.trim(), restarted.pid().expect("running").to_string(), "the new holder wrote its pid");
}
