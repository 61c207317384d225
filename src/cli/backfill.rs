//! `backfill`: history as timestamped OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{SourceArgs, parse_duration};
use crate::sinks::backfill::{self, Options};

/// The flags of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Where transcripts are and how to count them.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Where to write the OpenMetrics text (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Spacing of samples.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub step: Duration,

    /// A label added to every series, NAME=VALUE (repeatable). Match your scrape
    /// config so dashboards see history and live data as one series. Default:
    /// job=claude-sessions and instance=127.0.0.1:9477.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = backfill::parse_label)]
    pub labels: Vec<(String, String)>,

    /// Leave out history after this many seconds since the Unix epoch (e.g. when
    /// the daemon started scraping), so backfilled and scraped samples do not overlap.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub until: Option<i64>,
}

/// Read all history once and write it as timestamped OpenMetrics to `--out`. Errors:
/// a step under 1s, bad source settings, an output that cannot be written.
pub fn run(args: BackfillArgs) -> anyhow::Result<()> {
    if args.step < Duration::from_secs(1) {
        anyhow::bail!("--step must be at least 1s");
    }
    let settings = args.source.settings()?;
    let labels = if args.labels.is_empty() {
        vec![("job".to_owned(), "claude-sessions".to_owned()), ("instance".to_owned(), "127.0.0.1:9477".to_owned())]
    } else {
        args.labels
    };
    let opts = Options {
        step_ms: args.step.as_millis() as i64,
        labels,
        until_ms: args.until.map_or_else(crate::engine::now_ms, |s| s.saturating_mul(1000)),
    };
    let mut out = backfill::open_out(&args.out)?;
    let summary = backfill::run(&settings, &opts, &mut out)?;
    out.flush()?;
    let fmt = |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), |m| format!("{}", m / 1000));
    tracing::info!(
        files = summary.files,
        entries = summary.entries,
        series = summary.series,
        samples = summary.samples,
        from_unix = %fmt(summary.first_ms),
        to_unix = %fmt(summary.last_ms),
        "Wrote backfill; import with: promtool tsdb create-blocks-from openmetrics FILE DATA_DIR"
    );
    Ok(())
}
