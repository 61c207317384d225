//! The chart kinds: each takes titles and data and returns one `<svg>` (or
//! [`no_data`](super::no_data) when nothing is drawable).

use std::fmt::Write;

use super::{
    AXIS, BOTTOM, Bar, Ci, ComparisonRow, LEFT, LEGEND, Layer, LineOptions, LogScale, RIGHT, Scale, Series, Svg, TOP,
    Titles, axis, color, format_number, label, nice_ticks, no_data, range, thin,
};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;

/// An x–y plot's frame: the SVG with axes and legend written, and the two scales.
struct Frame {
    svg: Svg,
    sx: Scale,
    sy: Scale,
}

fn frame(titles: &Titles, names: &[&str], x: (f64, f64, bool), y: (f64, f64, bool)) -> Frame {
    let legend = names.iter().any(|n| !n.is_empty());
    let w = WIDTH + if legend { LEGEND } else { 0.0 };
    let h = if legend { (TOP + names.len() as f64 * 16.0 + BOTTOM).max(HEIGHT) } else { HEIGHT };
    let (x0, x1, y0, y1) = (LEFT, w - RIGHT - if legend { LEGEND } else { 0.0 }, TOP, h - BOTTOM);
    let (xt, xd0, xd1) = axis(x.0, x.1, x.2, 6);
    let (yt, yd0, yd1) = axis(y.0, y.1, y.2, 5);
    let sx = Scale { d0: xd0, d1: xd1, r0: x0, r1: x1, log: x.2 };
    let sy = Scale { d0: yd0, d1: yd1, r0: y1, r1: y0, log: y.2 };
    let mut svg = Svg::new(titles, w, h);
    svg.y_axis(&sy, &yt, (x0, x1), &titles.y);
    svg.x_axis(&sx, &xt, (y0, y1), &titles.x);
    if legend {
        svg.legend(x1 + 16.0, TOP, names.iter().copied());
    }
    Frame { svg, sx, sy }
}

/// Stacked areas over `xs`: layer i's band lies on top of layers 0..i (for example the
/// context's composition per API call: x = call index, one layer per source, y = tokens).
/// Points are drawn in increasing x; non-finite xs are skipped; a layer's missing,
/// negative or non-finite value counts as 0. A single x is drawn one unit wide.
pub fn stacked_area(titles: &Titles, xs: &[f64], layers: &[Layer]) -> String {
    let mut idx: Vec<usize> = (0..xs.len()).filter(|&i| xs[i].is_finite()).collect();
    idx.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let idx = thin(&idx);
    if idx.is_empty() || layers.is_empty() {
        return no_data(titles);
    }
    let value = |l: &Layer, i: usize| l.values.get(i).copied().filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0);
    // (x, index) pairs to draw; one x is widened to a unit-wide step.
    let pts: Vec<(f64, usize)> = match idx[..] {
        [i] => vec![(xs[i] - 0.5, i), (xs[i] + 0.5, i)],
        _ => idx.iter().map(|&i| (xs[i], i)).collect(),
    };
    let mut tops = vec![vec![0.0; pts.len()]; layers.len() + 1];
    for (k, l) in layers.iter().enumerate() {
        for (j, &(_, i)) in pts.iter().enumerate() {
            tops[k + 1][j] = tops[k][j] + value(l, i);
        }
    }
    let ymax = tops[layers.len()].iter().copied().fold(0.0, f64::max);
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
    let Frame { mut svg, sx, sy } = frame(titles, &names, (x0, x1, false), (0.0, ymax, false));
    for k in 0..layers.len() {
        let mut d = String::new();
        for (j, (x, _)) in pts.iter().enumerate() {
            let _ = write!(d, "{}{:.1},{:.1}", if j == 0 { "M" } else { "L" }, sx.at(*x), sy.at(tops[k + 1][j]));
        }
        for (j, (x, _)) in pts.iter().enumerate().rev() {
            let _ = write!(d, "L{:.1},{:.1}", sx.at(*x), sy.at(tops[k][j]));
        }
        let _ = write!(svg.out, r#"<path d="{d}Z" fill="{}" fill-opacity="0.85"/>"#, color(k));
    }
    svg.finish()
}

