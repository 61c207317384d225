//! The built-in checks: what a tool call does, read from its parsed command or paths.
//!
//! In: a [`Call`] (the tool, its input, and for Bash the [`shell::Analysis`] of its
//! command). Out: whether a named check holds. Rules name a check with `check = "…"`;
//! each check knows the spellings of its danger (option clusters, long options, `--`,
//! wrappers, paths with `//`, `..`, `~` or `$HOME`), so the rules file only says how
//! serious a match is and what the hook answers.
//!
//! Parts: `commands` holds the checks on one simple command; `paths` what a path is
//! (secret, start-up file, disk, broad delete target) and which paths a call writes.

mod commands;
mod paths;

use crate::rules::shell::{self, Analysis, Command};
use crate::rules::tool::ToolCategory;
use commands::{
    SQL_DROP, delete_recursive, delete_root, disk_wipe, download_to_shell, history_rewrite, is_privileged, push_force,
    read_only, sql_drop, startup_command, world_writable,
};
use paths::{is_disk, is_env_file, is_startup_file, secret_kind, shell_paths, written};

/// A tool call as the checks see it.
pub(crate) struct Call<'a> {
    /// The tool's name as the transcript gives it (`Bash`, `Write`, `mcp__pg__query`).
    pub tool: &'a str,
    /// What kind of tool that is (shell, file read or write, web, MCP…).
    pub category: ToolCategory,
    /// The call's input, as the model wrote it.
    pub input: &'a serde_json::Value,
    /// The Bash command, read statically (shell tools only).
    pub shell: Option<Analysis>,
}

impl<'a> Call<'a> {
    /// A call of `tool` with `input`; a shell tool's `command` is read here, once, for
    /// every rule that looks at it.
    pub fn new(tool: &'a str, input: &'a serde_json::Value) -> Call<'a> {
        let category = ToolCategory::of(tool);
        let shell = match (category, input.get("command").and_then(|c| c.as_str())) {
            (ToolCategory::Shell, Some(cmd)) => Some(shell::analyze(cmd)),
            _ => None,
        };
        Call { tool, category, input, shell }
    }

    /// The paths a file tool names (`file_path`, `notebook_path`, `path`, `pattern` of Glob).
    fn paths(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for k in ["file_path", "notebook_path", "path"] {
            if let Some(p) = self.input.get(k).and_then(|v| v.as_str()) {
                out.push(p);
            }
        }
        if self.tool == "Glob"
            && let Some(p) = self.input.get("pattern").and_then(|v| v.as_str())
        {
            out.push(p);
        }
        if let Some(edits) = self.input.get("edits").and_then(|v| v.as_array()) {
            for e in edits {
                if let Some(p) = e.get("file_path").and_then(|v| v.as_str()) {
                    out.push(p);
                }
            }
        }
        out
    }

    fn commands(&self) -> &[Command] {
        self.shell.as_ref().map_or(&[], |a| a.commands.as_slice())
    }
}

/// The checks a rule can name (`check = "…"` in a rules file; names in [`Check::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Recursive delete of `/`, `~`, `$HOME` or a system folder; `find … -delete` on one.
    DeleteRoot,
    /// Any recursive forced delete, or `find … -delete` (`rm -rf /` is one too).
    DeleteRecursive,
    /// `dd` to a device, `mkfs`, `wipefs`, `shred` of a device, a redirection onto a disk.
    DiskWipe,
    /// A function that calls itself, defined and run on the line (`:(){ :|:& };:`).
    ForkBomb,
    /// `git push` with `-f`, `--force` or a `+ref`.
    ForcePush,
    /// `git push --force-with-lease`.
    ForcePushLease,
    /// `git reset --hard`, `clean -f`, `checkout -- .`, `restore`, `stash drop`, `branch -D`…
    HistoryRewrite,
    /// A download piped or substituted into a shell or interpreter.
    DownloadToShell,
    /// `sudo`, `doas`, `su`, `pkexec`, `run0`.
    PrivilegeEscalation,
    /// Reading, copying, encoding or sending private keys, credentials, `.netrc`, `.env*`.
    SecretAccess,
    /// Writing private keys or credential files.
    SecretWrite,
    /// Writing `.env` files.
    EnvWrite,
    /// Writing shell start-up files, `~/.ssh/authorized_keys`, git hooks, the crontab.
    StartupWrite,
    /// `DROP TABLE`/`DATABASE`/`SCHEMA`, `TRUNCATE`, `dropdb`, `FLUSHALL`.
    SqlDrop,
    /// World-writable permissions (`chmod 777`, `o+w`).
    WorldWritable,
    /// A program only known at run time, a shell string that is not static, a syntax error.
    Unresolved,
    /// Every command is read-only, names no secret and writes nothing.
    ReadOnly,
}

