//! `analyze --a FILTER --b FILTER`: two groups of the chosen sessions compared on
//! per-session outcomes, with effect sizes and percentile bootstrap intervals
//! ([`stats::compare`]).
//!
//! In: the chosen sessions' summaries, the two groups' filters and labels, a
//! [`Bootstrap`] setting. Out: the `ab` section of `analyze.json` ([`Ab`]). The groups
//! must not share a session (the bootstrap resamples them as independent samples): a
//! session in both is an error, as is a group that matches none.

use serde::Serialize;

use super::Filter;
use crate::research::SessionSummary;
use crate::research::stats::{self, Bootstrap, Comparison};

/// One outcome: its name (as in `analyze.json`), its unit, and a session's value (`NaN`
/// when the session has none: such sessions are left out of that outcome only).
pub struct Outcome {
    /// The name.
    pub name: &'static str,
    /// The unit, for the report.
    pub unit: &'static str,
    /// The value of a session.
    pub value: fn(&SessionSummary) -> f64,
}

/// The outcomes compared, in order.
pub const OUTCOMES: [Outcome; 8] = [
    Outcome { name: "cost_usd", unit: "USD", value: |s| s.cost_usd.unwrap_or(f64::NAN) },
    Outcome { name: "calls", unit: "main-chain API calls", value: |s| s.calls as f64 },
    Outcome { name: "prompts", unit: "prompts typed", value: |s| s.prompts as f64 },
    Outcome {
        name: "tool_errors_per_call",
        unit: "tool errors per call",
        value: |s| if s.calls > 0 { s.tool_errors as f64 / s.calls as f64 } else { f64::NAN },
    },
    Outcome { name: "compactions", unit: "compactions", value: |s| s.compactions as f64 },
    Outcome { name: "peak_utilization", unit: "share of the window", value: |s| s.peak_utilization },
    Outcome { name: "tool_result_share", unit: "share of added tokens", value: |s| s.tool_result_share },
    Outcome {
        name: "duration_minutes",
        unit: "minutes, first line to last",
        value: |s| match (s.first_ts, s.last_ts) {
            (Some(a), Some(b)) => (b - a).max(0) as f64 / 60_000.0,
            _ => f64::NAN,
        },
    },
];

/// One group as asked for.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Its name in the report.
    pub label: String,
    /// The filter as written.
    pub filter: String,
}

/// One group in `analyze.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Its name in the report (`--a-label`, or the filter).
    pub label: String,
    /// The filter as written (`--a` / `--b`).
    pub filter: String,
    /// Sessions in it.
    pub sessions: usize,
    /// Their ids, in path order.
    pub ids: Vec<String>,
}

/// One outcome compared.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// The outcome's unit.
    pub unit: &'static str,
    /// The comparison (its `metric` is the outcome's name).
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// The `ab` section of `analyze.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Ab {
    /// Group a.
    pub a: Group,
    /// Group b.
    pub b: Group,
    /// How the intervals were computed.
    pub bootstrap: Bootstrap,
    /// Each outcome of [`OUTCOMES`], compared: differences read b − a.
    pub metrics: Vec<Metric>,
}

/// Compares the sessions matching `a` with those matching `b`. Errors: a filter that does
/// not parse, a group with no session, a session in both groups.
pub fn compare(
    sessions: &[&SessionSummary],
    a: &GroupSpec,
    b: &GroupSpec,
    bootstrap: &Bootstrap,
) -> anyhow::Result<Ab> {
    let pick = |g: &GroupSpec, name: &str| -> anyhow::Result<Vec<&SessionSummary>> {
        let f: Filter = g.filter.parse().map_err(|e| anyhow::anyhow!("--{name}: {e}"))?;
        let kept: Vec<&SessionSummary> = sessions.iter().copied().filter(|s| f.keeps(s)).collect();
        anyhow::ensure!(!kept.is_empty(), "--{name} {:?} matches none of the chosen sessions", g.filter);
        Ok(kept)
    };
    let (in_a, in_b) = (pick(a, "a")?, pick(b, "b")?);
    let both: Vec<&str> = in_a.iter().filter(|s| in_b.iter().any(|t| t.id == s.id)).map(|s| s.id.as_str()).collect();
    anyhow::ensure!(
        both.is_empty(),
        "{} session(s) match both --a and --b (first: {}); the groups must not overlap: narrow one filter",
        both.len(),
        both[0]
    );
    let values = |g: &[&SessionSummary], o: &Outcome| g.iter().map(|s| (o.value)(s)).collect::<Vec<f64>>();
    let metrics = OUTCOMES
        .iter()
        .map(|o| Metric {
            unit: o.unit,
            comparison: stats::compare(o.name, &values(&in_a, o), &values(&in_b, o), bootstrap),
        })
        .collect();
    let group = |g: &GroupSpec, kept: &[&SessionSummary]| Group {
        label: g.label.clone(),
        filter: g.filter.clone(),
        sessions: kept.len(),
        ids: kept.iter().map(|s| s.id.clone()).collect(),
    };
    Ok(Ab { a: group(a, &in_a), b: group(b, &in_b), bootstrap: *bootstrap, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, project: &str, calls: usize) -> SessionSummary {
        SessionSummary {
            id: id.into(),
            project: project.into(),
            branch: None,
            first_ts: Some(0),
            last_ts: Some(60_000 * calls as i64),
            models: vec!["claude-sonnet-4-5".into()],
            calls,
            prompts: 1,
            tool_calls: 0,
            tool_errors: calls / 2,
            compactions: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
            cost_usd: None,
            peak_context: 0,
            peak_utilization: 0.0,
            composition: Default::default(),
            tool_result_share: 0.0,
        }
    }

    fn spec(filter: &str) -> GroupSpec {
        GroupSpec { label: filter.into(), filter: filter.into() }
    }

    #[test]
    fn groups_are_compared_on_every_outcome_b_against_a() {
        let s: Vec<SessionSummary> = (0..6)
            .map(|i| session(&format!("a{i}"), "x", 4 + i))
            .chain((0..6).map(|i| session(&format!("b{i}"), "y", 10 + i)))
            .collect();
        let refs: Vec<&SessionSummary> = s.iter().collect();
        let ab = compare(&refs, &spec("project=x"), &spec("project=y"), &Bootstrap::default()).unwrap();
        assert_eq!((ab.a.sessions, ab.b.sessions), (6, 6));
        let names: Vec<&str> = ab.metrics.iter().map(|m| m.comparison.metric.as_str()).collect();
        assert_eq!(names, OUTCOMES.map(|o| o.name));
        let calls = &ab.metrics[1].comparison;
        assert_eq!(calls.diff_means.unwrap().value, 6.0);
        // No session has a price: the cost has no values, not zeros.
        assert_eq!(ab.metrics[0].comparison.a.n, 0);
        assert!((ab.metrics[7].comparison.diff_means.unwrap().value - 6.0).abs() < 1e-9, "minutes");
    }

    #[test]
    fn overlapping_or_empty_groups_are_refused() {
        let s = [session("a1", "x", 3), session("b1", "y", 4)];
        let refs: Vec<&SessionSummary> = s.iter().collect();
        let e = compare(&refs, &spec("project=x"), &spec(""), &Bootstrap::default()).unwrap_err();
        assert!(e.to_string().contains("match both"), "{e}");
        let e = compare(&refs, &spec("project=x"), &spec("project=z"), &Bootstrap::default()).unwrap_err();
        assert!(e.to_string().contains("matches none"), "{e}");
        assert!(compare(&refs, &spec("colour=red"), &spec("project=y"), &Bootstrap::default()).is_err());
    }
}
