//! Helpers shared by the integration tests: fixture locations, a fake Claude config root
//! built from the real transcripts, and runners for our binary and for external tools.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `<crate>/tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// Copies `src` (a file or a folder, recursively) to `dst`. Refuses to overwrite anything,
/// so two fixture sources that happen to share a project slug are caught.
pub fn copy_tree(src: &Path, dst: &Path) {
    assert!(!dst.exists(), "refusing to overwrite {}", dst.display());
    if src.is_dir() {
        fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
        let mut entries: Vec<PathBuf> = fs::read_dir(src)
            .unwrap_or_else(|e| panic!("read {}: {e}", src.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            copy_tree(&path, &dst.join(path.file_name().expect("file name")));
        }
    } else {
        fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    }
}

/// A temporary Claude config root (`CLAUDE_CONFIG_DIR=<tmp>`) whose `projects/` holds a copy
/// of every real fixture:
/// * `claude-code-log/projects/<slug>` and `claude-code-viewer/projects/<slug>` →
///   `<tmp>/projects/<slug>`;
/// * `spotter/transcripts/` → `<tmp>/projects/-spotter-transcripts/` (inner layout kept,
///   including `<session>/subagents/`).
///
/// Everything is copied, `.meta.json` sidecars included.
pub fn real_config_root() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let projects = tmp.path().join("projects");
    fs::create_dir_all(&projects).expect("create projects/");
    let real = fixtures_dir().join("real");
    for source in ["claude-code-log", "claude-code-viewer"] {
        let dir = real.join(source).join("projects");
        let mut slugs: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        slugs.sort();
        for slug in slugs {
            copy_tree(&slug, &projects.join(slug.file_name().expect("slug name")));
        }
    }
    copy_tree(&real.join("spotter").join("transcripts"), &projects.join("-spotter-transcripts"));
    tmp
}

/// Path of the `claude-sessions` binary built by cargo for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_claude-sessions"))
}

/// Runs `claude-sessions scan --format json` on `config_root` with a throw-away state dir,
/// asserts success and returns the parsed stdout.
pub fn run_scan_json(config_root: &Path) -> serde_json::Value {
    let state = tempfile::tempdir().expect("state dir");
    let output = Command::new(bin())
        .arg("scan")
        .arg("--format")
        .arg("json")
        .arg("--state-dir")
        .arg(state.path())
        .env("CLAUDE_CONFIG_DIR", config_root)
        .output()
        .expect("spawn claude-sessions");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "claude-sessions scan failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("scan stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

/// Runs `ccusage <report> --offline --json [--timezone UTC]` (`session`, `daily`, …) on `config_root`. `HOME` points at
/// an empty temp dir so that ccusage finds no other agent's data and no `~/.claude`.
pub fn run_ccusage(ccusage: &Path, config_root: &Path, report: &str) -> serde_json::Value {
    let home = tempfile::tempdir().expect("temp home");
    let run = |args: &[&str]| {
        Command::new(ccusage)
            .args(args)
            .env("CLAUDE_CONFIG_DIR", config_root)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", ccusage.display()))
    };
    let help = run(&[report, "--help"]);
    let mut args = vec![report, "--offline", "--json"];
    if String::from_utf8_lossy(&help.stdout).contains("--timezone") {
        args.extend(["--timezone", "UTC"]);
    }
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ccusage {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("ccusage output is not JSON ({e}):\n{stdout}"))
}

/// The ccusage executable: `$CCUSAGE_BIN`, else `<crate>/.tools/node_modules/.bin/ccusage`.
pub fn ccusage_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CCUSAGE_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/.bin/ccusage");
    local.exists().then_some(local)
}

/// Returns the tool if found. If missing: panics on CI (`$CI` non-empty), otherwise prints
/// a SKIPPED notice and returns `None` so the caller can return early.
pub fn require_tool(name: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let on_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if on_ci {
        panic!(
            "{name} is required on CI but was not found: run scripts/test.sh (installs it into .tools/), \
             e.g. `npm install --prefix .tools ccusage@20.0.24`, or set CCUSAGE_BIN"
        );
    }
    eprintln!("SKIPPED: {name} not installed (run scripts/test.sh)");
    None
}

/// `2025-01-01T00:00:00.000Z` from epoch milliseconds (civil-from-days, H. Hinnant).
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM:SS(.fff)Z`, as Claude Code writes timestamps.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d[2] - 1 - 719_468;
    Some(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

/// Resident memory of process `pid` in KiB (`VmRSS`; 0 where /proc is missing).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
