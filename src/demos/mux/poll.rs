//! # poll-demo
//!
//! SCAFFOLD: replaced by the issue that builds this command.

use crate::narrate::Narrator;

/// The flags of this demo.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub fn run(_nar: &Narrator, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("`netlab poll-demo` is not built yet")
}
