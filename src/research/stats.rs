//! Statistics for comparing two groups of sessions (`analyze`'s A/B mode).
//!
//! In: two groups of numbers, `a` and `b` (one value per session or per turn: a cost, a
//! duration, a count; or a yes/no outcome), and a [`Bootstrap`] setting (resamples,
//! confidence level, seed). Out: descriptive figures, effect sizes and percentile
//! bootstrap confidence intervals, gathered in a serializable [`Comparison`].
//!
//! What it promises:
//! - **Direction**: every difference and effect size reads "b against a": positive means
//!   `b` is larger (difference of means `b − a`, ratio of medians `b / a`, Cliff's delta
//!   `P(b > a) − P(b < a)`).
//! - **No NaN out**: non-finite inputs (NaN, ±∞) are dropped before anything is computed;
//!   a figure that is undefined (an empty group, a standard deviation of one value, a ratio
//!   over a zero median, all values equal where a spread divides) is `None`, which
//!   serializes as `null`.
//! - **Reproducible**: resampling draws from [`Rng`] (SplitMix64) seeded by the caller; the
//!   same inputs and seed give the same intervals, bit for bit, on every platform.
//! - **Bounded work**: each group is sorted once, O(n log n); a resample is then a vector of
//!   counts over the sorted values, from which the mean, the median and Cliff's delta are
//!   read in one linear pass each. A bootstrap costs O(B·(n + m)) time and O(B + n + m)
//!   memory (n = 100,000 per group and B = 2,000 is about 4·10⁸ draws: seconds, in a
//!   release build).
//!
//! Quantiles (and so medians and interval ends) use linear interpolation between order
//! statistics, Hyndman and Fan's type 7 (R's default, NumPy's `linear`): for sorted
//! `x[0..n]` and `p` in [0, 1], `h = (n − 1)·p` and `q = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`.
//!
//! ```
//! use claude_sessions::research::stats::{compare, Bootstrap};
//!
//! let a = [12.0, 15.0, 11.0, 14.0, 13.0, 12.5];
//! let b = [16.0, 18.0, 15.5, 17.0, 19.0, 16.5];
//! let c = compare("turn_seconds", &a, &b, &Bootstrap { resamples: 500, ..Bootstrap::default() });
//! let d = c.diff_means.unwrap();
//! assert!(d.lo > 0.0 && d.lo <= d.value && d.value <= d.hi);
//! assert_eq!(c.cliffs_delta.unwrap().value, 1.0); // every b is above every a
//! ```

use serde::Serialize;

/// SplitMix64 (Steele, Lea and Flood, 2014; the seeder of Java's `SplittableRandom` and of
/// xoshiro): a 64-bit counter stepped by the golden-ratio constant and mixed. It passes
/// BigCrush, is fast and tiny, and any seed (0 included) is a good one. Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1), with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-and-shift; its bias, at
    /// most n / 2⁶⁴, is far below anything a bootstrap can see.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A draw from the normal distribution N(`mean`, `sd`²) by the Box–Muller transform
    /// (the cosine half; one draw uses two uniforms). For synthetic data in tests and examples.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A point estimate with its percentile bootstrap confidence interval (`lo ≤ hi`; the
/// estimate is computed on the data as given, so it usually, not always, lies inside).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The statistic on the observed data.
    pub value: f64,
    /// Lower end: the (1 − confidence)/2 quantile of the bootstrap distribution.
    pub lo: f64,
    /// Upper end: the (1 + confidence)/2 quantile of the bootstrap distribution.
    pub hi: f64,
}

/// How intervals are computed: the percentile bootstrap, each group resampled with
/// replacement independently of the other, `resamples` times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bootstrap {
    /// Number of resamples B (default 2,000). 0 gives no intervals.
    pub resamples: usize,
    /// Confidence level in (0, 1) (default 0.95); outside it, no intervals.
    pub confidence: f64,
    /// Seed of the [`Rng`]; fixed by default so reports are reproducible.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap { resamples: 2_000, confidence: 0.95, seed: 0x5EED }
    }
}

