//! Inline SVG charts for the static HTML report (`analyze`).
//!
//! In: titles and numbers: series of points, stacked layers, labelled bars, estimates
//! with intervals. Out: one self-contained `<svg>` element as a `String`, to paste into
//! HTML: no JavaScript, no external fonts, styles or images.
//!
//! What it promises:
//! - **Safe text**: every label (project names, tool names, series names) is XML-escaped
//!   (`& < > " '`), and characters XML cannot carry are replaced by `�`. Long labels are
//!   cut with `…`.
//! - **Light and dark**: text, axes and grid lines use `currentColor` (the page sets
//!   `color`); data use [`PALETTE`], whose colours keep a 3:1 contrast against both a white
//!   and a near-black (#121212) background.
//! - **Accessible**: the root has `role="img"`, an `aria-label` and a `<title>`.
//! - **Robust and deterministic**: NaN and ±∞ are skipped (on a log axis, values ≤ 0 too);
//!   nothing left to draw gives a small "no data" SVG; no input panics. Coordinates are
//!   written with one decimal, so the same input gives the same bytes. Series are thinned
//!   to at most [`MAX_POINTS`] points each (every k-th kept), which bounds the size.
//! - **Readable axes**: ticks at 1, 2 or 5 × 10^k ([`nice_ticks`]), labels like `12k`,
//!   `1.2M` ([`format_number`]).
//!
//! ```
//! use claude_sessions::research::charts::{bars, Bar, Titles};
//!
//! let t = Titles::new("Tool results nobody used", "results", "");
//! let svg = bars(&t, &[Bar::new("Read", 12.0), Bar::new("Grep <regex>", 3.0)]);
//! assert!(svg.starts_with("<svg") && svg.contains("Grep &lt;regex&gt;"));
//! ```

use std::fmt::Write;

mod plots;

pub use plots::{bars, comparison, lines, scatter, stacked_area};

/// The data colours, in order of use: each has at least 3:1 contrast against white and
/// against #121212 (WCAG's minimum for graphics), so charts read in light and dark pages.
pub const PALETTE: [&str; 10] =
    ["#3b82f6", "#d97706", "#0d9488", "#dc2626", "#8b5cf6", "#65a30d", "#db2777", "#64748b", "#a16207", "#0891b2"];

/// At most this many points are drawn per series; longer ones keep every k-th point (and
/// the last).
pub const MAX_POINTS: usize = 2_000;

/// A chart's title and axis labels (plain text; escaped when written). An empty axis
/// label is not drawn.
#[derive(Debug, Clone, Default)]
pub struct Titles {
    /// The title, shown on top and used as the accessible name.
    pub title: String,
    /// The horizontal axis' label.
    pub x: String,
    /// The vertical axis' label.
    pub y: String,
}

impl Titles {
    /// Titles from three strings.
    pub fn new(title: &str, x: &str, y: &str) -> Self {
        Titles { title: title.into(), x: x.into(), y: y.into() }
    }
}

/// A named series of (x, y) points, for [`lines`] and [`scatter`].
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// The points, in drawing order (lines join them in this order).
    pub points: Vec<(f64, f64)>,
}

/// A named layer of a [`stacked_area`] chart: one value per x, aligned with the chart's xs.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// Legend name (for example `tool_result:Read`).
    pub name: String,
    /// One value per x; missing, negative or non-finite values count as 0.
    pub values: Vec<f64>,
}

/// A labelled line across the plot: at an x for [`LineOptions::markers`], at a y for
/// [`LineOptions::thresholds`].
#[derive(Debug, Clone, Default)]
pub struct Marker {
    /// Where the line is, in data units.
    pub at: f64,
    /// Its label (for example `compaction` or `window 200k`).
    pub label: String,
}

/// Extras of a [`lines`] chart.
#[derive(Debug, Clone, Default)]
pub struct LineOptions {
    /// Dashed vertical lines (markers outside the data's x range are not drawn).
    pub markers: Vec<Marker>,
    /// Dashed horizontal lines; the y axis is extended to show them.
    pub thresholds: Vec<Marker>,
    /// Start the y axis at 0 (or below, for negative data) rather than at the data's minimum.
    pub y_from_zero: bool,
}

/// One bar of a [`bars`] chart.
#[derive(Debug, Clone, Default)]
pub struct Bar {
    /// The row's label.
    pub label: String,
    /// Its value (non-finite bars are left out).
    pub value: f64,
}

