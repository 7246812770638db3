//! SCAFFOLD: chatroom (issue 8).

use anyhow::{bail, Result};

use crate::narrate::Narrator;

/// SCAFFOLD
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub role: Role,
}

/// SCAFFOLD
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Role {
    /// SCAFFOLD
    Server {
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        #[arg(long, short, default_value_t = 8888)]
        port: u16,
    },
    /// SCAFFOLD
    Client {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "127.0.0.1:8888")]
        server: String,
    },
}

pub fn run(_nar: &Narrator, _args: &Args) -> Result<()> {
    bail!("SCAFFOLD: not built yet")
}
