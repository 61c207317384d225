//! `analyze`: the context research over history, as JSON (and a static HTML report).
//!
//! In: the transcript folders ([`SourceArgs`]), filters choosing sessions, an output
//! folder. Out: `analyze.json` (every chosen session's summary and the analyses, in the
//! documented schema `docs/analyze.schema.json`), `sessions/<id>.json` (each session's
//! context trajectory: a snapshot per main-chain call), and `report.html`. No transcript
//! text is written: the research features are sizes, counts and hashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::SourceArgs;
use crate::engine::analyze::{self, Found, Read};
use crate::research::compaction::{self, CompactionReport, CompactionStats};
use crate::research::influence::{self, SessionInfluence, ToolInfluence};
use crate::research::prompts::{self, Patterns, PromptRecord};
use crate::research::stats::Bootstrap;
use crate::research::summary::SessionSummary;
use crate::research::tracker::{Compaction, SessionRecord, Snapshot};
use crate::research::trajectory::{self, Trajectory};
use crate::state::live::Projects;
use crate::transcript::entry::{Millis, Tokens};

pub mod ab;
pub mod html;
mod html_research;

/// The schema name written in `analyze.json` (bumped when a field changes meaning);
/// the schema itself is `docs/analyze.schema.json`.
pub const SCHEMA: &str = "claude-sessions/analyze/1";
/// The schema name written in each `sessions/<id>.json` (`docs/trajectory.schema.json`).
pub const TRAJECTORY_SCHEMA: &str = "claude-sessions/trajectory/1";

/// The flags of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Where transcripts are.
    #[command(flatten)]
    pub source: SourceArgs,

    /// The folder to write `analyze.json`, `report.html` and `sessions/` into (created).
    #[arg(long, value_name = "DIR", default_value = "claude-sessions-analysis")]
    pub out: PathBuf,

    /// Print `analyze.json` on standard output instead of writing files.
    #[arg(long)]
    pub stdout: bool,

    /// Only these sessions (repeatable; an id or its first characters).
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<String>,

    /// Only sessions matching this filter: comma-separated `key=value` with keys
    /// `project`, `branch`, `model`, `since`, `until` (dates `YYYY-MM-DD`, UTC), `session`.
    #[arg(long, value_name = "FILTER")]
    pub only: Option<String>,

    /// Threads that read and analyze files.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,

    /// A/B mode: group A, a filter in the syntax of `--only`, drawn from the chosen
    /// sessions. Needs `--b`; the groups must not share a session.
    #[arg(long = "a", value_name = "FILTER", requires = "b")]
    pub a: Option<String>,

    /// A/B mode: group B (see `--a`). Differences read B − A.
    #[arg(long = "b", value_name = "FILTER", requires = "a")]
    pub b: Option<String>,

    /// Group A's name in the report (default: its filter).
    #[arg(long, value_name = "NAME", requires = "a")]
    pub a_label: Option<String>,

    /// Group B's name in the report (default: its filter).
    #[arg(long, value_name = "NAME", requires = "b")]
    pub b_label: Option<String>,

    /// Seed of the A/B bootstrap (the same seed gives the same intervals).
    #[arg(long, default_value_t = Bootstrap::default().seed)]
    pub seed: u64,

    /// Put the text of typed prompts (up to 2,000 bytes each) into `analyze.json` and the
    /// report. Off by default: transcripts hold prompts, code and secrets, and nothing of
    /// their text is written unless asked for.
    #[arg(long)]
    pub include_content: bool,

    /// Bootstrap resamples of the A/B intervals (0: no intervals).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub resamples: u64,
}

/// Which sessions a filter keeps; every given part must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Project label.
    pub project: Option<String>,
    /// Git branch.
    pub branch: Option<String>,
    /// A model the session used (exact, or a prefix such as `claude-opus`).
    pub model: Option<String>,
    /// Started at or after (ms).
    pub since: Option<Millis>,
    /// Started before (ms).
    pub until: Option<Millis>,
    /// Session id prefixes (any).
    pub sessions: Vec<String>,
}

impl std::str::FromStr for Filter {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Filter> {
        let mut f = Filter::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').with_context(|| format!("filter part {part:?}: expected key=value"))?;
            let v = v.trim().to_owned();
            match k.trim() {
                "project" => f.project = Some(v),
                "branch" => f.branch = Some(v),
                "model" => f.model = Some(v),
                "since" => f.since = Some(day(&v)?),
                "until" => f.until = Some(day(&v)?),
                "session" => f.sessions.push(v),
                other => {
                    anyhow::bail!("filter key {other:?}: expected one of project, branch, model, since, until, session")
                }
            }
        }
        Ok(f)
    }
}

/// `YYYY-MM-DD` → ms at 00:00 UTC.
fn day(s: &str) -> anyhow::Result<Millis> {
    crate::transcript::entry::parse_timestamp(&format!("{s}T00:00:00Z"))
        .with_context(|| format!("date {s:?}: expected YYYY-MM-DD"))
}

