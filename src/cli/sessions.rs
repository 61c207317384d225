//! `sessions` (to be implemented).

use clap::Args;

#[derive(Debug, Args)]
pub struct SessionsArgs {}

pub fn run(_args: SessionsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