/// A confidence interval alone (for a figure reported beside it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// A group's descriptive figures (finite values only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of finite values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// The mean's bootstrap interval (`None` below 2 values).
    pub mean_ci: Option<Interval>,
    /// Median (type 7).
    pub median: Option<f64>,
    /// The median's bootstrap interval (`None` below 2 values).
    pub median_ci: Option<Interval>,
    /// Sample standard deviation, divisor n − 1 (`None` below 2 values).
    pub sd: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// First quartile (type 7).
    pub p25: Option<f64>,
    /// Third quartile (type 7).
    pub p75: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

/// One metric compared between group `a` and group `b`: what the A/B report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The metric's name, as the caller gave it.
    pub metric: String,
    /// Group a's figures.
    pub a: Summary,
    /// Group b's figures.
    pub b: Summary,
    /// Difference of means, b − a, with its interval. For 0/1 values this is the
    /// difference of proportions (see [`compare_proportions`]).
    pub diff_means: Option<Estimate>,
    /// Difference of medians, b − a, with its interval.
    pub diff_medians: Option<Estimate>,
    /// Ratio of medians, b / a (`None` when a's median is 0). No interval.
    pub ratio_medians: Option<f64>,
    /// Cohen's d: difference of means over the pooled sample standard deviation
    /// (`None` when both groups have no spread).
    pub cohens_d: Option<f64>,
    /// Hedges' g: Cohen's d times the small-sample correction 1 − 3 / (4(n_a + n_b) − 9).
    pub hedges_g: Option<f64>,
    /// Cliff's delta, P(b > a) − P(b < a) over all pairs, in [−1, 1], with its interval:
    /// rank-based, so fit for skewed data such as costs and durations.
    pub cliffs_delta: Option<Estimate>,
    /// The bootstrap setting the intervals come from.
    pub bootstrap: Bootstrap,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The finite values, sorted ascending.
fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Mean of the finite values (`None` when there are none).
pub fn mean(xs: &[f64]) -> Option<f64> {
    let (n, sum) = xs.iter().filter(|x| x.is_finite()).fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64).and_then(finite)
}

/// Median (type 7) of the finite values.
pub fn median(xs: &[f64]) -> Option<f64> {
    quantile(xs, 0.5)
}

/// Sample standard deviation (divisor n − 1, two-pass) of the finite values; `None` below 2.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    let (n, ss) = xs.iter().filter(|x| x.is_finite()).fold((0usize, 0.0), |(n, s), x| (n + 1, s + (x - m).powi(2)));
    (n >= 2).then(|| (ss / (n - 1) as f64).sqrt()).and_then(finite)
}

/// The `p`-quantile (type 7, see the module doc) of the finite values; `None` when there
/// are none or `p` is outside [0, 1].
pub fn quantile(xs: &[f64], p: f64) -> Option<f64> {
    quantile_sorted(&sorted(xs), p)
}

/// [`quantile`] of values already sorted ascending and finite (not checked).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let i = h.floor() as usize;
    let lo = sorted[i];
    let hi = sorted[(i + 1).min(sorted.len() - 1)];
    finite(lo + (h - i as f64) * (hi - lo))
}

/// Difference of means, `mean(b) − mean(a)`.
pub fn diff_means(a: &[f64], b: &[f64]) -> Option<f64> {
    finite(mean(b)? - mean(a)?)
}

/// Ratio of medians, `median(b) / median(a)`; `None` when `median(a)` is 0.
pub fn ratio_medians(a: &[f64], b: &[f64]) -> Option<f64> {
    let ma = median(a).filter(|m| *m != 0.0)?;
    finite(median(b)? / ma)
}

