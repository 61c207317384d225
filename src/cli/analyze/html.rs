//! `report.html`: `analyze.json` (and the sessions' trajectories) as one static page.
//!
//! In: the [`Output`] and each chosen session's snapshots. Out: a self-contained HTML
//! document: inline CSS, inline SVG from [`charts`], no JavaScript, no network (its
//! Content-Security-Policy allows nothing but inline styles), light and dark from
//! `prefers-color-scheme` (charts draw in `currentColor`), laid out for a laptop and a
//! phone (wide tables scroll in their own box). It holds ids, names and numbers only,
//! every one of them escaped.
//!
//! Each section comes from its own function in [`SECTIONS`], which gives `None` when its
//! data are absent (no compactions, no A/B groups): a new analysis adds a function there.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Output;
use super::ab::{Ab, OUTCOMES};
use crate::cli::sessions::{count, cut, short_id, short_model, utc_minute};
use crate::research::charts::{self, Bar, Ci, ComparisonRow, Layer, LineOptions, Marker, Series, Titles, escape};
use crate::research::composition::{self, SMALLER};
use crate::research::stats::{Estimate, Interval};
use crate::research::tracker::Snapshot;

/// What the page is made from.
pub struct Report<'a> {
    /// `analyze.json`.
    pub out: &'a Output,
    /// Each chosen session's snapshots, by session id.
    pub trajectories: BTreeMap<&'a str, &'a [Snapshot]>,
}

/// One section of the page: its anchor, its heading and its HTML.
pub struct Section {
    /// The element id (and link target).
    pub id: &'static str,
    /// The heading.
    pub title: &'static str,
    /// The body, already escaped.
    pub body: String,
}

/// The sections, in page order.
pub const SECTIONS: [fn(&Report<'_>) -> Option<Section>; 9] = [
    overview,
    composition_section,
    context_size,
    compactions,
    super::html_research::influence,
    super::html_research::trajectories,
    super::html_research::prompts,
    ab,
    sessions,
];

/// Sessions drawn per chart kind (the ones with the most calls, or the largest contexts).
const CHARTED: usize = 3;
/// Sources drawn by name in a composition chart; the rest are folded.
const SOURCES: usize = 7;
/// Rows of the sessions table (the sessions with the most calls).
const SESSION_ROWS: usize = 200;

const CSS: &str = r#":root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--card:#1c1f24}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 16px}
h1{font-size:22px;margin:20px 0 4px}
h2{font-size:18px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:16px 0 4px}
a{color:inherit}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0}
.muted,figcaption,footer{color:var(--muted)}
footer{margin-top:32px;padding-bottom:24px;font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;max-width:100%;min-width:0}
svg{max-width:100%;height:auto;display:block}
.table{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600}
.n{text-align:right}"#;

