//! The HTTP endpoint's limits against real sockets: idle connections beyond the
//! descriptor limit, accept running out of descriptors, slow headers, idle
//! keep-alives, and who is closed at the connection cap.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, Metrics, append, empty_root, http_get, real};

const SESSION: &str = "cb2e607c-c758-415a-8b45-c49e4631906a";
const OUTPUT_TOKENS: f64 = 4321.0;

/// `<root>/projects/-w-limits/<session>.jsonl`, a copy of a real transcript.
fn transcript(root: &Path) -> std::path::PathBuf {
    let file = root.join("projects/-w-limits").join(format!("{SESSION}.jsonl"));
    let src = real(&format!("claude-code-log/projects/-Users-dain-workspace-coderabbit-review-helper/{SESSION}.jsonl"));
    append(&file, &std::fs::read(src).unwrap());
    file
}

/// One more API response in that session: a new message id, [`OUTPUT_TOKENS`] output tokens.
fn new_response(file: &Path) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = super::support::rfc3339(now.as_millis() as i64);
    let line = format!(
        r#"{{"type":"assistant","sessionId":"{SESSION}","cwd":"/Users/dain/workspace/coderabbit-review-helper","timestamp":"{ts}","requestId":"req_web_limits","message":{{"id":"msg_web_limits_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","usage":{{"input_tokens":3,"output_tokens":{}}},"content":[{{"type":"text","text":"ok"}}]}}}}"#,
        OUTPUT_TOKENS as u64
    );
    append(file, format!("{line}\n").as_bytes());
}

fn output_tokens(m: &Metrics) -> f64 {
    m.sum("claude_sessions_tokens_total", &[("type", "output")])
}

fn closed(m: &Metrics, reason: &str) -> f64 {
    m.sum("claude_sessions_exporter_http_connections_closed_total", &[("reason", reason)])
}

/// `/metrics`, or why not (a time-out is an answer here, not a panic).
fn try_metrics(addr: SocketAddr) -> Result<Metrics, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status line {:?}", head.lines().next()));
    }
    Ok(Metrics::parse(body))
}

/// Lines of the daemon's log about failed accepts.
fn accept_failure_lines(d: &Daemon) -> usize {
    d.log_text().lines().filter(|l| l.contains("Accept failed") || l.contains("Out of file descriptors")).count()
}

/// Lets this test process hold more sockets than the daemon may.
fn raise_own_fd_limit(want: u64) {
    let got = rlimit::increase_nofile_limit(want).expect("raise RLIMIT_NOFILE");
    assert!(got >= want, "this test needs {want} descriptors, the hard limit allows {got}");
}

