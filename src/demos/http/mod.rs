//! SCAFFOLD: http-server (issue 7).

use anyhow::{bail, Result};

#[allow(dead_code)] // SCAFFOLD: removed once the server uses it
pub mod exchange;

use crate::narrate::Narrator;

/// SCAFFOLD
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    #[arg(long, short, default_value_t = 8000)]
    pub port: u16,
    #[arg(long)]
    pub root: Option<std::path::PathBuf>,
    #[arg(long, default_value = "epoll")]
    pub model: String,
}

pub fn run(_nar: &Narrator, _args: &Args) -> Result<()> {
    bail!("SCAFFOLD: not built yet")
}
