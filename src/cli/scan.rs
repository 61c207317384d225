//! `scan`: one pass over history, then a report.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::SourceArgs;
use crate::engine::Engine;
use crate::report;
use crate::report::by;

/// What `scan` prints (`--format`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A readable summary.
    Table,
    /// Totals by model, tool and project, as JSON.
    Json,
    /// The metrics in the Prometheus text format.
    Prometheus,
    /// The metrics in the OpenMetrics text format.
    Openmetrics,
    /// Comma-separated values, a header first and a `total` line last (with `--by`).
    Csv,
}

/// The flags of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Where transcripts are and how to count them.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Usage by day, week (from Monday), month, session, project or model, with a totals row.
    #[arg(long, value_enum, value_name = "GROUP")]
    pub by: Option<by::By>,

    /// Only usage from this day (`2025-06-14`, `20250614`) or this long ago (`7d`); with `--by`.
    #[arg(long, value_name = "WHEN", value_parser = by::parse_bound, requires = "by")]
    pub since: Option<by::Bound>,

    /// Only usage up to this day (whole) or this long ago; with `--by`.
    #[arg(long, value_name = "WHEN", value_parser = by::parse_bound, requires = "by")]
    pub until: Option<by::Bound>,

    /// Time zone of days, weeks and months: an IANA name (`UTC`, `Europe/Paris`) or `local`.
    #[arg(long, value_name = "ZONE", default_value = "local", value_parser = by::parse_timezone)]
    pub timezone: jiff::tz::TimeZone,

    /// Threads that read and parse files (entries are applied in a fixed order either way).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,

    /// Never show the progress line (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Accepted for symmetry with `serve`; `scan` writes no state.
    #[arg(long, value_name = "DIR", hide = true)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// Read all history once (in parallel) and print the report in the chosen format on
/// standard output; a closed pipe is not an error. Errors: bad source settings.
pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let settings = args.source.settings()?;
    match (args.by, args.format) {
        (Some(_), Format::Prometheus | Format::Openmetrics) => {
            anyhow::bail!("--by makes a report: use --format table, json or csv (metrics have no time or session)")
        }
        (None, Format::Csv) => {
            anyhow::bail!("--format csv needs --by day, week, month, session, project or model")
        }
        _ => {}
    }
    let mut engine = Engine::new(settings);
    let collector = args.by.map(|group| {
        let grouping = by::Grouping { by: group, tz: args.timezone.clone(), since: args.since, until: args.until };
        std::sync::Arc::new(std::sync::Mutex::new(by::Collector::new(grouping)))
    });
    if let Some(c) = &collector {
        let c = c.clone();
        let agg = engine.aggregator();
        agg.lock().unwrap_or_else(|p| p.into_inner()).set_ledger(Some(Box::new(move |f| {
            c.lock().unwrap_or_else(|p| p.into_inner()).add(f);
        })));
    }
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let last = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    let progress = |done: usize, total: usize| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if show && (last.elapsed() >= Duration::from_millis(100) || done == total) {
            *last = Instant::now();
            eprint!("\rscanning: {done}/{total} files, {:.1}s", started.elapsed().as_secs_f64());
            if done == total {
                eprintln!();
            }
        }
    };
    engine.scan(args.threads as usize, &progress);
    let agg = engine.aggregator();
    if let Some(c) = collector {
        agg.lock().unwrap_or_else(|p| p.into_inner()).set_ledger(None);
        let c = std::sync::Arc::try_unwrap(c).expect("the ledger was dropped");
        let breakdown = c.into_inner().unwrap_or_else(|p| p.into_inner()).finish();
        let out = match args.format {
            Format::Json => serde_json::to_string_pretty(&breakdown.json())? + "\n",
            Format::Csv => breakdown.csv(),
            _ => breakdown.table(),
        };
        return super::print_stdout(&out);
    }
    let out = match args.format {
        Format::Json => {
            let r =
                report::Report::from_aggregator(&agg.lock().unwrap_or_else(|p| p.into_inner()), engine.files_tracked());
            serde_json::to_string_pretty(&r)? + "\n"
        }
        Format::Table => {
            let r =
                report::Report::from_aggregator(&agg.lock().unwrap_or_else(|p| p.into_inner()), engine.files_tracked());
            r.table()
        }
        Format::Prometheus => crate::server::Exposition::new(agg).render(false),
        Format::Openmetrics => crate::server::Exposition::new(agg).render(true),
        Format::Csv => unreachable!("refused above"),
    };
    super::print_stdout(&out)
}
