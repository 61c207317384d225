//! What kind of tool a call is: a fact about the tool's name alone.

/// What kind of tool a call is, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ToolCategory {
    /// Reads or searches files: `Read`, `Glob`, `Grep`, `LS`, `NotebookRead`.
    FileRead,
    /// Changes files: `Write`, `Edit`, `MultiEdit`, `NotebookEdit`.
    FileWrite,
    /// Runs or manages shell commands: `Bash`, `BashOutput`, `KillShell`, `KillBash`.
    Shell,
    /// Reaches the web: `WebFetch`, `WebSearch`.
    Web,
    /// A tool of an MCP server (`mcp__<server>__<tool>`).
    Mcp,
    /// Starts a sub-agent: `Task`, `Agent`.
    Agent,
    /// Any other tool (`TodoWrite`, `Skill`, new tools…).
    Other,
}

impl ToolCategory {
    /// The category of the tool named `tool` (case-sensitive, as Claude Code writes it).
    pub fn of(tool: &str) -> ToolCategory {
        match tool {
            _ if tool.starts_with("mcp__") => ToolCategory::Mcp,
            "Read" | "Glob" | "Grep" | "LS" | "NotebookRead" => ToolCategory::FileRead,
            "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => ToolCategory::FileWrite,
            "Bash" | "BashOutput" | "KillShell" | "KillBash" => ToolCategory::Shell,
            "WebFetch" | "WebSearch" => ToolCategory::Web,
            "Task" | "Agent" => ToolCategory::Agent,
            _ => ToolCategory::Other,
        }
    }

    /// The label and filter value: `file_read`, `file_write`, `shell`, `web`, `mcp`, `agent`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolCategory::FileRead => "file_read",
            ToolCategory::FileWrite => "file_write",
            ToolCategory::Shell => "shell",
            ToolCategory::Web => "web",
            ToolCategory::Mcp => "mcp",
            ToolCategory::Agent => "agent",
            ToolCategory::Other => "other",
        }
    }
}