/// Cohen's d, `(mean(b) − mean(a)) / s_p` with the pooled standard deviation
/// `s_p = √(((n_a − 1)s_a² + (n_b − 1)s_b²) / (n_a + n_b − 2))`. `None` when either group
/// has fewer than 2 values or `s_p` is 0 (all values equal within each group).
pub fn cohens_d(a: &[f64], b: &[f64]) -> Option<f64> {
    let (na, nb) = (count(a) as f64, count(b) as f64);
    let (sa, sb) = (std_dev(a)?, std_dev(b)?);
    let sp = (((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / (na + nb - 2.0)).sqrt();
    if sp > 0.0 { finite(diff_means(a, b)? / sp) } else { None }
}

/// Hedges' g: [`cohens_d`] times `J = 1 − 3 / (4(n_a + n_b) − 9)`, which removes most of
/// d's upward bias in small groups.
pub fn hedges_g(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = (count(a) + count(b)) as f64;
    cohens_d(a, b).map(|d| d * (1.0 - 3.0 / (4.0 * n - 9.0)))
}

/// Cliff's delta, `(#{b > a} − #{b < a}) / (n_a·n_b)` over all pairs (ties count 0).
/// O((n + m) log(n + m)): both groups are sorted and counted with two pointers.
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> Option<f64> {
    let (a, b) = (Counted::new(sorted(a)), Counted::new(sorted(b)));
    Counted::cliffs_delta(&a, &b)
}

fn count(xs: &[f64]) -> usize {
    xs.iter().filter(|x| x.is_finite()).count()
}

/// A group sorted once, and how many times each value is in the current resample
/// (all ones for the observed data).
struct Counted {
    values: Vec<f64>,
    counts: Vec<u32>,
}

impl Counted {
    fn new(values: Vec<f64>) -> Self {
        Counted { counts: vec![1; values.len()], values }
    }

    fn n(&self) -> usize {
        self.values.len()
    }

    /// Draws n values with replacement: the counts of a bootstrap resample.
    fn resample(&mut self, rng: &mut Rng) {
        self.counts.fill(0);
        for _ in 0..self.values.len() {
            self.counts[rng.below(self.values.len())] += 1;
        }
    }

    fn mean(&self) -> Option<f64> {
        let sum: f64 = self.values.iter().zip(&self.counts).map(|(v, &c)| v * f64::from(c)).sum();
        (self.n() > 0).then(|| sum / self.n() as f64).and_then(finite)
    }

    /// Type 7 median of the resample: the mean of the order statistics at ranks
    /// ⌊(n−1)/2⌋ and ⌈(n−1)/2⌉, found by walking the cumulative counts.
    fn median(&self) -> Option<f64> {
        let n = self.n();
        if n == 0 {
            return None;
        }
        let (k1, k2) = ((n - 1) / 2, n / 2);
        let (mut seen, mut v1) = (0usize, None);
        for (v, &c) in self.values.iter().zip(&self.counts) {
            seen += c as usize;
            if v1.is_none() && seen > k1 {
                v1 = Some(*v);
            }
            if seen > k2 {
                return finite((v1? + v) / 2.0);
            }
        }
        None
    }

    /// Σ over pairs of count_a·count_b·sign(b − a), divided by n_a·n_b.
    fn cliffs_delta(a: &Counted, b: &Counted) -> Option<f64> {
        if a.n() == 0 || b.n() == 0 {
            return None;
        }
        let (mut lt, mut le, mut below, mut below_eq) = (0usize, 0usize, 0i64, 0i64);
        let mut total = 0i64;
        for (y, &cy) in b.values.iter().zip(&b.counts) {
            while lt < a.n() && a.values[lt] < *y {
                below += i64::from(a.counts[lt]);
                lt += 1;
            }
            while le < a.n() && a.values[le] <= *y {
                below_eq += i64::from(a.counts[le]);
                le += 1;
            }
            let above = a.n() as i64 - below_eq;
            total += i64::from(cy) * (below - above);
        }
        Some(total as f64 / (a.n() as f64 * b.n() as f64))
    }
}

impl Bootstrap {
    fn valid(&self) -> bool {
        self.resamples > 0 && self.confidence > 0.0 && self.confidence < 1.0
    }

    /// Resamples every group `resamples` times and gathers K statistics of each resample;
    /// a resample whose statistic is undefined is left out of that statistic.
    fn distributions<const K: usize>(
        &self,
        groups: &mut [Counted],
        stat: impl Fn(&[Counted]) -> [Option<f64>; K],
    ) -> [Vec<f64>; K] {
        let mut rng = Rng::new(self.seed);
        let mut out: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(self.resamples));
        for _ in 0..self.resamples {
            for g in groups.iter_mut() {
                g.resample(&mut rng);
            }
            for (dist, s) in out.iter_mut().zip(stat(groups)) {
                dist.extend(s);
            }
        }
        for g in groups.iter_mut() {
            g.counts.fill(1);
        }
        out
    }

    /// The percentile interval of a bootstrap distribution (`None` when it is empty).
    fn interval(&self, mut dist: Vec<f64>) -> Option<Interval> {
        dist.sort_unstable_by(f64::total_cmp);
        let tail = (1.0 - self.confidence) / 2.0;
        Some(Interval { lo: quantile_sorted(&dist, tail)?, hi: quantile_sorted(&dist, 1.0 - tail)? })
    }

    fn estimate(&self, value: Option<f64>, dist: Vec<f64>) -> Option<Estimate> {
        let Interval { lo, hi } = self.interval(dist)?;
        Some(Estimate { value: value?, lo, hi })
    }

    /// One statistic of two groups with its interval; `None` when either group has fewer
    /// than 2 finite values or the setting is invalid.
    fn two(&self, a: &[f64], b: &[f64], stat: fn(&Counted, &Counted) -> Option<f64>) -> Option<Estimate> {
        let mut g = [Counted::new(sorted(a)), Counted::new(sorted(b))];
        if !self.valid() || g.iter().any(|g| g.n() < 2) {
            return None;
        }
        let value = stat(&g[0], &g[1]);
        let [dist] = self.distributions(&mut g, |g| [stat(&g[0], &g[1])]);
        self.estimate(value, dist)
    }

    /// Difference of means, b − a, with its interval.
    pub fn diff_means(&self, a: &[f64], b: &[f64]) -> Option<Estimate> {
        self.two(a, b, |a, b| finite(b.mean()? - a.mean()?))
    }

    /// Difference of medians, b − a, with its interval.
    pub fn diff_medians(&self, a: &[f64], b: &[f64]) -> Option<Estimate> {
        self.two(a, b, |a, b| finite(b.median()? - a.median()?))
    }

    /// Cliff's delta (see [`cliffs_delta`]) with its interval.
    pub fn cliffs_delta(&self, a: &[f64], b: &[f64]) -> Option<Estimate> {
        self.two(a, b, Counted::cliffs_delta)
    }

    /// Difference of proportions, p_b − p_a, for yes/no outcomes (such as "needed a
    /// follow-up correction"): exactly [`Bootstrap::diff_means`] of the outcomes as 1.0
    /// (true) and 0.0 (false), since a proportion is the mean of 0/1 values.
    pub fn diff_proportions(&self, a: &[bool], b: &[bool]) -> Option<Estimate> {
        self.diff_means(&zero_one(a), &zero_one(b))
    }

    /// Mean of one group with its interval (`None` below 2 finite values).
    pub fn mean(&self, xs: &[f64]) -> Option<Estimate> {
        self.one(xs, Counted::mean)
    }

    /// Median of one group with its interval (`None` below 2 finite values).
    pub fn median(&self, xs: &[f64]) -> Option<Estimate> {
        self.one(xs, Counted::median)
    }

    fn one(&self, xs: &[f64], stat: fn(&Counted) -> Option<f64>) -> Option<Estimate> {
        let mut g = [Counted::new(sorted(xs))];
        if !self.valid() || g[0].n() < 2 {
            return None;
        }
        let value = stat(&g[0]);
        let [dist] = self.distributions(&mut g, |g| [stat(&g[0])]);
        self.estimate(value, dist)
    }
}

fn zero_one(xs: &[bool]) -> Vec<f64> {
    xs.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect()
}

/// One group's [`Summary`], its intervals from `bootstrap`.
pub fn summary(xs: &[f64], bootstrap: &Bootstrap) -> Summary {
    let mut g = [Counted::new(sorted(xs))];
    let [mean_ci, median_ci] = if bootstrap.valid() && g[0].n() >= 2 {
        let [means, medians] = bootstrap.distributions(&mut g, |g| [g[0].mean(), g[0].median()]);
        [bootstrap.interval(means), bootstrap.interval(medians)]
    } else {
        [None; 2]
    };
    describe(&g[0].values, mean_ci, median_ci)
}

fn describe(s: &[f64], mean_ci: Option<Interval>, median_ci: Option<Interval>) -> Summary {
    Summary {
        n: s.len(),
        mean: mean(s),
        mean_ci,
        median: quantile_sorted(s, 0.5),
        median_ci,
        sd: std_dev(s),
        min: s.first().copied(),
        p25: quantile_sorted(s, 0.25),
        p75: quantile_sorted(s, 0.75),
        max: s.last().copied(),
    }
}

/// Compares `metric` between groups `a` and `b`: both summaries, every effect size, and
/// all intervals from one shared set of resamples (so they are consistent with each
/// other). Non-finite values are dropped first; with fewer than 2 values in a group,
/// the differences have no interval and that group's summary none either.
pub fn compare(metric: &str, a: &[f64], b: &[f64], bootstrap: &Bootstrap) -> Comparison {
    let mut g = [Counted::new(sorted(a)), Counted::new(sorted(b))];
    let (va, vb) = (&g[0].values, &g[1].values);
    let two = va.len() >= 2 && vb.len() >= 2;
    let ratio_medians = ratio_medians(va, vb).filter(|_| two);
    let (cohens_d, hedges_g) = (cohens_d(va, vb), hedges_g(va, vb));
    let ([a, b], [diff_means, diff_medians, cliffs_delta]) = if two && bootstrap.valid() {
        let stats = |g: &[Counted]| {
            let (ma, mb, da, db) = (g[0].mean(), g[1].mean(), g[0].median(), g[1].median());
            let diff = |a: Option<f64>, b: Option<f64>| finite(b? - a?);
            [ma, mb, da, db, diff(ma, mb), diff(da, db), Counted::cliffs_delta(&g[0], &g[1])]
        };
        let observed = stats(&g);
        let [ma, mb, da, db, dm, dd, cd] = bootstrap.distributions(&mut g, stats);
        let i = |d| bootstrap.interval(d);
        let e = |k: usize, d| bootstrap.estimate(observed[k], d);
        ([describe(&g[0].values, i(ma), i(da)), describe(&g[1].values, i(mb), i(db))], [e(4, dm), e(5, dd), e(6, cd)])
    } else {
        ([summary(&g[0].values, bootstrap), summary(&g[1].values, bootstrap)], [None; 3])
    };
    Comparison {
        metric: metric.to_owned(),
        a,
        b,
        diff_means,
        diff_medians,
        ratio_medians,
        cohens_d,
        hedges_g,
        cliffs_delta,
        bootstrap: *bootstrap,
    }
}

/// [`compare`] for yes/no outcomes, counted as 1.0 and 0.0: the means are the proportions,
/// `diff_means` is the difference of proportions p_b − p_a, and Cliff's delta equals it too.
pub fn compare_proportions(metric: &str, a: &[bool], b: &[bool], bootstrap: &Bootstrap) -> Comparison {
    compare(metric, &zero_one(a), &zero_one(b), bootstrap)
}

#[cfg(test)]
mod tests;
