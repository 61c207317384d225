//! Rules that flag risky tool calls (placeholder: filled in by the rules work).

use serde::{Deserialize, Serialize};

/// How serious a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A rule that matched a tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rule: String,
    pub severity: Severity,
}

/// A set of rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {}

impl Rules {
    /// The rules `tool` with `input` (its JSON input) matches.
    pub fn check(&self, _tool: &str, _input: &serde_json::Value) -> Vec<Match> {
        Vec::new()
    }
}