impl Filter {
    /// Whether `s` passes.
    pub fn keeps(&self, s: &SessionSummary) -> bool {
        self.project.as_ref().is_none_or(|p| *p == s.project)
            && self.branch.as_ref().is_none_or(|b| s.branch.as_ref() == Some(b))
            && self.model.as_ref().is_none_or(|m| s.models.iter().any(|x| x.starts_with(m.as_str())))
            && self.since.is_none_or(|t| s.first_ts.is_some_and(|f| f >= t))
            && self.until.is_none_or(|t| s.first_ts.is_some_and(|f| f < t))
            && (self.sessions.is_empty() || self.sessions.iter().any(|p| s.id.starts_with(p.as_str())))
    }
}

/// One session in `analyze.json`.
#[derive(Debug, Serialize)]
pub struct SessionOut {
    /// Its numbers.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Its compactions.
    pub compaction_list: Vec<Compaction>,
    /// Each compaction analysed: what it summarised, files read again after it.
    pub compaction_reports: Vec<CompactionReport>,
    /// Its trajectory class, with the rules that fired, pivots and progress.
    pub trajectory: Trajectory,
    /// Its tool results' influence, per tool and in all (tool `*`).
    pub influence: InfluenceOut,
    /// Its typed prompts: features and their turn's outcome.
    pub prompt_list: Vec<PromptRecord>,
}

/// A session's tool influence without its per-result list.
#[derive(Debug, Serialize)]
pub struct InfluenceOut {
    /// Per tool.
    pub tools: Vec<ToolInfluence>,
    /// Over all its results.
    pub total: ToolInfluence,
}

/// Everything over the chosen sessions.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// Sessions.
    pub sessions: usize,
    /// Main-chain calls.
    pub calls: usize,
    /// Compactions.
    pub compactions: usize,
    /// Tokens added to contexts, by source.
    pub composition: BTreeMap<String, i64>,
    /// Share of the added tokens from tool results.
    pub tool_result_share: f64,
}

/// `analyze.json`.
#[derive(Debug, Serialize)]
pub struct Output {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `claude-sessions <version>`.
    pub generated_by: String,
    /// What was read.
    pub read: Read,
    /// Over all chosen sessions.
    pub totals: Totals,
    /// The chosen sessions, in path order.
    pub sessions: Vec<SessionOut>,
    /// The A/B comparison, when `--a` and `--b` are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ab: Option<ab::Ab>,
    /// The compactions of all chosen sessions, in all, by model and by version.
    pub compaction_stats: CompactionStats,
    /// Sessions per trajectory class.
    pub trajectory_classes: BTreeMap<String, usize>,
    /// Tool influence over all chosen sessions, per tool (tool results nobody used are
    /// `unused`).
    pub influence: Vec<ToolInfluence>,
    /// Prompt features against their turns' outcomes, over all chosen sessions.
    pub prompt_patterns: Patterns,
}

/// What a worker keeps of a session.
struct Kept {
    summary: SessionSummary,
    cwd: Option<String>,
    slug: String,
    calls: Vec<Snapshot>,
    compactions: Vec<Compaction>,
    compaction_reports: Vec<CompactionReport>,
    trajectory: Trajectory,
    influence: SessionInfluence,
    prompts: Vec<PromptRecord>,
}

