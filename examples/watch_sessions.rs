//! Follow Claude Code sessions with the library: print tool calls and rule matches as
//! they happen, and a session summary when a session ends.
//!
//! ```sh
//! cargo run --example watch_sessions                  # ~/.claude/projects and friends
//! cargo run --example watch_sessions -- /path/to/projects
//! ```

use std::time::Duration;

use claude_sessions::events::{EventKind, Kind, Selector};
use claude_sessions::watcher::SessionWatcher;

fn main() -> anyhow::Result<()> {
    let mut builder = SessionWatcher::builder().summaries(true).idle_timeout(Duration::from_secs(300));
    if let Some(dir) = std::env::args().nth(1) {
        builder = builder.projects_dir(dir);
    }
    let mut watcher = builder.start()?;
    let sessions = watcher.sessions();

    // Callbacks: one per kind, or any event a selector selects.
    watcher.on(EventKind::ToolUse, |e| {
        if let Kind::ToolUse { name, summary, .. } = &e.kind {
            let who = e.agent_id.as_deref().unwrap_or("main");
            println!(
                "{} [{who}] {name} {}",
                &e.session_id[..8.min(e.session_id.len())],
                summary.as_deref().unwrap_or("")
            );
        }
    });
    watcher.pipe(Selector::main()).on(EventKind::ToolResult, |e| {
        if let Kind::ToolResult { name, is_error: true, .. } = &e.kind {
            println!("{} {name} failed", e.session_id);
        }
    });
    watcher.on(EventKind::SessionEnd, move |e| {
        if let Some(s) = sessions.get(&e.session_id) {
            println!(
                "{} ended: {} prompts, {} tool calls, {} output tokens, ${:.2}",
                s.project, s.prompts, s.tool_calls, s.tokens.output, s.cost_usd
            );
        }
    });

    // Ctrl-C ends the process; `watcher.stop_handle()` ends `run` from another thread.
    watcher.run()?;
    Ok(())
}
