//! The one text writer of every exposition this crate produces: `/metrics` in
//! OpenMetrics 1.0 or in the Prometheus text format 0.0.4, `scan --format`, and
//! `backfill` (OpenMetrics with a timestamp on every sample).
//!
//! The flavour is chosen up front and every difference between the two formats
//! is decided here, while writing, never by rewriting text afterwards:
//!
//! | | OpenMetrics 1.0 | Prometheus 0.0.4 |
//! |---|---|---|
//! | counter family in `# HELP`/`# TYPE` | `name` | `name_total` |
//! | counter samples | `name_total` | `name_total` |
//! | `# UNIT` | written | left out |
//! | exemplars | after the value | left out |
//! | timestamps | seconds, 3 decimals | milliseconds |
//! | `# HELP` escapes | `\\`, `\n`, `\"` | `\\`, `\n` |
//! | end | `# EOF` | nothing |
//! | unknown type | `unknown` | `untyped` |
//!
//! Numbers: an integral value is written with `.0` (`7.0`, `le="10.0"`), as the
//! exposition always wrote them, so a histogram's `le` label values (part of its
//! series' identity) stay the same from one release to the next and between
//! `/metrics` and `backfill`; other values in the shortest form that reads back
//! to the same `f64`.

use std::fmt::Write as _;

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// The classic Prometheus text format (`text/plain; version=0.0.4`).
    Prometheus,
}

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (samples named `<name>_total`).
    Counter,
    /// Any value.
    Gauge,
    /// Cumulative buckets with `_bucket`, `_count` and `_sum` samples.
    Histogram,
    /// No type declared (`unknown` in OpenMetrics, `untyped` in 0.0.4).
    Unknown,
}

/// A family's descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Family<'a> {
    /// Name with its unit suffix and without `_total` (the writer adds it where the flavour wants it).
    pub name: &'a str,
    /// The family's type.
    pub kind: Kind,
    /// One line of help (escaped by the writer).
    pub help: &'a str,
    /// Unit, which `name` must end with (OpenMetrics `# UNIT`).
    pub unit: Option<&'a str>,
}

/// A sample's exemplar: the labels (a trace) of one observation it counts.
/// Written in OpenMetrics only.
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> {
    /// Label pairs (OpenMetrics caps their total length at 128 characters).
    pub labels: &'a [(&'a str, &'a str)],
    /// The observed value, in exposed units.
    pub value: f64,
    /// When it was observed, milliseconds since the epoch.
    pub at_ms: Option<i64>,
}

/// Writes families and their samples into a text buffer.
///
/// Order of calls: [`Writer::family`], then for each series [`Writer::series`]
/// followed by its samples ([`Writer::counter`], [`Writer::gauge`] or
/// [`Writer::histogram`], several for a series with timestamps), then the next
/// family; [`Writer::finish`] at the end.
#[derive(Debug)]
pub struct Writer {
    out: String,
    flavour: Flavour,
    /// The current family's name (without `_total`).
    name: String,
    /// The current series' label pairs, escaped, without braces.
    labels: String,
}

impl Writer {
    /// An empty exposition in `flavour`.
    pub fn new(flavour: Flavour) -> Writer {
        Writer { out: String::with_capacity(64 * 1024), flavour, name: String::new(), labels: String::new() }
    }

