//! `scan --by`: usage grouped by day, week, month, session, project or model, the way
//! ccusage users read it, with a totals row.
//!
//! In: every [`UsageFact`] the aggregator counts (its ledger), each with its line's
//! time. Out: a [`Breakdown`], printed as a table, JSON or CSV. The facts are the same
//! deltas that make up the token and cost counters, so the totals equal plain `scan`'s
//! (for the part of history inside `--since`/`--until`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::Usage;
use crate::state::live::UsageFact;
use crate::transcript::entry::Millis;

/// What the rows of a [`Breakdown`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// Calendar days in the time zone (`2025-06-14`).
    Day,
    /// Weeks starting on Monday, named by their Monday (`2025-06-09`).
    Week,
    /// Calendar months (`2025-06`).
    Month,
    /// Sessions (`sessionId`; a session's sub-agents count in it).
    Session,
    /// The `project` label.
    Project,
    /// The model.
    Model,
}

impl By {
    /// The name of the key column (`day`, `week`, …).
    pub fn name(self) -> &'static str {
        match self {
            By::Day => "day",
            By::Week => "week",
            By::Month => "month",
            By::Session => "session",
            By::Project => "project",
            By::Model => "model",
        }
    }

    fn timed(self) -> bool {
        matches!(self, By::Day | By::Week | By::Month)
    }
}

/// One end of the time window (`--since`, `--until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A calendar day in the report's time zone (`2025-06-14` or `20250614`), whole.
    Day(Date),
    /// A moment (`7d`: seven days before now).
    At(Timestamp),
}

/// Parse `--since`/`--until`: a date (`2025-06-14`, `20250614`) or a duration before
/// now (`7d`, `12h`, `400d`).
pub fn parse_bound(s: &str) -> Result<Bound, String> {
    let t = s.trim();
    let iso = if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &t[..4], &t[4..6], &t[6..])
    } else {
        t.to_owned()
    };
    if let Ok(d) = iso.parse::<Date>() {
        return Ok(Bound::Day(d));
    }
    let d = crate::state::duration::parse(t)
        .map_err(|_| format!("`{s}` is neither a date (2025-06-14, 20250614) nor a duration (7d, 12h)"))?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("`{s}` is too long ago"))?;
    Ok(Bound::At(Timestamp::now().checked_sub(jiff::SignedDuration::from_millis(ms)).unwrap_or(Timestamp::MIN)))
}

/// Parse `--timezone`: an IANA name (`Europe/Paris`, `UTC`) or `local` (the system's).
pub fn parse_timezone(s: &str) -> Result<TimeZone, String> {
    if s.eq_ignore_ascii_case("local") {
        return Ok(TimeZone::system());
    }
    TimeZone::get(s).map_err(|e| format!("unknown time zone `{s}` ({e}); try UTC, Europe/Paris or local"))
}

/// How facts are grouped and which are kept.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// What the rows are.
    pub by: By,
    /// Days, weeks and months are those of this zone; it also bounds `Day` windows.
    pub tz: TimeZone,
    /// Facts at or after this (a day: from its start).
    pub since: Option<Bound>,
    /// Facts at or before this (a day: to its end).
    pub until: Option<Bound>,
}

impl Grouping {
    fn start(&self, b: Bound) -> Millis {
        match b {
            Bound::At(t) => t.as_millisecond(),
            Bound::Day(d) => self
                .tz
                .to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .map_or(i64::MIN, |t| t.as_millisecond()),
        }
    }

    /// The window in transcript milliseconds, `[from, to)`.
    fn window(&self) -> (Option<Millis>, Option<Millis>) {
        let to = self.until.map(|b| match b {
            Bound::At(t) => t.as_millisecond().saturating_add(1),
            Bound::Day(d) => d.tomorrow().map_or(i64::MAX, |next| self.start(Bound::Day(next))),
        });
        (self.since.map(|b| self.start(b)), to)
    }

