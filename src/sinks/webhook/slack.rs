//! The body of a POST: JSON (`{"batch_id": …, "events": [...]}`), or Slack's
//! `{"text": …}` with one readable line per event.

use std::sync::Arc;

use super::Format;
use crate::events::{Event, Kind};

/// A tool summary or description is cut to this many bytes in Slack lines.
const SLACK_SUMMARY_BYTES: usize = 300;

#[derive(serde::Serialize)]
struct JsonBody<'a> {
    batch_id: &'a str,
    events: &'a [Arc<Event>],
}

/// The body of one POST.
/// `console`: the console's base URL, for links from approval lines.
pub(super) fn render(format: Format, batch_id: &str, events: &[Arc<Event>], console: Option<&str>) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(&JsonBody { batch_id, events }).unwrap_or_default(),
        Format::Slack => {
            let text: Vec<String> = events.iter().map(|e| slack_line(e, console)).collect();
            serde_json::to_vec(&serde_json::json!({ "text": text.join("\n") })).unwrap_or_default()
        }
    }
}

/// Slack's three escapes (`&`, `<`, `>`), so that text never turns into links or mentions.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escaped, on one line, capped.
fn slack_text(s: &str) -> String {
    slack_escape(&crate::transcript::entry::cap_text(s.lines().next().unwrap_or_default(), SLACK_SUMMARY_BYTES))
}

/// Inline code, or plain escaped text if it holds a backtick.
fn slack_code(s: &str) -> String {
    let s = slack_text(s);
    if s.contains('`') || s.is_empty() { s } else { format!("`{s}`") }
}

/// The console's view of a session, as a Slack link target: `None` if the base URL
/// holds a character that would end Slack's `<url|text>` early.
fn console_link(base: &str, session: &str) -> Option<String> {
    if base.contains(['|', '>', '<', ' ']) {
        return None;
    }
    let session = crate::server::api::percent_encode(session);
    Some(format!("{}/#/session/{session}", base.trim_end_matches('/')))
}