/// Read until the peer closes; how long that took from `since` (None: still open at `limit`).
fn closed_after(mut s: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(since.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            // A reset is a close too.
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// Whether the peer has closed `s`, looking for `wait` at most.
fn is_closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Issue 9: with `ulimit -n 1024`, 1,100 connections that send nothing used to take every
/// descriptor: `/metrics` timed out, hundreds of "Accept failed" lines were logged and a
/// line appended meanwhile was never counted.
#[test]
fn idle_connections_beyond_the_descriptor_limit_lock_out_neither_scrapes_nor_the_tailer() {
    raise_own_fd_limit(4096);
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let file = transcript(root.path());
    // A long header timeout: only the cap and the eviction of idle connections can help here.
    let d = Daemon::start_custom(
        root.path(),
        state.path(),
        "127.0.0.1:0",
        &["sh", "-c", r#"ulimit -n 1024 && exec "$0" "$@""#],
        &["--web.header-timeout", "60s"],
    );
    d.wait_ready(Duration::from_secs(30));
    let before = d.metrics();
    let cap = before.sum("claude_sessions_exporter_http_connections_max", &[]);
    assert_eq!(cap, 512.0, "default cap, under 1024 − 128 reserved");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid().unwrap())).unwrap();
    assert!(
        limits.lines().any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("1024")),
        "the daemon runs under ulimit -n 1024:\n{limits}"
    );

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(1100);
    for i in 0..1100 {
        match TcpStream::connect_timeout(&d.addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i} failed: {e}"),
        }
    }
    eprintln!("opened {} idle connections in {:?}", idle.len(), opened.elapsed());

    let t = Instant::now();
    let during = try_metrics(d.addr);
    let scrape = t.elapsed();
    eprintln!("/metrics under 1,100 idle connections: {scrape:?}");
    let during =
        during.unwrap_or_else(|e| panic!("/metrics failed under 1,100 idle connections: {e}\n{}", d.log_text()));
    assert!(scrape < Duration::from_secs(2), "/metrics took {scrape:?}");
    let open = during.sum("claude_sessions_exporter_http_connections", &[]);
    assert!(open <= cap, "{open} connections open, cap {cap}");
    assert!(closed(&during, "evicted") >= 1100.0 - cap, "evicted {}", closed(&during, "evicted"));

    new_response(&file);
    let appended = Instant::now();
    let want = output_tokens(&before) + OUTPUT_TOKENS;
    let mut counted = None;
    let mut last_error = String::new();
    while appended.elapsed() < Duration::from_secs(15) {
        match try_metrics(d.addr) {
            Ok(m) if output_tokens(&m) == want => {
                counted = Some(appended.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) => last_error = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("appended line counted after {counted:?} (connections still held: {})", idle.len());
    assert!(
        counted.is_some(),
        "the appended line was not counted within 15 s (last error: {last_error:?}); log:\n{}",
        d.log_text()
    );
    let failures = accept_failure_lines(&d);
    eprintln!("accept-failure log lines: {failures}");
    assert!(failures <= 2, "{failures} accept-failure lines in the log");
    let cap_lines = d.log_text().lines().filter(|l| l.contains("Connection limit reached")).count();
    assert_eq!(cap_lines, 1, "the cap is logged once per episode, not per connection");
    drop(idle);
}

/// When something else takes the descriptors (here: the limit lowered under the running
/// daemon), accept backs off and logs once, then recovers, instead of spinning and logging.
#[test]
fn accept_backs_off_when_descriptors_run_out_and_recovers() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--web.header-timeout", "60s"]);
    d.wait_ready(Duration::from_secs(30));
    let pid = d.pid().unwrap();
    let in_use = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
    let (mut soft, mut hard) = (0, 0);
    rlimit::prlimit(pid as i32, rlimit::Resource::NOFILE, None, Some((&mut soft, &mut hard))).unwrap();
    // Room for 5 more descriptors only.
    rlimit::prlimit(pid as i32, rlimit::Resource::NOFILE, Some((in_use + 5, hard)), None).unwrap();
    let cpu_before = cpu_ticks(pid);
    let t = Instant::now();
    let held: Vec<TcpStream> =
        (0..40).map(|_| TcpStream::connect_timeout(&d.addr, Duration::from_secs(5)).expect("connect")).collect();
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(pid) - cpu_before;
    let window = t.elapsed();
    let failures = accept_failure_lines(&d);
    // Back to normal: the daemon accepts again.
    rlimit::prlimit(pid as i32, rlimit::Resource::NOFILE, Some((soft, hard)), None).unwrap();
    drop(held);
    let m = d.wait_for(Duration::from_secs(10), |m| {
        m.sum("claude_sessions_exporter_http_accept_errors_total", &[("reason", "fd_limit")]) >= 1.0
    });
    let errors = d.metrics().sum("claude_sessions_exporter_http_accept_errors_total", &[("reason", "fd_limit")]);
    eprintln!(
        "out of descriptors for {window:?}: {spent} CPU ticks, {errors} failed accepts counted, {failures} log lines"
    );
    assert!(m.is_some(), "no fd_limit accept error counted; log:\n{}", d.log_text());
    assert_eq!(failures, 1, "one warning per episode; log:\n{}", d.log_text());
    // A spinning accept loop burns a whole core: ~100 ticks a second.
    assert!(spent < 50, "{spent} CPU ticks in {window:?} while out of descriptors");
    assert!(errors < 60.0, "{errors} failed accepts in {window:?}: no back-off");
    let recovered = d.wait_for(Duration::from_secs(5), |_| true);
    assert!(recovered.is_some());
    assert!(d.log_text().contains("Accepting connections again."), "{}", d.log_text());
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from after the command name (field 3).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn slow_headers_and_idle_keep_alives_are_closed_on_time() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--web.header-timeout", "1s", "--web.idle-timeout", "3s"]);
    d.wait_ready(Duration::from_secs(30));
    let addr = d.addr;
    let limit = Duration::from_secs(10);
    // Each case in its own thread so they run side by side; every check is made here.
    let silent = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        closed_after(s, Instant::now(), limit)
    });
    let partial = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
        closed_after(s, Instant::now(), limit)
    });
    let trickle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        // One byte every 200 ms: progress, but the head never completes.
        for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnopqrstuvwxyz" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        closed_after(s, start, limit)
    });
    let kept_alive = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        let answered = Instant::now();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        (head, closed_after(s, answered, limit))
    });
    let next_request_stalls = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        closed_after(s, Instant::now(), limit)
    });
    let stream = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        // Longer than the idle timeout, shorter than the stream's 15 s keep-alive comment.
        (head, closed_after(s, Instant::now(), Duration::from_secs(5)))
    });

    let silent = silent.join().unwrap();
    let partial = partial.join().unwrap();
    let trickle = trickle.join().unwrap();
    let (head, kept_alive) = kept_alive.join().unwrap();
    let next_request_stalls = next_request_stalls.join().unwrap();
    let (stream_head, stream) = stream.join().unwrap();
    eprintln!(
        "closed after: silent {silent:?}, partial head {partial:?}, trickle {trickle:?}, \
         kept-alive idle {kept_alive:?}, stalled second head {next_request_stalls:?}; event stream {stream:?}"
    );
    let header_window = Duration::from_millis(900)..Duration::from_millis(2500);
    for (what, t) in
        [("silent", silent), ("partial head", partial), ("trickle", trickle), ("second head", next_request_stalls)]
    {
        let t = t.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(header_window.contains(&t), "{what}: closed after {t:?}, want about the 1 s header timeout");
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let t = kept_alive.expect("kept-alive connection never closed");
    assert!(
        (Duration::from_millis(2900)..Duration::from_millis(4500)).contains(&t),
        "idle keep-alive closed after {t:?}, want about the 3 s idle timeout (not the 1 s header timeout)"
    );
    assert!(stream_head.starts_with("HTTP/1.1 200") && stream_head.contains("text/event-stream"), "{stream_head}");
    assert_eq!(stream, None, "an event stream is not idle: it outlives the idle timeout");

    let m = d.metrics();
    assert!(closed(&m, "header_timeout") >= 4.0, "{}", closed(&m, "header_timeout"));
    assert!(closed(&m, "idle_timeout") >= 1.0, "{}", closed(&m, "idle_timeout"));
}

