use super::*;
use crate::cli::analyze::{SessionOut, Totals};
use crate::engine::analyze::Read;
use crate::research::SessionSummary;
use crate::research::tracker::{Compaction, Part};

fn snap(index: usize, context: u64, growth: i64, source: &str, after_compaction: bool) -> Snapshot {
    Snapshot {
        index,
        ts_ms: Some(1_767_225_600_000 + index as i64 * 1000),
        model: "claude-sonnet-4-5".into(),
        context_tokens: context,
        input_tokens: 1,
        cache_read_tokens: context - 1,
        cache_creation_tokens: 0,
        cache_creation_1h_tokens: 0,
        output_tokens: 10,
        fast: false,
        input_total: 0,
        output_total: 0,
        window: 200_000,
        utilization: context as f64 / 200_000.0,
        pending_tool_calls: 0,
        active_subagents: 0,
        growth,
        composition: vec![Part { source: source.into(), bytes: 0, tokens: growth }],
        after_compaction,
    }
}

fn output(project: &str, compacted: bool) -> (Output, Vec<(String, Vec<Snapshot>)>) {
    let calls = vec![
        snap(0, 50_000, 50_000, "other", false),
        snap(1, 150_000, 100_000, "tool_result:Read", false),
        snap(2, 30_000, -120_000, "dropped", compacted),
    ];
    let summary = SessionSummary {
        id: "0123456789-abcdef".into(),
        project: project.into(),
        branch: Some("main".into()),
        first_ts: Some(1_767_225_600_000),
        last_ts: Some(1_767_225_660_000),
        models: vec!["claude-sonnet-4-5".into()],
        calls: 3,
        prompts: 1,
        tool_calls: 2,
        tool_errors: 1,
        compactions: usize::from(compacted),
        input_tokens: 3,
        output_tokens: 30,
        cache_read_tokens: 229_997,
        cache_creation_tokens: 0,
        cost_usd: Some(0.5),
        peak_context: 150_000,
        peak_utilization: 0.75,
        composition: [("other".to_owned(), 50_000), ("tool_result:Read".to_owned(), 100_000)].into(),
        tool_result_share: 2.0 / 3.0,
    };
    let compaction_list = if compacted {
        vec![Compaction {
            ts_ms: Some(1_767_225_602_500),
            trigger: "auto",
            tokens_before: Some(150_000),
            tokens_after: Some(30_000),
            next_call: Some(2),
            calls_before: 2,
            model: Some("claude-sonnet-4-5".into()),
            version: Some("2.1.3".into()),
            utilization: Some(0.75),
        }]
    } else {
        Vec::new()
    };
    let totals = Totals {
        sessions: 1,
        calls: 3,
        compactions: usize::from(compacted),
        composition: summary.composition.clone(),
        tool_result_share: summary.tool_result_share,
    };
    let out = Output {
        schema: super::super::SCHEMA,
        generated_by: "claude-sessions test".into(),
        read: Read::default(),
        totals,
        sessions: vec![SessionOut {
            summary,
            compaction_list,
            compaction_reports: Vec::new(),
            trajectory: crate::research::trajectory::classify(&Default::default()),
            influence: super::super::InfluenceOut {
                tools: Vec::new(),
                total: crate::research::influence::ToolInfluence::of("*", []),
            },
            prompt_list: Vec::new(),
        }],
        ab: None,
        compaction_stats: crate::research::compaction::stats([]),
        trajectory_classes: Default::default(),
        influence: Vec::new(),
        prompt_patterns: crate::research::prompts::patterns(&[]),
    };
    (out, vec![("0123456789-abcdef".into(), calls)])
}

fn page(out: &Output, t: &[(String, Vec<Snapshot>)]) -> String {
    render(&Report { out, trajectories: t.iter().map(|(id, c)| (id.as_str(), c.as_slice())).collect() })
}

#[test]
fn the_page_has_every_section_with_data_and_escapes_names() {
    let (out, t) = output("<script>alert(1)</script>", true);
    let html = page(&out, &t);
    for id in ["overview", "composition", "context", "compactions", "sessions"] {
        assert!(html.contains(&format!(r#"<section id="{id}">"#)), "section {id}");
    }
    assert!(!html.contains("<script"), "no script, and names are escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Content-Security-Policy") && html.contains("prefers-color-scheme:dark"));
    // Charts: a composition area and a totals bar chart, a context line with its compaction marker.
    assert!(html.matches("<svg").count() >= 3);
    assert!(html.contains(">compaction<") && html.contains("window 200k"));
    // The compaction row: before, after, after/before.
    assert!(html.contains("<td class=\"n\">150000</td><td class=\"n\">30000</td><td class=\"n\">20.0%</td>"));
    assert!(!html.contains(r#"<section id="ab">"#), "no groups, no A/B section");
}

#[test]
fn sections_without_data_are_left_out() {
    let (out, t) = output("app", false);
    let html = page(&out, &t);
    assert!(!html.contains(r#"<section id="compactions">"#));
    assert!(html.contains(r#"<section id="sessions">"#));
    let empty = Output { sessions: Vec::new(), totals: Totals::default(), ..out };
    let html = page(&empty, &[]);
    assert!(html.contains(r#"<section id="overview">"#));
    for id in ["composition", "context", "sessions"] {
        assert!(!html.contains(&format!(r#"<section id="{id}">"#)), "{id} without sessions");
    }
}
