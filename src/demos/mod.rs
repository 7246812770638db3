//! The demos: one file each, to be read top to bottom like the lesson.
//!
//! Every demo is a function `run(&Narrator, &Args) -> anyhow::Result<()>`.
//! It narrates its own system calls, handles EINTR by checking
//! `stop::requested()`, and cleans up before it returns.

pub mod accept;
pub mod broadcast;
pub mod byteorder;
pub mod chatroom;
pub mod children;
pub mod fork_demo;
pub mod http;
pub mod io_demo;
pub mod lookup;
pub mod mux;
pub mod orphan;
pub mod sigpipe;
pub mod sockinfo;
pub mod stdin_lines;
pub mod sticky;
pub mod tcp_client;
pub mod tcp_models;
pub mod tcp_server;
pub mod udp_client;
pub mod udp_server;
pub mod unix;
pub mod zombie;
