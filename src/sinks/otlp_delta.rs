//! The delta-temporality baseline: what the last delivered delta export
//! counted, per series, owned by the OTLP sink and durable on its own.
//!
//! Written atomically to `<state>/otlp-delta.json` (temporary file, fsync,
//! rename, fsync of the folder) right after each delivered export, before the
//! next one is built: a `kill -9` at any point leaves either the old baseline
//! (the increase is sent again only if it was never acknowledged) or the new one
//! (never sent twice). Before this file existed the baseline was kept in the
//! checkpoint (`aggregator.otlp_sent`); it is read from there once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name in the state folder.
pub const FILE_NAME: &str = "otlp-delta.json";

/// Cumulative values as of the last delivered delta export, by series key
/// (metric name and attributes), and when that export was built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// When the delivered export was built (ms since the epoch); 0 = never.
    pub at_ms: i64,
    /// Monotonic sums.
    pub sums: HashMap<String, f64>,
    /// Histograms: bucket counts, sum, count.
    pub histograms: HashMap<String, (Vec<u64>, f64, u64)>,
}

/// The baseline's file (or none, for a sink without a state folder).
#[derive(Debug, Clone)]
pub struct Store {
    path: Option<PathBuf>,
}

impl Store {
    /// The baseline kept in `state_dir` (`None`: in memory only).
    pub fn new(state_dir: Option<&Path>) -> Store {
        Store { path: state_dir.map(|d| d.join(FILE_NAME)) }
    }

    /// The saved baseline; else the one an older release kept in the checkpoint;
    /// else none. An unreadable file is logged and treated as none.
    pub fn load(&self) -> Sent {
        let Some(path) = &self.path else { return Sent::default() };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "OTLP delta baseline unreadable; starting afresh.");
                Sent::default()
            }),
            Err(_) => Self::from_checkpoint(path.with_file_name("checkpoint.json")),
        }
    }

    fn from_checkpoint(path: PathBuf) -> Sent {
        #[derive(Deserialize)]
        struct Old {
            aggregator: OldAgg,
        }
        #[derive(Deserialize)]
        struct OldAgg {
            #[serde(default)]
            otlp_sent: Sent,
        }
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Old>(&b).ok())
            .map(|o| o.aggregator.otlp_sent)
            .unwrap_or_default()
    }

    /// Replace the saved baseline with `sent`, atomically.
    pub fn save(&self, sent: &Sent) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(sent).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_baseline_is_loaded_back_and_an_old_checkpoints_is_read_once() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(Some(d.path()));
        assert_eq!(store.load(), Sent::default());
        // An older release's checkpoint holds the baseline.
        std::fs::write(
            d.path().join("checkpoint.json"),
            r#"{"aggregator":{"otlp_sent":{"at_ms":5,"sums":{"a":1.0},"histograms":{}}}}"#,
        )
        .unwrap();
        assert_eq!(store.load().sums["a"], 1.0);
        let mut sent = Sent { at_ms: 9, ..Sent::default() };
        sent.sums.insert("a".into(), 2.0);
        sent.histograms.insert("h".into(), (vec![1, 0], 0.5, 1));
        store.save(&sent).unwrap();
        assert_eq!(store.load(), sent, "the sink's own file wins over the checkpoint");
        assert!(!d.path().join("otlp-delta.json.tmp").exists());
        Store::new(None).save(&sent).unwrap();
    }
}