    /// The flavour chosen at [`Writer::new`].
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Start a family: its `# HELP`, `# TYPE` (and in OpenMetrics `# UNIT`) lines.
    pub fn family(&mut self, f: &Family<'_>) {
        self.name.clear();
        self.name.push_str(f.name);
        let om = self.flavour == Flavour::OpenMetrics;
        let suffix = if f.kind == Kind::Counter && !om { "_total" } else { "" };
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Unknown if om => "unknown",
            Kind::Unknown => "untyped",
        };
        let out = &mut self.out;
        let _ = write!(out, "# HELP {}{suffix} ", f.name);
        for c in f.help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' if om => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        let _ = writeln!(out, "\n# TYPE {}{suffix} {kind}", f.name);
        if let (true, Some(unit)) = (om, f.unit) {
            let _ = writeln!(out, "# UNIT {} {unit}", f.name);
        }
    }

    /// Start a series of the current family with these label pairs (names must be
    /// valid label names; values are escaped here).
    pub fn series<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.labels.clear();
        for (name, value) in labels {
            if !self.labels.is_empty() {
                self.labels.push(',');
            }
            self.labels.push_str(name);
            self.labels.push_str("=\"");
            escape_label(&mut self.labels, value);
            self.labels.push('"');
        }
    }

    /// A counter sample of the current series (`<name>_total`).
    pub fn counter(&mut self, value: f64, exemplar: Option<&Exemplar<'_>>, at_ms: Option<i64>) {
        self.sample("_total", None, |out| write_f64(out, value), at_ms, exemplar);
    }

    /// A gauge (or untyped) sample of the current series.
    pub fn gauge(&mut self, value: f64, at_ms: Option<i64>) {
        self.sample("", None, |out| write_f64(out, value), at_ms, None);
    }

    /// A histogram of the current series: `buckets` are (upper bound, cumulative
    /// count, exemplar) in increasing order; a `+Inf` bucket holding `count` is
    /// added if the last bound is finite. `sum` in exposed units.
    pub fn histogram<'e>(
        &mut self,
        buckets: impl IntoIterator<Item = (f64, u64, Option<Exemplar<'e>>)>,
        count: u64,
        sum: f64,
        at_ms: Option<i64>,
    ) {
        let mut inf = false;
        for (le, cumulative, exemplar) in buckets {
            inf = le == f64::INFINITY;
            self.sample("_bucket", Some(le), |out| write_u64(out, cumulative), at_ms, exemplar.as_ref());
        }
        if !inf {
            self.sample("_bucket", Some(f64::INFINITY), |out| write_u64(out, count), at_ms, None);
        }
        self.sample("_count", None, |out| write_u64(out, count), at_ms, None);
        self.sample("_sum", None, |out| write_f64(out, sum), at_ms, None);
    }

    /// Move what is written so far to `out` (for expositions too big to hold whole).
    pub fn flush_to(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(self.out.as_bytes())?;
        self.out.clear();
        Ok(())
    }

    /// The exposition, ended with `# EOF` in OpenMetrics.
    pub fn finish(mut self) -> String {
        if self.flavour == Flavour::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    /// `<name><suffix>{<labels>[,le="…"]} <value>[ <timestamp>][ # {…} <value>[ <timestamp>]]`.
    fn sample(
        &mut self,
        suffix: &str,
        le: Option<f64>,
        value: impl FnOnce(&mut String),
        at_ms: Option<i64>,
        exemplar: Option<&Exemplar<'_>>,
    ) {
        let om = self.flavour == Flavour::OpenMetrics;
        let out = &mut self.out;
        out.push_str(&self.name);
        out.push_str(suffix);
        if !self.labels.is_empty() || le.is_some() {
            out.push('{');
            out.push_str(&self.labels);
            if let Some(le) = le {
                if !self.labels.is_empty() {
                    out.push(',');
                }
                out.push_str("le=\"");
                write_f64(out, le);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        value(out);
        if let Some(ms) = at_ms {
            out.push(' ');
            write_time(out, ms, self.flavour);
        }
        if let (true, Some(ex)) = (om, exemplar) {
            out.push_str(" # {");
            for (i, (name, value)) in ex.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                escape_label(out, value);
                out.push('"');
            }
            out.push_str("} ");
            write_f64(out, ex.value);
            if let Some(ms) = ex.at_ms {
                out.push(' ');
                write_time(out, ms, Flavour::OpenMetrics);
            }
        }
        out.push('\n');
    }
}

/// A label value with `\`, `"` and line feeds escaped (the same in both flavours).
fn escape_label(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as both formats read it: `+Inf`, `-Inf`, `NaN`, integral values with
/// `.0`, the rest in the shortest form that reads back to the same value.
fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        // Exact: every integer below 2^53 is an f64.
        let _ = write!(out, "{}.0", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn write_u64(out: &mut String, v: u64) {
    let _ = write!(out, "{v}");
}

/// A timestamp: OpenMetrics counts seconds (with milliseconds as decimals), 0.0.4 milliseconds.
fn write_time(out: &mut String, ms: i64, flavour: Flavour) {
    let _ = match flavour {
        Flavour::OpenMetrics => {
            let (sign, abs) = if ms < 0 { ("-", ms.unsigned_abs()) } else { ("", ms.unsigned_abs()) };
            write!(out, "{sign}{}.{:03}", abs / 1000, abs % 1000)
        }
        Flavour::Prometheus => write!(out, "{ms}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(f: impl Fn(&mut Writer)) -> (String, String) {
        let mut om = Writer::new(Flavour::OpenMetrics);
        f(&mut om);
        let mut prom = Writer::new(Flavour::Prometheus);
        f(&mut prom);
        (om.finish(), prom.finish())
    }

    #[test]
    fn counters_are_named_as_each_flavour_wants() {
        let (om, prom) = both(|w| {
            w.family(&Family { name: "x_cost_usd", kind: Kind::Counter, help: "Cost \"est\".", unit: Some("usd") });
            w.series([("project", "a\"b\\c\nd")]);
            let ex = Exemplar { labels: &[("trace_id", "ab")], value: 0.5, at_ms: Some(1_500) };
            w.counter(7.0, Some(&ex), None);
        });
        assert_eq!(
            om,
            "# HELP x_cost_usd Cost \\\"est\\\".\n# TYPE x_cost_usd counter\n# UNIT x_cost_usd usd\n\
             x_cost_usd_total{project=\"a\\\"b\\\\c\\nd\"} 7.0 # {trace_id=\"ab\"} 0.5 1.500\n# EOF\n"
        );
        assert_eq!(
            prom,
            "# HELP x_cost_usd_total Cost \"est\".\n# TYPE x_cost_usd_total counter\n\
             x_cost_usd_total{project=\"a\\\"b\\\\c\\nd\"} 7.0\n"
        );
    }

    #[test]
    fn histograms_end_with_inf_count_and_sum() {
        let (om, prom) = both(|w| {
            w.family(&Family { name: "h_seconds", kind: Kind::Histogram, help: "H.", unit: Some("seconds") });
            w.series([("tool", "Bash")]);
            w.histogram([(0.5, 1, None), (10.0, 3, None)], 4, 2.25, Some(61_005));
            w.family(&Family { name: "g", kind: Kind::Unknown, help: "G.", unit: None });
            w.series([]);
            w.gauge(f64::NAN, None);
        });
        let body = "h_seconds_bucket{tool=\"Bash\",le=\"0.5\"} 1 T\nh_seconds_bucket{tool=\"Bash\",le=\"10.0\"} 3 T\n\
                    h_seconds_bucket{tool=\"Bash\",le=\"+Inf\"} 4 T\nh_seconds_count{tool=\"Bash\"} 4 T\n\
                    h_seconds_sum{tool=\"Bash\"} 2.25 T\n";
        assert!(om.contains(&body.replace('T', "61.005")), "{om}");
        assert!(om.ends_with("# TYPE g unknown\ng NaN\n# EOF\n"), "{om}");
        assert!(prom.contains(&body.replace('T', "61005")), "{prom}");
        assert!(prom.ends_with("# TYPE g untyped\ng NaN\n") && !prom.contains("# UNIT"), "{prom}");
    }

    #[test]
    fn numbers_read_back_exactly() {
        for (v, text) in [
            (0.0, "0.0"),
            (-3.0, "-3.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            let mut s = String::new();
            write_f64(&mut s, v);
            assert_eq!(s, text);
        }
        let mut s = String::new();
        write_time(&mut s, -1, Flavour::OpenMetrics);
        assert_eq!(s, "-0.001");
    }
}
