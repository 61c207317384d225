//! The report's sections for the analyses of a record: tool influence, trajectory
//! classes, prompt patterns (see [`super::html`] for the page and its rules).

use super::html::{Report, Section, figure, id_cell, percent, table};
use crate::research::charts::{self, Bar, LogScale, Series, Titles, escape};

/// Tools drawn in the influence chart (those with the most results).
const TOOLS: usize = 12;
/// Sessions listed with their class and reasons (those with the most calls).
const CLASSED: usize = 50;

/// Per tool: how often the next action used a result, and the bytes of results nobody used.
pub(super) fn influence(r: &Report<'_>) -> Option<Section> {
    let mut tools: Vec<_> = r.out.influence.iter().filter(|t| t.results > 0).collect();
    if tools.is_empty() {
        return None;
    }
    tools.sort_by(|a, b| b.results.cmp(&a.results).then(a.tool.cmp(&b.tool)));
    let bars: Vec<Bar> =
        tools.iter().take(TOOLS).filter_map(|t| t.share_used.map(|s| Bar::new(&t.tool, s * 100.0))).collect();
    let svg = charts::bars(&Titles::new("Results used by the next action", "% of answered results", ""), &bars);
    let rows: Vec<Vec<String>> = tools
        .iter()
        .map(|t| {
            vec![
                escape(&t.tool),
                t.results.to_string(),
                t.used.to_string(),
                t.unused.to_string(),
                t.share_used.map_or_else(|| "–".into(), percent),
                t.mean_score.map_or_else(|| "–".into(), |m| format!("{m:.2}")),
                charts::format_number(t.unused_bytes as f64),
            ]
        })
        .collect();
    let headers = ["tool", "#results", "#used", "#unused", "#share used", "#mean score", "#bytes unused"];
    let body = format!(
        "<p>Whether the action after a tool result reused its paths, identifiers, numbers or error lines \
         (not those of the call's own input); results nobody used are context spent for nothing.</p>{}{}",
        figure(&svg, "Share of results used, by tool"),
        table(&headers, &rows)
    );
    Some(Section { id: "influence", title: "Tool influence", body })
}

/// Sessions per class, and the classed sessions with the rule that fired.
pub(super) fn trajectories(r: &Report<'_>) -> Option<Section> {
    if r.out.trajectory_classes.is_empty() {
        return None;
    }
    let bars: Vec<Bar> = r.out.trajectory_classes.iter().map(|(c, n)| Bar::new(c, *n as f64)).collect();
    let svg = charts::bars(&Titles::new("Sessions by trajectory", "sessions", ""), &bars);
    let mut sessions: Vec<_> = r.out.sessions.iter().collect();
    sessions.sort_by(|a, b| b.summary.calls.cmp(&a.summary.calls).then(a.summary.id.cmp(&b.summary.id)));
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .take(CLASSED)
        .map(|s| {
            let t = &s.trajectory;
            vec![
                id_cell(&s.summary.id),
                escape(t.class.name()),
                t.edits.to_string(),
                t.test_runs.to_string(),
                t.recoveries.to_string(),
                t.pivots.len().to_string(),
                escape(t.reasons.first().map_or("", String::as_str)),
            ]
        })
        .collect();
    let headers = ["session", "class", "#edits", "#test runs", "#recoveries", "#pivots", "why"];
    let body = format!("{}{}", figure(&svg, "Trajectory classes (rules in docs/research.md)"), table(&headers, &rows));
    Some(Section { id: "trajectories", title: "Trajectories", body })
}

/// Prompt features against their turns' outcomes, and length against duration.
pub(super) fn prompts(r: &Report<'_>) -> Option<Section> {
    let p = &r.out.prompt_patterns;
    if p.prompts == 0 {
        return None;
    }
    let points: Vec<(f64, f64)> = r
        .out
        .sessions
        .iter()
        .flat_map(|s| &s.prompt_list)
        .filter_map(|p| p.outcome.duration_ms.map(|d| (p.features.chars as f64, d as f64 / 1000.0)))
        .collect();
    let svg = charts::scatter(
        &Titles::new("Prompt length against turn duration", "characters", "seconds"),
        &[Series { name: "prompts".into(), points }],
        LogScale { x: true, y: true },
    );
    let mean = |g: &crate::research::prompts::Group| g.mean.map_or_else(|| "–".into(), charts::format_number);
    let rows: Vec<Vec<String>> = p
        .comparisons
        .iter()
        .filter(|c| c.with.n > 0)
        .map(|c| {
            vec![
                escape(c.feature),
                escape(c.outcome),
                c.with.n.to_string(),
                mean(&c.with),
                c.without.n.to_string(),
                mean(&c.without),
            ]
        })
        .collect();
    let headers = ["feature", "outcome", "#with", "#mean with", "#without", "#mean without"];
    let mut body = format!(
        "<p>{} prompts. Features and outcomes are defined in docs/research.md (Prompt patterns).</p>{}{}",
        p.prompts,
        figure(&svg, "Each point is a prompt (log scales)"),
        table(&headers, &rows)
    );
    body.push_str(&prompt_texts(r));
    Some(Section { id: "prompts", title: "Prompt patterns", body })
}

/// With `--include-content`: the prompts of the longest turns, with their text (cut to
/// [`SHOWN_TEXT`] characters here; `analyze.json` has up to 2,000 bytes).
fn prompt_texts(r: &Report<'_>) -> String {
    let mut with_text: Vec<&crate::research::prompts::PromptRecord> =
        r.out.sessions.iter().flat_map(|s| &s.prompt_list).filter(|p| p.text.is_some()).collect();
    if with_text.is_empty() {
        return String::new();
    }
    with_text.sort_by_key(|p| std::cmp::Reverse(p.outcome.duration_ms.unwrap_or(0)));
    let rows: Vec<Vec<String>> = with_text
        .iter()
        .take(LONGEST_TURNS)
        .map(|p| {
            let text: String = p.text.as_deref().unwrap_or("").chars().take(SHOWN_TEXT).collect();
            vec![
                escape(&p.session_id.chars().take(8).collect::<String>()),
                p.outcome.duration_ms.map_or_else(|| "–".into(), |d| charts::format_number(d as f64 / 1000.0)),
                p.outcome.tool_errors.to_string(),
                match p.outcome.corrected {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "–".into(),
                },
                escape(&text),
            ]
        })
        .collect();
    format!(
        "<h3>The longest turns' prompts</h3><p class=\"muted\">Included because the report was made with --include-content.</p>{}",
        table(&["session", "#seconds", "#tool errors", "corrected", "prompt"], &rows)
    )
}

/// Prompts listed by [`prompt_texts`].
const LONGEST_TURNS: usize = 20;
/// Characters of a prompt shown in the report.
const SHOWN_TEXT: usize = 300;