/// Lines, one per series, with optional dashed markers (vertical, at an x: compactions)
/// and thresholds (horizontal, at a y: the window size). A non-finite point breaks its
/// line; a point alone is drawn as a dot.
pub fn lines(titles: &Titles, series: &[Series], options: &LineOptions) -> String {
    let thinned: Vec<Vec<(f64, f64)>> = series.iter().map(|s| thin(&s.points)).collect();
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let Some((xlo, xhi)) = range(thinned.iter().flatten().filter(finite).map(|p| p.0)) else {
        return no_data(titles);
    };
    let ys = thinned.iter().flatten().filter(finite).map(|p| p.1);
    let zero = options.y_from_zero.then_some(0.0);
    let (ylo, yhi) = range(ys.chain(options.thresholds.iter().map(|m| m.at)).chain(zero)).unwrap_or((0.0, 1.0));
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let Frame { mut svg, sx, sy } = frame(titles, &names, (xlo, xhi, false), (ylo, yhi, false));
    let (top, bottom) = (sy.r1, sy.r0);
    for m in options.markers.iter().filter(|m| m.at.is_finite() && xlo <= m.at && m.at <= xhi) {
        let x = sx.at(m.at);
        svg.line((x, top), (x, bottom), r#"stroke="currentColor" stroke-opacity="0.5" stroke-dasharray="4 3""#);
        if !m.label.is_empty() {
            svg.text(x + 3.0, top + 10.0, "start", &label(&m.label, 24));
        }
    }
    for m in options.thresholds.iter().filter(|m| m.at.is_finite()) {
        let y = sy.at(m.at);
        svg.line((sx.r0, y), (sx.r1, y), r#"stroke="currentColor" stroke-opacity="0.7" stroke-dasharray="6 4""#);
        if !m.label.is_empty() {
            svg.text(sx.r1 - 4.0, y - 4.0, "end", &label(&m.label, 40));
        }
    }
    for (k, points) in thinned.iter().enumerate() {
        let mut d = String::new();
        let mut run = 0;
        for &(x, y) in points {
            if !(x.is_finite() && y.is_finite()) {
                d.push_str(if run == 1 { "h0" } else { "" });
                run = 0;
                continue;
            }
            let _ = write!(d, "{}{:.1},{:.1}", if run == 0 { "M" } else { "L" }, sx.at(x), sy.at(y));
            run += 1;
        }
        if run == 1 {
            d.push_str("h0");
        }
        if !d.is_empty() {
            let _ = write!(
                svg.out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#,
                color(k)
            );
        }
    }
    svg.finish()
}

/// Horizontal bars, one row per bar in the order given, each with its label on the left and
/// its value at its end (influence per tool, sessions per trajectory class). The y label
/// is not drawn: the row labels name the rows. Non-finite bars are left out.
pub fn bars(titles: &Titles, bars: &[Bar]) -> String {
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.value.is_finite()).collect();
    let Some((lo, hi)) = range(bars.iter().map(|b| b.value)) else {
        return no_data(titles);
    };
    const ROW: f64 = 22.0;
    let (x0, x1) = (200.0, WIDTH - 64.0);
    let (y0, y1) = (TOP, TOP + bars.len() as f64 * ROW);
    let ticks = nice_ticks(lo.min(0.0), hi.max(0.0), 5);
    let sx = Scale { d0: ticks[0], d1: ticks[ticks.len() - 1], r0: x0, r1: x1, log: false };
    let mut svg = Svg::new(titles, WIDTH, y1 + BOTTOM);
    svg.x_axis(&sx, &ticks, (y0, y1), &titles.x);
    let zero = sx.at(0.0);
    for (i, b) in bars.iter().enumerate() {
        let y = y0 + i as f64 * ROW;
        svg.text(x0 - 8.0, y + ROW / 2.0 + 4.0, "end", &label(&b.label, 30));
        let end = sx.at(b.value);
        svg.rect(zero.min(end), y + 3.0, (end - zero).abs(), ROW - 6.0, color(0));
        let (tx, anchor) = if b.value < 0.0 { (end - 4.0, "end") } else { (end + 4.0, "start") };
        svg.text(tx, y + ROW / 2.0 + 4.0, anchor, &format_number(b.value));
    }
    svg.line((zero, y0), (zero, y1), AXIS);
    svg.finish()
}

/// An A/B comparison: one row per metric, each with its own scale (metrics differ in
/// units), group A's and group B's estimates as points with interval whiskers, and a legend
/// naming the two `groups`. Rows with no finite estimate are left out; an estimate whose
/// interval ends are not finite is drawn without whisker.
pub fn comparison(titles: &Titles, groups: [&str; 2], rows: &[ComparisonRow]) -> String {
    let usable = |c: Option<Ci>| c.filter(|c| c.value.is_finite());
    let rows: Vec<(&str, [Option<Ci>; 2])> = rows
        .iter()
        .map(|r| (r.metric.as_str(), [usable(r.a), usable(r.b)]))
        .filter(|(_, cis)| cis.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return no_data(titles);
    }
    const ROW: f64 = 56.0;
    let (x0, x1) = (200.0, WIDTH - RIGHT);
    let top = TOP + 16.0;
    let h = top + rows.len() as f64 * ROW + if titles.x.is_empty() { 8.0 } else { 28.0 };
    let mut svg = Svg::new(titles, WIDTH, h);
    for (i, name) in groups.iter().enumerate() {
        let x = x0 + i as f64 * 180.0;
        let _ = write!(svg.out, r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/>"#, x + 4.0, TOP - 4.0, color(i));
        svg.text(x + 14.0, TOP, "start", &label(name, LEGEND_NAME));
    }
    for (r, (metric, cis)) in rows.iter().enumerate() {
        let y = top + r as f64 * ROW;
        svg.text(x0 - 8.0, y + 24.0, "end", &label(metric, 30));
        let ends = cis.iter().flatten().flat_map(|c| [c.value, c.lo, c.hi]);
        let (lo, hi) = range(ends).unwrap_or((0.0, 1.0));
        let ticks = nice_ticks(lo, hi, 4);
        let sx = Scale { d0: ticks[0], d1: ticks[ticks.len() - 1], r0: x0, r1: x1, log: false };
        for &t in &ticks {
            let x = sx.at(t);
            svg.line((x, y + 4.0), (x, y + 36.0), super::GRID);
            svg.text(x, y + 48.0, "middle", &format_number(t));
        }
        for (g, ci) in cis.iter().enumerate() {
            let Some(c) = ci else { continue };
            let cy = y + 14.0 + g as f64 * 12.0;
            if c.lo.is_finite() && c.hi.is_finite() {
                let (a, b) = (sx.at(c.lo), sx.at(c.hi));
                let stroke = format!(r#"stroke="{}" stroke-width="2""#, color(g));
                svg.line((a, cy), (b, cy), &stroke);
                svg.line((a, cy - 4.0), (a, cy + 4.0), &stroke);
                svg.line((b, cy - 4.0), (b, cy + 4.0), &stroke);
            }
            let _ = write!(svg.out, r#"<circle cx="{:.1}" cy="{cy:.1}" r="4" fill="{}"/>"#, sx.at(c.value), color(g));
        }
    }
    if !titles.x.is_empty() {
        svg.text((x0 + x1) / 2.0, h - 10.0, "middle", &label(&titles.x, 80));
    }
    svg.finish()
}

/// The longest group name shown whole in [`comparison`]'s legend.
const LEGEND_NAME: usize = 26;

/// Points, one colour per series (prompt length against turn duration), on linear or
/// log axes. Non-finite points are skipped, and on a log axis points at or below 0.
pub fn scatter(titles: &Titles, series: &[Series], log: LogScale) -> String {
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log.x || x > 0.0) && (!log.y || y > 0.0);
    let kept: Vec<Vec<(f64, f64)>> =
        series.iter().map(|s| thin(&s.points.iter().copied().filter(ok).collect::<Vec<_>>())).collect();
    let (Some(xr), Some(yr)) = (range(kept.iter().flatten().map(|p| p.0)), range(kept.iter().flatten().map(|p| p.1)))
    else {
        return no_data(titles);
    };
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let Frame { mut svg, sx, sy } = frame(titles, &names, (xr.0, xr.1, log.x), (yr.0, yr.1, log.y));
    for (k, points) in kept.iter().enumerate() {
        let _ = write!(svg.out, r#"<g fill="{}" fill-opacity="0.6">"#, color(k));
        for &(x, y) in points {
            let _ = write!(svg.out, r#"<circle cx="{:.1}" cy="{:.1}" r="3"/>"#, sx.at(x), sy.at(y));
        }
        svg.out.push_str("</g>");
    }
    svg.finish()
}