/// The page.
pub fn render(report: &Report<'_>) -> String {
    let sections: Vec<Section> = SECTIONS.iter().filter_map(|f| f(report)).collect();
    let out = report.out;
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><meta name="color-scheme" content="light dark"><title>Context research report</title><style>{CSS}</style></head><body><header><h1>Context research report</h1><p class="muted">{} main files, {:.1} MB read; schema <code>{}</code></p><nav>"#,
        out.read.files,
        out.read.bytes as f64 / 1e6,
        escape(out.schema),
    );
    for s in &sections {
        let _ = write!(page, r##"<a href="#{}">{}</a>"##, s.id, escape(s.title));
    }
    page.push_str("</nav></header><main>");
    for s in &sections {
        let _ = write!(page, r#"<section id="{}"><h2>{}</h2>{}</section>"#, s.id, escape(s.title), s.body);
    }
    let _ = writeln!(
        page,
        "</main><footer>Written by {}. Ids, names and numbers only: no transcript text. \
         The rules behind every figure: docs/research.md.</footer></body></html>",
        escape(&out.generated_by)
    );
    page
}

fn card(out: &mut String, value: &str, label: &str) {
    let _ = write!(out, r#"<div class="card"><b>{}</b>{}</div>"#, escape(value), escape(label));
}

pub(super) fn percent(f: f64) -> String {
    if f.is_finite() { format!("{:.1}%", f * 100.0) } else { "–".into() }
}

fn usd(f: Option<f64>) -> String {
    f.map_or_else(|| "–".into(), |c| format!("${c:.2}"))
}

pub(super) fn figure(svg: &str, caption: &str) -> String {
    format!("<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption))
}

/// A table whose cells are already escaped; a header starting with `#` is a number
/// column (right-aligned; the `#` is not shown).
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let class = |h: &str| if h.starts_with('#') { r#" class="n""# } else { "" };
    let mut t = String::from(r#"<div class="table"><table><thead><tr>"#);
    for h in headers {
        let _ = write!(t, "<th{}>{}</th>", class(h), escape(h.trim_start_matches('#')));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for (cell, h) in r.iter().zip(headers) {
            let _ = write!(t, "<td{}>{cell}</td>", class(h));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table></div>");
    t
}

/// A name cut to 28 characters, whole as a tooltip.
fn name_cell(name: &str) -> String {
    format!(r#"<span title="{}">{}</span>"#, escape(name), escape(&cut(name, 28)))
}

/// A session's short id, its full id as a tooltip.
pub(super) fn id_cell(id: &str) -> String {
    format!(r#"<span title="{}">{}</span>"#, escape(id), escape(short_id(id)))
}

fn overview(r: &Report<'_>) -> Option<Section> {
    let o = r.out;
    let s = &o.sessions;
    let tokens: u64 = s
        .iter()
        .map(|s| &s.summary)
        .map(|s| s.input_tokens + s.output_tokens + s.cache_read_tokens + s.cache_creation_tokens)
        .sum();
    let cost: f64 = s.iter().filter_map(|s| s.summary.cost_usd).sum();
    let unpriced = s.iter().filter(|s| s.summary.cost_usd.is_none()).count();
    let mut body = String::from(r#"<div class="cards">"#);
    card(&mut body, &o.totals.sessions.to_string(), "sessions");
    card(&mut body, &count(o.totals.calls as u64), "main-chain API calls");
    card(&mut body, &o.totals.compactions.to_string(), "compactions");
    card(&mut body, &count(tokens), "tokens (input, output, cache)");
    card(&mut body, &usd(Some(cost)), "estimated cost");
    card(&mut body, &percent(o.totals.tool_result_share), "of added context from tool results");
    body.push_str("</div>");
    if unpriced > 0 {
        let _ =
            write!(body, r#"<p class="muted">{unpriced} session(s) used a model with no price: not in the cost.</p>"#);
    }
    Some(Section { id: "overview", title: "Overview", body })
}

/// Up to [`CHARTED`] sessions with calls, the largest by `key` first.
fn top<'a, K: Ord>(r: &'a Report<'a>, key: impl Fn(&super::SessionOut) -> K) -> Vec<(&'a str, &'a [Snapshot])> {
    let mut s: Vec<&super::SessionOut> = r.out.sessions.iter().filter(|s| s.summary.calls > 0).collect();
    s.sort_by_key(|s| std::cmp::Reverse(key(s)));
    s.iter()
        .filter_map(|s| r.trajectories.get(s.summary.id.as_str()).map(|t| (s.summary.id.as_str(), *t)))
        .take(CHARTED)
        .collect()
}

fn composition_section(r: &Report<'_>) -> Option<Section> {
    let totals: BTreeMap<String, f64> = r.out.totals.composition.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    let folded = composition::fold_small(&totals, 12, 0.01);
    if folded.is_empty() {
        return None;
    }
    let mut body = String::from(
        r#"<p class="muted">What each call's context held, by source: each call's growth split as docs/research.md says; a compaction (or any shrinking) takes from every source in proportion.</p><div class="charts">"#,
    );
    for (id, calls) in top(r, |s| s.summary.calls) {
        let by = composition::by_source(calls);
        let peak: BTreeMap<String, f64> = by.iter().flatten().fold(BTreeMap::new(), |mut m, (k, v)| {
            let e = m.entry(k.clone()).or_insert(0.0f64);
            *e = e.max(*v);
            m
        });
        let kept: Vec<String> = composition::fold_small(&peak, SOURCES, 0.02)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != SMALLER)
            .collect();
        let mut layers: Vec<Layer> = kept
            .iter()
            .map(|k| Layer { name: k.clone(), values: by.iter().map(|m| m.get(k).copied().unwrap_or(0.0)).collect() })
            .collect();
        let rest: Vec<f64> =
            by.iter().map(|m| m.iter().filter(|(k, _)| !kept.contains(k)).map(|(_, v)| v).sum()).collect();
        if rest.iter().any(|v| *v > 0.0) {
            layers.push(Layer { name: SMALLER.into(), values: rest });
        }
        let xs: Vec<f64> = calls.iter().map(|c| c.index as f64).collect();
        let t = Titles::new(&format!("Context by source, session {}", short_id(id)), "API call", "tokens");
        body.push_str(&figure(&charts::stacked_area(&t, &xs, &layers), &format!("session {id}")));
    }
    let bars: Vec<Bar> = folded.iter().map(|(k, v)| Bar::new(k, *v)).collect();
    let t = Titles::new("Tokens added to contexts, by source (all sessions)", "tokens", "");
    body.push_str(&figure(&charts::bars(&t, &bars), "sources under 1% of the total, or past the 12th, are folded"));
    body.push_str("</div>");
    Some(Section { id: "composition", title: "Context composition over time", body })
}

fn context_size(r: &Report<'_>) -> Option<Section> {
    let chosen = top(r, |s| s.summary.peak_context);
    if chosen.is_empty() {
        return None;
    }
    let mut body = String::from(
        r#"<p class="muted">Prompt tokens of each main-chain call (input + cache read + cache write); dashed: compactions and the window assumed.</p><div class="charts">"#,
    );
    for (id, calls) in chosen {
        let series = Series {
            name: String::new(),
            points: calls.iter().map(|c| (c.index as f64, c.context_tokens as f64)).collect(),
        };
        let markers = calls
            .iter()
            .filter(|c| c.after_compaction)
            .map(|c| Marker { at: c.index as f64 - 0.5, label: "compaction".into() })
            .collect();
        let mut windows: Vec<u64> = calls.iter().map(|c| c.window).collect();
        windows.dedup();
        let thresholds = windows
            .iter()
            .map(|w| Marker { at: *w as f64, label: format!("window {}", charts::format_number(*w as f64)) })
            .collect();
        let options = LineOptions { markers, thresholds, y_from_zero: true };
        let t = Titles::new(&format!("Context per call, session {}", short_id(id)), "API call", "tokens");
        body.push_str(&figure(&charts::lines(&t, &[series], &options), &format!("session {id}")));
    }
    body.push_str("</div>");
    Some(Section { id: "context", title: "Context size per call", body })
}

fn compactions(r: &Report<'_>) -> Option<Section> {
    let rows: Vec<Vec<String>> = r
        .out
        .sessions
        .iter()
        .flat_map(|s| s.compaction_list.iter().map(move |c| (s, c)))
        .map(|(s, c)| {
            let ratio = match (c.tokens_before, c.tokens_after) {
                (Some(b), Some(a)) if b > 0 => percent(a as f64 / b as f64),
                _ => "–".into(),
            };
            let num = |v: Option<u64>| v.map_or_else(|| "–".into(), |v| v.to_string());
            vec![
                id_cell(&s.summary.id),
                c.ts_ms.map_or_else(|| "–".into(), utc_minute),
                escape(c.trigger),
                num(c.tokens_before),
                num(c.tokens_after),
                ratio,
                c.utilization.map_or_else(|| "–".into(), percent),
                escape(&c.model.as_deref().map(short_model).unwrap_or_default()),
                escape(c.version.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let headers = [
        "session",
        "time (UTC)",
        "trigger",
        "#tokens before",
        "#tokens after",
        "#after / before",
        "#utilization",
        "model",
        "version",
    ];
    Some(Section { id: "compactions", title: "Compactions", body: table(&headers, &rows) })
}

fn interval(e: Option<Estimate>) -> String {
    e.map_or_else(
        || "–".into(),
        |e| {
            format!(
                "{} [{}, {}]",
                charts::format_number(e.value),
                charts::format_number(e.lo),
                charts::format_number(e.hi)
            )
        },
    )
}

fn ab(r: &Report<'_>) -> Option<Section> {
    let ab: &Ab = r.out.ab.as_ref()?;
    let ci = |v: Option<f64>, i: Option<Interval>| {
        v.map(|value| i.map_or(Ci { value, lo: f64::NAN, hi: f64::NAN }, |i| Ci { value, lo: i.lo, hi: i.hi }))
    };
    let rows: Vec<ComparisonRow> = ab
        .metrics
        .iter()
        .map(|m| {
            let c = &m.comparison;
            ComparisonRow { metric: c.metric.clone(), a: ci(c.a.mean, c.a.mean_ci), b: ci(c.b.mean, c.b.mean_ci) }
        })
        .collect();
    let b = &ab.bootstrap;
    let mut body = format!(
        r#"<p>A: <b>{}</b> (<code>{}</code>, {} sessions) against B: <b>{}</b> (<code>{}</code>, {} sessions). Differences read B − A; intervals are {:.0}% percentile bootstrap intervals ({} resamples, seed {}).</p>"#,
        escape(&ab.a.label),
        escape(&ab.a.filter),
        ab.a.sessions,
        escape(&ab.b.label),
        escape(&ab.b.filter),
        ab.b.sessions,
        b.confidence * 100.0,
        b.resamples,
        b.seed
    );
    let t = Titles::new("Mean per session, with its interval", "", "");
    body.push_str(&figure(&charts::comparison(&t, [&ab.a.label, &ab.b.label], &rows), "one scale per outcome"));
    let rows: Vec<Vec<String>> = ab
        .metrics
        .iter()
        .map(|m| {
            let c = &m.comparison;
            let num = |v: Option<f64>| v.map_or_else(|| "–".into(), charts::format_number);
            vec![
                escape(&c.metric),
                escape(m.unit),
                format!("{} / {}", c.a.n, c.b.n),
                num(c.a.mean),
                num(c.b.mean),
                interval(c.diff_means),
                interval(c.diff_medians),
                interval(c.cliffs_delta),
                num(c.hedges_g),
            ]
        })
        .collect();
    let headers = [
        "outcome",
        "unit",
        "#n A / B",
        "#mean A",
        "#mean B",
        "#B − A means",
        "#B − A medians",
        "#Cliff's δ",
        "#Hedges' g",
    ];
    body.push_str(&table(&headers, &rows));
    debug_assert_eq!(ab.metrics.len(), OUTCOMES.len());
    Some(Section { id: "ab", title: "A/B comparison", body })
}

fn sessions(r: &Report<'_>) -> Option<Section> {
    let mut s: Vec<&super::SessionOut> = r.out.sessions.iter().collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by_key(|s| std::cmp::Reverse(s.summary.calls));
    let rows: Vec<Vec<String>> = s
        .iter()
        .take(SESSION_ROWS)
        .map(|s| {
            let s = &s.summary;
            let models: Vec<String> = s.models.iter().map(|m| short_model(m)).collect();
            vec![
                id_cell(&s.id),
                s.first_ts.map_or_else(|| "–".into(), utc_minute),
                name_cell(&s.project),
                name_cell(s.branch.as_deref().unwrap_or("")),
                escape(&models.join(", ")),
                s.calls.to_string(),
                s.prompts.to_string(),
                format!("{} / {}", s.tool_calls, s.tool_errors),
                s.compactions.to_string(),
                usd(s.cost_usd),
                percent(s.peak_utilization),
            ]
        })
        .collect();
    let headers = [
        "session",
        "started (UTC)",
        "project",
        "branch",
        "model",
        "#calls",
        "#prompts",
        "#tool calls / errors",
        "#compactions",
        "#cost",
        "#peak utilization",
    ];
    let mut body = table(&headers, &rows);
    if s.len() > SESSION_ROWS {
        let _ = write!(
            body,
            r#"<p class="muted">The {SESSION_ROWS} sessions with the most calls of {}; all are in analyze.json.</p>"#,
            s.len()
        );
    }
    Some(Section { id: "sessions", title: "Sessions", body })
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
