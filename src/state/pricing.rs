//! Price table and cost of one API response.
//!
//! In: a model id and a response's deduplicated token usage. Out: USD.
//! The table is embedded from `pricing.toml` (see `docs/pricing.md` for
//! the sources) and can be overridden per model by a user TOML file of the
//! same shape. Unknown models cost 0 and are reported as unpriced, never
//! guessed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::transcript::entry::Tokens;

const EMBEDDED: &str = include_str!("pricing.toml");

/// A request whose prompt exceeds this many tokens is billed at the
/// long-context rates (whole request), where the model has them.
pub(crate) const LONG_CONTEXT_THRESHOLD: u64 = 200_000;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

/// A model's prices (USD per million tokens), as `pricing.toml` writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelPrice {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
    pub long_context: Option<Rates>,
    pub fast_multiplier: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

/// Why a user pricing file (`--pricing-file`) was refused.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The file cannot be read.
    #[error("cannot read pricing file {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// The read error.
        source: std::io::Error,
    },
    /// The file is not a valid price table (bad TOML, an unknown field, a missing price).
    #[error("invalid pricing file {path}: {source}")]
    Parse {
        /// The file, as given.
        path: String,
        /// Where and why parsing failed.
        source: Box<toml::de::Error>,
    },
}

impl ModelPrice {
    /// The rates of a request within the standard context.
    pub(crate) fn base(&self) -> Rates {
        Rates {
            input: self.input,
            output: self.output,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            cache_read: self.cache_read,
        }
    }
}

/// The price table: model-id prefix → prices.
#[derive(Debug, Clone)]
pub struct Table {
    models: BTreeMap<String, ModelPrice>,
}

impl Default for Table {
    fn default() -> Self {
        let file: File = toml::from_str(EMBEDDED).expect("embedded pricing.toml is valid");
        Table { models: file.models }
    }
}

impl Table {
    /// The embedded table, with the entries of `path` (if any) replacing or adding models.
    pub fn load(path: Option<&Path>) -> Result<Table, PricingError> {
        let mut table = Table::default();
        if let Some(path) = path {
            let shown = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|source| PricingError::Read { path: shown.clone(), source })?;
            let file: File = toml::from_str(&text)
                .map_err(|source| PricingError::Parse { path: shown, source: Box::new(source) })?;
            table.models.extend(file.models);
        }
        Ok(table)
    }

    /// Prices for a model id: exact key, else the longest key that is a
    /// prefix of the id ending at a `-` boundary (so `claude-opus-4-5-20251101`
    /// finds `claude-opus-4-5`, and `claude-opus-4-9` does not silently get
    /// `claude-opus-4`'s prices unless nothing closer exists).
    pub(crate) fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        let stripped = strip_date(model);
        if let Some(p) = self.models.get(stripped) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(k, _)| {
                stripped.len() > k.len() && stripped.starts_with(k.as_str()) && stripped.as_bytes()[k.len()] == b'-'
            })
            // A key one version step away (`claude-opus-4` for `claude-opus-4-9`) would
            // misprice a new model; accept only a suffix that is not a bare version number.
            .filter(|(k, _)| !stripped[k.len() + 1..].chars().all(|c| c.is_ascii_digit()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    }

    /// Cost in USD of one response, or `None` if the model is not priced.
    pub fn cost(&self, model: &str, t: &Tokens, fast: bool) -> Option<f64> {
        let price = self.lookup(model)?;
        let rates = match price.long_context {
            Some(long) if t.prompt() > LONG_CONTEXT_THRESHOLD => long,
            _ => price.base(),
        };
        let one_hour = t.cache_creation_1h.min(t.cache_creation);
        let five_min = t.cache_creation - one_hour;
        let usd = (t.input as f64 * rates.input
            + t.output as f64 * rates.output
            + five_min as f64 * rates.cache_write_5m
            + one_hour as f64 * rates.cache_write_1h
            + t.cache_read as f64 * rates.cache_read)
            / 1e6;
        let multiplier = if fast { price.fast_multiplier.unwrap_or(1.0) } else { 1.0 };
        Some(usd * multiplier)
    }
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
fn strip_date(model: &str) -> &str {
    match model.rsplit_once('-') {
        Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64, cw: u64, cw1h: u64, cr: u64) -> Tokens {
        Tokens { input, output, cache_creation: cw, cache_creation_1h: cw1h, cache_read: cr }
    }

    #[test]
    fn dated_ids_resolve_to_their_family() {
        let t = Table::default();
        assert_eq!(t.lookup("claude-sonnet-4-5-20250929").unwrap().input, 3.0);
        assert_eq!(t.lookup("claude-opus-4-1-20250805").unwrap().input, 15.0);
        assert_eq!(t.lookup("claude-opus-4-20250514").unwrap().output, 75.0);
        assert_eq!(t.lookup("claude-opus-4-7").unwrap().input, 5.0);
        assert_eq!(t.lookup("claude-haiku-4-5-20251001").unwrap().output, 5.0);
        assert!(t.lookup("claude-opus-4-9").is_none(), "a new version is unpriced, not opus-4 priced");
        assert!(t.lookup("gpt-4o").is_none());
    }

    #[test]
    fn cost_uses_published_rates() {
        let t = Table::default();
        // 1M of each kind on Opus 4.5: 5 + 25 + 6.25 (5m) + 0.5.
        let c =
            t.cost("claude-opus-4-5-20251101", &tokens(1_000_000, 1_000_000, 1_000_000, 0, 1_000_000), false).unwrap();
        assert!((c - 36.75).abs() < 1e-9, "{c}");
        // One-hour writes are priced at 2x input.
        let c = t.cost("claude-opus-4-7", &tokens(0, 0, 1_000_000, 1_000_000, 0), false).unwrap();
        assert!((c - 10.0).abs() < 1e-9);
        // Fast mode multiplies the whole cost.
        let c = t.cost("claude-opus-4-6", &tokens(1_000_000, 0, 0, 0, 0), true).unwrap();
        assert!((c - 30.0).abs() < 1e-9);
    }

    #[test]
    fn long_context_reprices_the_whole_request() {
        let t = Table::default();
        let small = t.cost("claude-sonnet-4-5", &tokens(100, 1000, 0, 0, 199_900), false).unwrap();
        assert!((small - (100.0 * 3.0 + 1000.0 * 15.0 + 199_900.0 * 0.3) / 1e6).abs() < 1e-12);
        let big = t.cost("claude-sonnet-4-5", &tokens(100, 1000, 30_000, 0, 180_000), false).unwrap();
        let expect = (100.0 * 6.0 + 1000.0 * 22.5 + 30_000.0 * 7.5 + 180_000.0 * 0.6) / 1e6;
        assert!((big - expect).abs() < 1e-12);
    }

    #[test]
    fn user_file_overrides_and_adds_models() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            "[models.\"my-model\"]\ninput = 1.0\noutput = 2.0\ncache_write_5m = 0.0\ncache_write_1h = 0.0\ncache_read = 0.0\n",
        )
        .unwrap();
        let t = Table::load(Some(&p)).unwrap();
        assert_eq!(t.cost("my-model", &tokens(1_000_000, 0, 0, 0, 0), false), Some(1.0));
        assert!(t.lookup("claude-opus-4-7").is_some());
        std::fs::write(&p, "[models.x]\ninput = \"cheap\"\n").unwrap();
        assert!(matches!(Table::load(Some(&p)), Err(PricingError::Parse { .. })));
    }
}