/// Run the analysis and write its files (or print the JSON). Errors: bad flags or
/// source settings, an output folder that cannot be written.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let settings = args.source.settings()?;
    let mut filter: Filter = args.only.as_deref().unwrap_or("").parse()?;
    filter.sessions.extend(args.sessions.iter().cloned());
    let pricing = &settings.aggregator.pricing;
    let price = |c: &Snapshot| {
        let t = Tokens {
            input: c.input_tokens,
            output: c.output_tokens,
            cache_creation: c.cache_creation_tokens,
            cache_creation_1h: c.cache_creation_1h_tokens,
            cache_read: c.cache_read_tokens,
        };
        pricing.cost(&c.model, &t, c.fast)
    };
    let summarize = |f: Found<'_>| -> Option<Kept> {
        let r: SessionRecord = f.record;
        if r.calls.is_empty() && r.steps.is_empty() {
            return None;
        }
        Some(Kept {
            summary: SessionSummary::of(&r, String::new(), &price),
            cwd: r.cwd.clone(),
            slug: f.info.slug.clone(),
            compaction_reports: compaction::analyze(&r),
            trajectory: trajectory::classify(&r),
            influence: influence::influence(&r),
            prompts: prompts::prompts(&r, &price),
            calls: r.calls,
            compactions: r.compactions,
        })
    };
    let content = if args.include_content { analyze::Content::Prompts } else { analyze::Content::None };
    let (kept, read) = analyze::analyze(&settings, args.threads as usize, content, &summarize);
    // Project labels in path order, as the metrics give them.
    let mut projects = Projects::default();
    let mut chosen = Vec::new();
    for mut k in kept {
        k.summary.project = projects.label(settings.aggregator.project_label, k.cwd.as_deref(), &k.slug);
        if filter.keeps(&k.summary) {
            chosen.push(k);
        }
    }
    let mut totals = Totals { sessions: chosen.len(), ..Totals::default() };
    for k in &chosen {
        totals.calls += k.summary.calls;
        totals.compactions += k.summary.compactions;
        for (src, n) in &k.summary.composition {
            *totals.composition.entry(src.clone()).or_default() += n;
        }
    }
    let added: i64 = totals.composition.values().sum();
    let tools: i64 = totals.composition.iter().filter(|(k, _)| k.starts_with("tool_result:")).map(|(_, v)| v).sum();
    totals.tool_result_share = if added > 0 { tools as f64 / added as f64 } else { 0.0 };

    let ab = match (&args.a, &args.b) {
        (Some(a), Some(b)) => {
            let spec = |filter: &String, label: &Option<String>| ab::GroupSpec {
                label: label.clone().unwrap_or_else(|| filter.clone()),
                filter: filter.clone(),
            };
            let bootstrap = Bootstrap { resamples: args.resamples as usize, seed: args.seed, ..Bootstrap::default() };
            let summaries: Vec<&SessionSummary> = chosen.iter().map(|k| &k.summary).collect();
            Some(ab::compare(&summaries, &spec(a, &args.a_label), &spec(b, &args.b_label), &bootstrap)?)
        }
        _ => None,
    };
    let compaction_stats = compaction::stats(chosen.iter().flat_map(|k| &k.compaction_reports));
    let mut trajectory_classes: BTreeMap<String, usize> = BTreeMap::new();
    for k in &chosen {
        *trajectory_classes.entry(k.trajectory.class.name().to_owned()).or_default() += 1;
    }
    let tool_influence = influence::by_tool(chosen.iter().flat_map(|k| &k.influence.results));
    let all_prompts: Vec<PromptRecord> = chosen.iter().flat_map(|k| k.prompts.iter().cloned()).collect();
    let prompt_patterns = prompts::patterns(&all_prompts);
    let mut trajectories = Vec::new();
    let sessions = chosen
        .into_iter()
        .map(|k| {
            trajectories.push((k.summary.id.clone(), k.calls));
            SessionOut {
                summary: k.summary,
                compaction_list: k.compactions,
                compaction_reports: k.compaction_reports,
                trajectory: k.trajectory,
                influence: InfluenceOut { tools: k.influence.tools, total: k.influence.total },
                prompt_list: k.prompts,
            }
        })
        .collect();
    let generated_by = format!("claude-sessions {}", crate::VERSION);
    let out = Output {
        schema: SCHEMA,
        generated_by,
        read,
        totals,
        sessions,
        ab,
        compaction_stats,
        trajectory_classes,
        influence: tool_influence,
        prompt_patterns,
    };
    if args.stdout {
        let mut s = serde_json::to_string_pretty(&out)?;
        s.push('\n');
        return super::print_stdout(&s);
    }
    write_all(&args.out, &out, &trajectories)?;
    eprintln!(
        "analyze: {} sessions, {} calls, {} compactions from {} files ({:.1} MB) → {}",
        out.totals.sessions,
        out.totals.calls,
        out.totals.compactions,
        out.read.files,
        out.read.bytes as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}

/// A session's trajectory file.
#[derive(Serialize)]
struct TrajectoryFile<'a> {
    schema: &'static str,
    session_id: &'a str,
    calls: &'a [Snapshot],
}

/// Write `analyze.json`, the sessions' files and the report, the three at once.
fn write_all(dir: &Path, out: &Output, trajectories: &[(String, Vec<Snapshot>)]) -> anyhow::Result<()> {
    let sessions = dir.join("sessions");
    std::fs::create_dir_all(&sessions).with_context(|| format!("cannot create {}", sessions.display()))?;
    std::thread::scope(|scope| {
        let json = scope.spawn(|| write(&dir.join("analyze.json"), &serde_json::to_vec_pretty(out)?));
        let files = scope.spawn(|| {
            for (id, calls) in trajectories {
                let name = format!("{}.json", id.replace(['/', '\\', '.'], "_"));
                let file = TrajectoryFile { schema: TRAJECTORY_SCHEMA, session_id: id, calls };
                write(&sessions.join(name), &serde_json::to_vec(&file)?)?;
            }
            anyhow::Ok(())
        });
        let report = html::Report {
            out,
            trajectories: trajectories.iter().map(|(id, calls)| (id.as_str(), calls.as_slice())).collect(),
        };
        let html = write(&dir.join("report.html"), html::render(&report).as_bytes());
        for r in [json.join(), files.join()] {
            r.map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        html
    })
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_unknown_keys() {
        let f: Filter = "project=app, branch=main,model=claude-opus,since=2026-01-02,session=4d56".parse().unwrap();
        assert_eq!(f.project.as_deref(), Some("app"));
        assert_eq!(f.since, Some(1_767_312_000_000));
        assert_eq!(f.sessions, ["4d56"]);
        assert!("colour=red".parse::<Filter>().is_err());
        assert!("since=yesterday".parse::<Filter>().is_err());
        assert!("project".parse::<Filter>().is_err());
        assert_eq!("".parse::<Filter>().unwrap(), Filter::default());
    }
}