impl Bar {
    /// A bar from a label and a value.
    pub fn new(label: &str, value: f64) -> Self {
        Bar { label: label.into(), value }
    }
}

/// An estimate with its interval, as [`comparison`] draws it: a point and a whisker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ci {
    /// The estimate.
    pub value: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// One metric of a [`comparison`] chart: each group's estimate, if it has one.
#[derive(Debug, Clone, Default)]
pub struct ComparisonRow {
    /// The metric's name.
    pub metric: String,
    /// Group A's estimate.
    pub a: Option<Ci>,
    /// Group B's estimate.
    pub b: Option<Ci>,
}

/// Which axes of a [`scatter`] are logarithmic (base 10).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogScale {
    /// Log x.
    pub x: bool,
    /// Log y.
    pub y: bool,
}

/// `s` with `& < > " '` written as XML entities and characters XML 1.0 forbids (control
/// characters other than tab, newline and carriage return) replaced by `�`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to `max` characters (the last one `…`), then escaped.
fn label(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return escape(s);
    }
    escape(&(s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"))
}

/// A short label for a number: three significant digits at most, with `k`, `M`, `G`, `T`
/// for thousands and up (`12k`, `1.2M`, `170k`), plain below (`0`, `0.25`, `950`), and
/// scientific under 0.001 (`2.5e-4`). Non-finite numbers give `–`.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = round_significant(v.abs(), 3);
    for (unit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= unit {
            return format!("{sign}{}{suffix}", plain(a / unit));
        }
    }
    if a >= 1e-3 { format!("{sign}{}", plain(a)) } else { format!("{sign}{a:.1e}") }
}

fn round_significant(a: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits - 1 - a.log10().floor() as i32);
    (a * scale).round() / scale
}

/// A positive number of three significant digits at most, trailing zeros trimmed.
fn plain(a: f64) -> String {
    let decimals = if a >= 100.0 { 0 } else { (2 - a.log10().floor() as i32).max(0) as usize };
    let s = format!("{a:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Tick values covering `[lo, hi]` at a step of 1, 2 or 5 × 10^k, giving about `target`
/// intervals (the first tick ≤ `lo`, the last ≥ `hi`). Equal ends are widened; a
/// non-finite end gives no ticks. Values are exact decimals (0.6, not 0.6000000000000001).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return Vec::new();
    }
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() / 2.0 };
        (lo, hi) = if lo >= 0.0 && lo - d < 0.0 { (0.0, hi + d) } else { (lo - d, hi + d) };
    }
    let raw = (hi - lo) / target.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return vec![lo, hi];
    }
    let exp = raw.log10().floor() as i32;
    let m = raw / 10f64.powi(exp);
    let mantissa: i64 = [1, 2, 5, 10].into_iter().find(|&c| m <= c as f64 * (1.0 + 1e-9)).unwrap_or(10);
    let value = |units: i64| {
        if exp >= 0 { units as f64 * 10f64.powi(exp) } else { units as f64 / 10f64.powi(-exp) }
    };
    let step = value(mantissa);
    let (k0, k1) = ((lo / step + 1e-9).floor() as i64, (hi / step - 1e-9).ceil() as i64);
    if k1.saturating_sub(k0) > 100 {
        return vec![lo, hi];
    }
    (k0..=k1).map(|k| value(k * mantissa)).collect()
}

/// Ticks of a log axis over positive `[lo, hi]`: the powers of ten around it, with 2 and 5
/// times them when it spans fewer than three decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil().max(lo.log10().floor() + 1.0) as i32);
    let few = e1 - e0 < 3;
    let mut out = Vec::new();
    for e in e0..=e1.min(e0 + 40) {
        let p = 10f64.powi(e);
        out.push(p);
        if few && e < e1 {
            out.extend([2.0 * p, 5.0 * p]);
        }
    }
    // Trim to the ticks around the data, keeping one on each side.
    let first = out.iter().rposition(|&t| t <= lo).unwrap_or(0);
    let last = out.iter().position(|&t| t >= hi).unwrap_or(out.len() - 1);
    out[first..=last].to_vec()
}

/// A mapping from data to pixels along one axis.
#[derive(Debug, Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
    log: bool,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        let f = |v: f64| if self.log { v.log10() } else { v };
        let (a, b) = (f(self.d0), f(self.d1));
        let t = if b == a { 0.5 } else { (f(v) - a) / (b - a) };
        self.r0 + t * (self.r1 - self.r0)
    }
}

