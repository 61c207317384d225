use clap::Parser;

use claude_sessions::cli::{
    Cli, Command, analyze, backfill, control, docgen, hook, hooks, scan, serve, sessions, watch,
};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Backfill(a) => backfill::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Sessions(a) => sessions::run(a),
        Command::Hooks(c) => hooks::run(c),
        Command::Approve(a) => control::approve(a),
        Command::Deny(a) => control::deny(a),
        Command::Pause(a) => control::pause(a),
        Command::Resume(a) => control::resume(a),
        Command::Note(a) => control::note(a),
        Command::Completions(a) => docgen::completions(a),
        Command::Man => docgen::man(),
        // The hook has exit codes of its own (Claude Code reads them).
        Command::Hook(c) => return hook::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-sessions: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