    /// A fact's row key, or `None` when the window leaves it out.
    fn key(&self, window: (Option<Millis>, Option<Millis>), f: &UsageFact<'_>) -> Option<String> {
        let inside = |ts: Millis| window.0.is_none_or(|a| ts >= a) && window.1.is_none_or(|b| ts < b);
        match f.ts_ms {
            Some(ts) if !inside(ts) => return None,
            None if window.0.is_some() || window.1.is_some() => return None,
            _ => {}
        }
        let date = || {
            let ts = Timestamp::from_millisecond(f.ts_ms?).ok()?;
            Some(self.tz.to_datetime(ts).date())
        };
        Some(match self.by {
            By::Day => date().map_or_else(|| NO_TIME.to_owned(), |d| d.to_string()),
            By::Week => date().map_or_else(
                || NO_TIME.to_owned(),
                |d| {
                    let back = jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset()));
                    d.checked_sub(back).unwrap_or(d).to_string()
                },
            ),
            By::Month => date().map_or_else(|| NO_TIME.to_owned(), |d| format!("{:04}-{:02}", d.year(), d.month())),
            By::Session => f.session.to_owned(),
            By::Project => f.project.to_owned(),
            By::Model => f.model.to_owned(),
        })
    }
}

/// The key of usage whose lines carry no time.
pub const NO_TIME: &str = "(no time)";

/// One row: the usage of one day, session, project or model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The day, week, month, session id, project label or model.
    pub key: String,
    /// Its usage.
    pub usage: Usage,
    /// Models used (not shown when grouping by model).
    pub models: BTreeSet<String>,
    /// Projects (shown when grouping by session).
    pub projects: BTreeSet<String>,
    /// The last usage's time (shown when grouping by session).
    pub last_ms: Option<Millis>,
}

/// Collects facts into rows ([`Grouping`] decides each fact's row).
#[derive(Debug)]
pub struct Collector {
    grouping: Grouping,
    window: (Option<Millis>, Option<Millis>),
    rows: BTreeMap<String, Row>,
}

impl Collector {
    /// An empty breakdown for `grouping`.
    pub fn new(grouping: Grouping) -> Collector {
        Collector { window: grouping.window(), grouping, rows: BTreeMap::new() }
    }

    /// Count one fact.
    pub fn add(&mut self, f: &UsageFact<'_>) {
        let Some(key) = self.grouping.key(self.window, f) else { return };
        let row = self.rows.entry(key).or_insert_with_key(|k| Row { key: k.clone(), ..Row::default() });
        let u = &mut row.usage;
        u.requests += u64::from(f.first);
        u.input += f.tokens.input;
        u.output += f.tokens.output;
        u.cache_creation += f.tokens.cache_creation;
        u.cache_read += f.tokens.cache_read;
        u.cost_usd += f.cost_usd;
        if !row.models.contains(f.model) {
            row.models.insert(f.model.to_owned());
        }
        if self.grouping.by == By::Session && !row.projects.contains(f.project) {
            row.projects.insert(f.project.to_owned());
        }
        row.last_ms = row.last_ms.max(f.ts_ms);
    }

    /// The rows, in key order (days, weeks and months in time order; the no-time row last).
    pub fn finish(self) -> Breakdown {
        let mut rows: Vec<Row> = self.rows.into_values().collect();
        if self.grouping.by.timed() {
            rows.sort_by_key(|r| r.key == NO_TIME);
        }
        let mut totals = Usage::default();
        for r in &rows {
            totals.add(&r.usage);
        }
        Breakdown { grouping: self.grouping, rows, totals }
    }
}

/// Usage grouped into rows, with their totals.
#[derive(Debug)]
pub struct Breakdown {
    /// How it was grouped.
    pub grouping: Grouping,
    /// The rows.
    pub rows: Vec<Row>,
    /// The sum of the rows.
    pub totals: Usage,
}

impl Breakdown {
    fn tz_name(&self) -> String {
        self.grouping.tz.iana_name().unwrap_or("local").to_owned()
    }

    fn bound(&self, b: Option<Bound>) -> serde_json::Value {
        match b {
            None => serde_json::Value::Null,
            Some(Bound::Day(d)) => d.to_string().into(),
            Some(Bound::At(t)) => t.to_string().into(),
        }
    }