/// An axis over the data range `[lo, hi]`: its ticks and the domain they span.
fn axis(lo: f64, hi: f64, log: bool, target: usize) -> (Vec<f64>, f64, f64) {
    let ticks = if log { log_ticks(lo, hi) } else { nice_ticks(lo, hi, target) };
    let (d0, d1) = (ticks.first().copied().unwrap_or(lo), ticks.last().copied().unwrap_or(hi));
    (ticks, d0, d1)
}

/// The SVG being written: the root element, the plot area, and helpers that write
/// elements with fixed number formatting.
struct Svg {
    out: String,
}

/// Plot margins: room for tick labels on the left, the title on top, the x label below.
const LEFT: f64 = 64.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;
const RIGHT: f64 = 20.0;
/// Width of a legend column on the right, and the longest legend name shown whole.
const LEGEND: f64 = 170.0;
const LEGEND_CHARS: usize = 24;

impl Svg {
    fn new(titles: &Titles, w: f64, h: f64) -> Self {
        let t = escape(&titles.title);
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{t}" font-family="system-ui, sans-serif" font-size="11" fill="currentColor" style="max-width:100%;height:auto"><title>{t}</title>"#
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="20" font-size="14" font-weight="600">{}</text>"#,
            8.0,
            label(&titles.title, 90)
        );
        Svg { out }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, text: &str) {
        let _ = write!(self.out, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{text}</text>"#);
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let _ = write!(self.out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attrs}/>"#);
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
            w.max(0.0),
            h.max(0.0)
        );
    }

    /// The x axis at the bottom of the plot: grid lines, tick labels, the axis label.
    fn x_axis(&mut self, sx: &Scale, ticks: &[f64], (top, bottom): (f64, f64), name: &str) {
        for &t in ticks {
            let x = sx.at(t);
            self.line((x, top), (x, bottom), GRID);
            self.text(x, bottom + 14.0, "middle", &format_number(t));
        }
        self.line((sx.r0, bottom), (sx.r1, bottom), AXIS);
        if !name.is_empty() {
            self.text((sx.r0 + sx.r1) / 2.0, bottom + 32.0, "middle", &label(name, 80));
        }
    }

    /// The y axis on the left of the plot: grid lines, tick labels, the rotated axis label.
    fn y_axis(&mut self, sy: &Scale, ticks: &[f64], (left, right): (f64, f64), name: &str) {
        for &t in ticks {
            let y = sy.at(t);
            self.line((left, y), (right, y), GRID);
            self.text(left - 6.0, y + 4.0, "end", &format_number(t));
        }
        self.line((left, sy.r0), (left, sy.r1), AXIS);
        if !name.is_empty() {
            let y = (sy.r0 + sy.r1) / 2.0;
            let _ = write!(
                self.out,
                r#"<text x="14" y="{y:.1}" text-anchor="middle" transform="rotate(-90 14 {y:.1})">{}</text>"#,
                label(name, 60)
            );
        }
    }

    /// A legend column: a swatch and a name per entry, from `(x, y)` down.
    fn legend<'a>(&mut self, x: f64, y: f64, names: impl Iterator<Item = &'a str>) {
        for (i, name) in names.enumerate() {
            let y = y + i as f64 * 16.0;
            self.rect(x, y, 10.0, 10.0, color(i));
            self.text(x + 16.0, y + 9.0, "start", &label(name, LEGEND_CHARS));
        }
    }
}

const GRID: &str = r#"stroke="currentColor" stroke-opacity="0.12""#;
const AXIS: &str = r#"stroke="currentColor" stroke-opacity="0.6""#;

/// The i-th palette colour (cycling).
fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A small SVG that says there is nothing to draw, with the chart's title.
pub fn no_data(titles: &Titles) -> String {
    let mut svg = Svg::new(titles, 320.0, 80.0);
    svg.out.push_str(r#"<text x="160" y="56" text-anchor="middle" fill-opacity="0.7">no data</text>"#);
    svg.finish()
}

/// Every k-th item, so that at most [`MAX_POINTS`] remain (the last one always kept).
fn thin<T: Copy>(items: &[T]) -> Vec<T> {
    if items.len() <= MAX_POINTS {
        return items.to_vec();
    }
    let k = items.len().div_ceil(MAX_POINTS - 1);
    let mut out: Vec<T> = items.iter().step_by(k).copied().collect();
    if !(items.len() - 1).is_multiple_of(k) {
        out.push(items[items.len() - 1]);
    }
    out
}

/// The finite range of some values (`None` when there are none).
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

#[cfg(test)]
mod tests;