impl Check {
    /// Every check with the name a rules file gives it.
    pub const ALL: &[(&str, Check)] = &[
        ("delete-root", Check::DeleteRoot),
        ("delete-recursive", Check::DeleteRecursive),
        ("disk-wipe", Check::DiskWipe),
        ("fork-bomb", Check::ForkBomb),
        ("force-push", Check::ForcePush),
        ("force-push-lease", Check::ForcePushLease),
        ("history-rewrite", Check::HistoryRewrite),
        ("download-to-shell", Check::DownloadToShell),
        ("privilege-escalation", Check::PrivilegeEscalation),
        ("secret-access", Check::SecretAccess),
        ("secret-write", Check::SecretWrite),
        ("env-write", Check::EnvWrite),
        ("startup-write", Check::StartupWrite),
        ("sql-drop", Check::SqlDrop),
        ("world-writable", Check::WorldWritable),
        ("unresolved", Check::Unresolved),
        ("read-only", Check::ReadOnly),
    ];

    /// The check a rules file names `name`; `None` for a name not in [`Check::ALL`].
    pub fn named(name: &str) -> Option<Check> {
        Check::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// Whether the check holds for `call`. Most checks hold when any one simple command
    /// on the line (or any path the call names) is dangerous; `ReadOnly` needs every
    /// command to be read-only and the whole line to be known.
    pub fn holds(self, call: &Call) -> bool {
        let cmds = call.commands();
        match self {
            Check::DeleteRoot => cmds.iter().any(delete_root),
            Check::DeleteRecursive => cmds.iter().any(delete_recursive),
            Check::DiskWipe => {
                cmds.iter().any(disk_wipe)
                    || call.shell.as_ref().is_some_and(|a| a.written_files().any(|t| is_disk(&t.text)))
            }
            Check::ForkBomb => call
                .shell
                .as_ref()
                .is_some_and(|a| a.recursive_functions.iter().any(|f| cmds.iter().filter(|c| c.is(f)).count() >= 2)),
            Check::ForcePush => cmds.iter().any(|c| push_force(c) == Some(true)),
            Check::ForcePushLease => {
                cmds.iter().any(|c| push_force(c) == Some(false)) && !cmds.iter().any(|c| push_force(c) == Some(true))
            }
            Check::HistoryRewrite => cmds.iter().any(history_rewrite),
            Check::DownloadToShell => cmds.iter().any(download_to_shell),
            Check::PrivilegeEscalation => cmds
                .iter()
                .any(|c| c.via.iter().any(|v| is_privileged(v)) || c.program.as_deref().is_some_and(is_privileged)),
            Check::SecretAccess => match call.category {
                ToolCategory::Shell => shell_paths(call).any(|p| secret_kind(&p).is_some()),
                ToolCategory::FileRead => call.paths().iter().any(|p| secret_kind(p).is_some()),
                _ => false,
            },
            Check::SecretWrite => written(call).any(|p| secret_kind(&p).is_some() && !is_env_file(&p)),
            Check::EnvWrite => written(call).any(|p| is_env_file(&p)),
            Check::StartupWrite => written(call).any(|p| is_startup_file(&p)) || cmds.iter().any(startup_command),
            Check::SqlDrop => match call.category {
                ToolCategory::Shell => cmds.iter().any(sql_drop),
                ToolCategory::FileRead | ToolCategory::FileWrite => false,
                _ => SQL_DROP.is_match(&call.input.to_string()),
            },
            Check::WorldWritable => cmds.iter().any(world_writable),
            Check::Unresolved => call.shell.as_ref().is_some_and(|a| !a.unresolved.is_empty()),
            Check::ReadOnly => call.shell.as_ref().is_some_and(|a| read_only(call, a)),
        }
    }
}

#[cfg(test)]
mod tests;