    /// `scan --by … --format json`: `{by, timezone, since, until, rows: [...], totals}`;
    /// money rounded to 6 decimals.
    pub fn json(&self) -> serde_json::Value {
        let by = self.grouping.by;
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert(by.name().into(), r.key.clone().into());
                if by == By::Session {
                    o.insert("projects".into(), r.projects.iter().cloned().collect::<Vec<_>>().into());
                    o.insert("last_activity".into(), self.time(r.last_ms).into());
                }
                if by != By::Model {
                    o.insert("models".into(), r.models.iter().cloned().collect::<Vec<_>>().into());
                }
                o.extend(usage_json(&r.usage));
                o.into()
            })
            .collect();
        serde_json::json!({
            "by": by.name(),
            "timezone": self.tz_name(),
            "since": self.bound(self.grouping.since),
            "until": self.bound(self.grouping.until),
            "rows": rows,
            "totals": serde_json::Value::Object(usage_json(&self.totals)),
        })
    }

    fn time(&self, ms: Option<Millis>) -> String {
        ms.and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map(|t| self.grouping.tz.to_datetime(t).strftime("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    }

    /// `scan --by … --format csv`: a header, one line per row, then a `total` line.
    pub fn csv(&self) -> String {
        let by = self.grouping.by;
        let mut o = String::new();
        let mut head = vec![by.name()];
        if by == By::Session {
            head.extend(["projects", "last_activity"]);
        }
        if by != By::Model {
            head.push("models");
        }
        head.extend(USAGE_COLUMNS);
        let _ = writeln!(o, "{}", head.join(","));
        let line = |o: &mut String, key: &str, r: Option<&Row>, u: &Usage| {
            let mut cells = vec![csv_cell(key)];
            if by == By::Session {
                cells.push(csv_cell(&r.map(|r| join(&r.projects, " ")).unwrap_or_default()));
                cells.push(r.map(|r| self.time(r.last_ms)).unwrap_or_default());
            }
            if by != By::Model {
                cells.push(csv_cell(&r.map(|r| join(&r.models, " ")).unwrap_or_default()));
            }
            cells.extend(usage_cells(u));
            let _ = writeln!(o, "{}", cells.join(","));
        };
        for r in &self.rows {
            line(&mut o, &r.key, Some(r), &r.usage);
        }
        line(&mut o, "total", None, &self.totals);
        o
    }

    /// `scan --by …` (table): aligned columns, thousands separators, a totals row.
    pub fn table(&self) -> String {
        let by = self.grouping.by;
        let mut head: Vec<String> = vec![by.name().into()];
        if by == By::Session {
            head.extend(["project".into(), "last activity".into()]);
        }
        if by != By::Model {
            head.push("models".into());
        }
        let first_num = head.len();
        head.extend(
            ["requests", "input", "output", "cache write", "cache read", "total tokens", "cost $"].map(String::from),
        );
        let mut rows: Vec<Vec<String>> = Vec::new();
        let cells = |key: &str, r: Option<&Row>, u: &Usage| {
            let mut c = vec![key.to_owned()];
            if by == By::Session {
                c.push(r.map(|r| join(&r.projects, ", ")).unwrap_or_default());
                c.push(r.map(|r| self.time(r.last_ms)).unwrap_or_default());
            }
            if by != By::Model {
                c.push(r.map(|r| join(&r.models.iter().map(|m| short_model(m)).collect(), ", ")).unwrap_or_default());
            }
            c.extend(u.cells());
            c
        };
        for r in &self.rows {
            rows.push(cells(&r.key, Some(r), &r.usage));
        }
        let total = cells("total", None, &self.totals);
        let mut o = super::render_table(&head, &rows, Some(&total), first_num);
        let (from, to) = (self.grouping.since, self.grouping.until);
        if by.timed() || from.is_some() || to.is_some() {
            let _ = writeln!(o, "\ntime zone: {}", self.tz_name());
        }
        if self.rows.is_empty() {
            let _ = writeln!(o, "no usage{}", if from.is_some() || to.is_some() { " in this window" } else { "" });
        }
        o
    }
}

const USAGE_COLUMNS: [&str; 7] =
    ["requests", "input", "output", "cache_creation", "cache_read", "total_tokens", "cost_usd"];

fn usage_json(u: &Usage) -> serde_json::Map<String, serde_json::Value> {
    let mut o = serde_json::Map::new();
    for (k, v) in
        USAGE_COLUMNS.iter().zip([u.requests, u.input, u.output, u.cache_creation, u.cache_read, u.total_tokens()])
    {
        o.insert((*k).into(), v.into());
    }
    o.insert("cost_usd".into(), super::round6(u.cost_usd).into());
    o
}

fn usage_cells(u: &Usage) -> Vec<String> {
    let mut c: Vec<String> =
        [u.requests, u.input, u.output, u.cache_creation, u.cache_read, u.total_tokens()].map(|n| n.to_string()).into();
    c.push(format!("{:.6}", u.cost_usd));
    c
}

fn join(set: &BTreeSet<String>, sep: &str) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(sep)
}

/// `claude-opus-4-20250514` → `opus-4`: the table's models column stays narrow.
fn short_model(m: &str) -> String {
    let m = m.strip_prefix("claude-").unwrap_or(m);
    match m.rsplit_once('-') {
        Some((head, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => head.to_owned(),
        _ => m.to_owned(),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests;