fn short(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// One readable line: what happened, where. Only fields the event carries; never
/// prompt text, tool input or output (a summary or description only when present).
fn slack_line(e: &Event, console: Option<&str>) -> String {
    let mut where_ = if e.project.is_empty() { String::new() } else { format!("{} · ", slack_code(&e.project)) };
    where_.push_str(&format!("session {}", slack_code(short(&e.session_id))));
    if let Some(a) = &e.agent_id {
        where_.push_str(&format!(" · agent {}", slack_code(short(a))));
    }
    let what = match &e.kind {
        Kind::RuleMatch { rule, severity, tool, .. } => {
            let icon = match severity.as_str() {
                "critical" => ":rotating_light:",
                "warning" => ":warning:",
                _ => ":information_source:",
            };
            return format!(
                "{icon} *Rule match: {}* ({}) · tool {} · {where_}",
                slack_text(rule),
                slack_text(severity),
                slack_code(tool)
            );
        }
        Kind::ToolUse { name, summary, .. } => {
            let mut s = format!("*tool_use* {}", slack_code(name));
            if let Some(sum) = summary {
                s.push_str(&format!(" — {}", slack_code(sum)));
            }
            s
        }
        Kind::ToolResult { name, is_error, duration_ms, .. } => {
            let mut s = format!("*tool_result* {}", slack_code(name));
            if *is_error {
                s.push_str(" *error*");
            }
            if let Some(ms) = duration_ms {
                s.push_str(&format!(" after {:.1} s", *ms as f64 / 1000.0));
            }
            s
        }
        Kind::Message { role, model, cost_usd, .. } => {
            let mut s = format!("*message* {}", slack_text(role));
            if let Some(m) = model {
                s.push_str(&format!(" {}", slack_code(m)));
            }
            if let Some(c) = cost_usd {
                s.push_str(&format!(" ${c:.4}"));
            }
            s
        }
        Kind::SessionStart { git_branch, .. } => match git_branch {
            Some(b) => format!("*session_start* on branch {}", slack_code(b)),
            None => "*session_start*".into(),
        },
        Kind::SessionEnd { reason } => {
            format!(
                "*session_end* ({})",
                serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            )
        }
        Kind::AgentSpawn { agent_type, description, .. } => {
            let mut s = format!("*agent_spawn* {}", slack_code(agent_type));
            if let Some(d) = description {
                s.push_str(&format!(" — {}", slack_code(d)));
            }
            s
        }
        Kind::Compaction { trigger, tokens_before, tokens_after } => {
            let mut s = format!("*compaction* ({})", slack_text(trigger));
            if let (Some(b), Some(a)) = (tokens_before, tokens_after) {
                s.push_str(&format!(" {b} → {a} tokens"));
            }
            s
        }
        Kind::ApiError { kind } => format!("*api_error* {}", slack_code(kind)),
        Kind::ContextGrowth { tokens_added, cumulative, .. } => {
            format!("*context_growth* {tokens_added:+} tokens (now {cumulative})")
        }
        Kind::Error { message } => format!("*error* {}", slack_text(message)),
        Kind::ApprovalPending { tool, summary, rule, reason, approval_id, .. } => {
            let mut s = format!(
                ":raised_hand: *Approval needed* · tool {} — {} · rule {} ({}) · approval {} · {where_}",
                slack_code(tool),
                slack_code(summary),
                slack_text(rule),
                slack_text(reason),
                slack_code(approval_id)
            );
            if let Some(link) = console.and_then(|c| console_link(c, &e.session_id)) {
                s.push_str(&format!(" · <{link}|open in the console>"));
            }
            return s;
        }
        Kind::ApprovalDecided { tool, state, reason, approval_id, .. } => {
            let mut s =
                format!("*approval {}* {} · approval {}", slack_text(state), slack_code(tool), slack_code(approval_id));
            if let Some(r) = reason {
                s.push_str(&format!(" — {}", slack_text(r)));
            }
            s
        }
        other => format!("*{}*", other.name()),
    };
    format!("{what} · {where_}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ToolCategory;

    fn ev(id: u64, kind: Kind) -> Arc<Event> {
        Arc::new(Event {
            id,
            ts_ms: 1,
            session_id: "0123456789abcdef".into(),
            project: "app".into(),
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind,
        })
    }

    #[test]
    fn slack_lines_are_escaped_and_highlight_rule_matches() {
        let rule = ev(
            1,
            Kind::RuleMatch {
                rule: "rm <rf>".into(),
                severity: "critical".into(),
                tool_use_id: "t".into(),
                tool: "Bash".into(),
            },
        );
        let line = slack_line(&rule, None);
        assert!(line.starts_with(":rotating_light: *Rule match: rm &lt;rf&gt;* (critical)"), "{line}");
        assert!(line.contains("session `01234567`") && line.contains("`app`"), "{line}");
        let tool = ev(
            2,
            Kind::ToolUse {
                tool_use_id: "t".into(),
                name: "Bash".into(),
                category: ToolCategory::Shell,
                summary: Some("echo `x`".into()),
                input: Some("{\"command\":\"SECRET\"}".into()),
            },
        );
        let line = slack_line(&tool, None);
        assert!(line.contains("*tool_use* `Bash` — echo `x`") && !line.contains("SECRET"), "{line}");
        let body: serde_json::Value = serde_json::from_slice(&render(Format::Slack, "k", &[rule, tool], None)).unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1);
        assert_eq!(body["text"].as_str().unwrap().lines().count(), 2);
    }

    #[test]
    fn approval_lines_name_the_call_and_link_the_session_in_the_console() {
        let pending = ev(
            3,
            Kind::ApprovalPending {
                approval_id: "a1".into(),
                tool_use_id: None,
                tool: "Bash".into(),
                summary: "git push --force".into(),
                rule: "force-push".into(),
                reason: "rewrites history".into(),
            },
        );
        let line = slack_line(&pending, Some("http://127.0.0.1:9477/"));
        assert!(line.contains("`Bash` — `git push --force`") && line.contains("approval `a1`"), "{line}");
        assert!(line.ends_with(" · <http://127.0.0.1:9477/#/session/0123456789abcdef|open in the console>"), "{line}");
        assert!(!slack_line(&pending, None).contains("console"), "no base URL, no link");
        assert!(!slack_line(&pending, Some("http://x|y")).contains("open in the console"), "a | would break the link");
    }
}
