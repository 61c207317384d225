//! `watch` (to be implemented).

use clap::Args;

#[derive(Debug, Args)]
pub struct WatchArgs {}

pub fn run(_args: WatchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
