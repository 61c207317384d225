//! Which Claude Code processes run, and where: for ending sessions whose process exited.
//!
//! In: the process table (sysinfo: names, command lines, working directories).
//! Out: the working directories of processes that look like Claude Code (the
//! native `claude` binary, or Node running the `@anthropic-ai/claude-code`
//! package or a `claude` script). A session is tied to its process by its
//! `cwd`; only sessions whose process was seen once can end this way, so
//! transcripts from another machine or a container are never ended by it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// A reusable view of the process table.
pub struct Processes {
    sys: System,
}

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Processes")
    }
}

impl Processes {
    /// `None` where the process table cannot be read (unsupported platform).
    pub fn new() -> Option<Processes> {
        System::new().ok().map(|sys| Processes { sys })
    }
}

/// Whether a process with this name and command line is Claude Code.
pub fn is_claude(name: &OsStr, cmd: &[OsString]) -> bool {
    let base = |s: &OsStr| Path::new(s).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    if base(name) == "claude" {
        return true;
    }
    // `node …/bin/claude` or `node …/@anthropic-ai/claude-code/cli.js`: the script is the first argument.
    cmd.get(1).is_some_and(|a| {
        let a = a.to_string_lossy();
        base(OsStr::new(a.as_ref())) == "claude" || a.contains("@anthropic-ai/claude-code")
    })
}

impl Processes {
    /// Working directories of running Claude Code processes.
    ///
    /// Processes only, not their threads (listing each process's tasks cost most of a
    /// check); a command line is read once per process, the working directory each time.
    pub fn claude_cwds(&mut self) -> HashSet<String> {
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cwd(UpdateKind::Always)
                .with_cmd(UpdateKind::OnlyIfNotSet),
        );
        self.sys
            .processes()
            .values()
            .filter(|p| is_claude(p.name(), p.cmd()))
            .filter_map(|p| p.cwd().map(|c| c.to_string_lossy().trim_end_matches('/').to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn claude_processes_are_recognised() {
        assert!(is_claude(OsStr::new("claude"), &os(&["claude", "--resume"])));
        assert!(is_claude(OsStr::new("node"), &os(&["node", "/usr/lib/node_modules/.bin/claude"])));
        assert!(is_claude(
            OsStr::new("node"),
            &os(&["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"])
        ));
        assert!(!is_claude(OsStr::new("node"), &os(&["node", "server.js", "--name", "claude"])));
        assert!(!is_claude(OsStr::new("claude-sessions"), &os(&["claude-sessions", "serve"])));
        assert!(!is_claude(OsStr::new("vim"), &os(&["vim", "claude.md"])));
    }

    #[test]
    fn this_process_table_can_be_read() {
        let mut p = Processes::new().expect("Linux has a process table");
        // Nothing here runs Claude Code; the call must simply work.
        let _ = p.claude_cwds();
    }
}
