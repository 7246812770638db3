//! The demos: one file each, to be read top to bottom like the lesson.
//!
//! Every demo is a function `run(&Narrator, &Args) -> anyhow::Result<()>`.
//! It narrates its own system calls, handles EINTR by checking
//! `stop::requested()`, and cleans up before it returns.

pub mod sigpipe;
pub mod tcp_client;
pub mod tcp_server;
