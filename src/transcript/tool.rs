//! What kind of tool a call is: a fact about the tool's name alone.

/// What kind of tool a call is, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ToolCategory {
    FileRead,
    FileWrite,
    Shell,
    Web,
    Mcp,
    Agent,
    Other,
}

impl ToolCategory {
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