/// At the cap a scrape still gets in: it closes the connection idle longest, then the
/// oldest event stream, never one in the middle of a request.
#[test]
fn at_the_cap_a_scrape_closes_the_longest_idle_connection_first() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--web.max-connections", "4", "--web.header-timeout", "60s"]);
    d.wait_ready(Duration::from_secs(30));
    let open_stream = || {
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("text/event-stream"));
        s
    };
    let mut old_stream = open_stream();
    std::thread::sleep(Duration::from_millis(50));
    let mut new_stream = open_stream();
    std::thread::sleep(Duration::from_millis(50));
    let mut old_idle = TcpStream::connect(d.addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut new_idle = TcpStream::connect(d.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let (status, _, _) = http_get(d.addr, "/healthz", &[]);
    assert_eq!(status, 200, "a new request at the cap is served");
    assert!(is_closed(&mut old_idle, Duration::from_secs(2)), "the longest-idle connection made room");
    assert!(!is_closed(&mut new_idle, Duration::from_millis(200)), "only one was closed");
    assert!(!is_closed(&mut old_stream, Duration::from_millis(200)), "streams go after idle connections");

    // Full again with a newer stream: the idle connection still goes first, however young.
    let mut third_stream = open_stream();
    assert_eq!(http_get(d.addr, "/healthz", &[]).0, 200);
    assert!(is_closed(&mut new_idle, Duration::from_secs(2)), "idle before streams");
    assert!(!is_closed(&mut old_stream, Duration::from_millis(200)));
    // Full of streams: the oldest makes room.
    let mut fourth_stream = open_stream();
    assert_eq!(http_get(d.addr, "/healthz", &[]).0, 200);
    assert!(is_closed(&mut old_stream, Duration::from_secs(2)), "the oldest stream made room");
    for s in [&mut new_stream, &mut third_stream, &mut fourth_stream] {
        assert!(!is_closed(s, Duration::from_millis(200)));
    }

    let m = d.metrics();
    assert_eq!(closed(&m, "evicted"), 2.0);
    assert_eq!(closed(&m, "evicted_stream"), 1.0);
    assert_eq!(closed(&m, "rejected"), 0.0);
    let warnings = d.log_text().lines().filter(|l| l.contains("Connection limit reached")).count();
    assert_eq!(warnings, 1, "logged once per episode:\n{}", d.log_text());
}
