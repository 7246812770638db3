//! # bench: load an echo server and measure it
//!
//! `netlab bench echo` is a load generator a student can point at any echo
//! server, their own Python one included: many connections, each sending a
//! message and waiting for its echo, every byte checked. It reports round
//! trips a second, latency, errors, and, when it finds the server's process
//! in /proc, the server's CPU time per round trip and its memory.
//!
//! `netlab bench mux` runs select-demo, poll-demo and epoll-demo in turn
//! under the same load, with more and more idle connections, and shows the
//! lesson of the chapter in one chart: select and poll pay for every idle
//! connection on every call, epoll does not.
//!
//! System calls: setrlimit(RLIMIT_NOFILE), socket, connect (non-blocking),
//! epoll_create1, epoll_ctl, epoll_wait, send, recv; /proc/net/tcp,
//! /proc/PID/fd, /proc/PID/stat and /proc/PID/status to find and measure
//! the server.
//!
//! Try it:
//!
//! ```text
//! netlab epoll-demo --quiet --port 8888                 # one terminal
//! netlab bench echo --addr 127.0.0.1:8888 --idle 1000   # another
//! netlab bench mux --idle 0,100,1000 --secs 2
//! ```
//!
//! Lesson: `netlab lesson io-multiplexing`.

mod connect;
mod echo;
mod epoll;
mod histogram;
mod limits;
mod load;
mod mux;
mod outcome;
mod report;
mod server;
mod svg;

use std::net::{IpAddr, SocketAddr};

use crate::error::Failure;
use crate::narrate::Narrator;

/// The flags of `netlab bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// Load one echo server: round trips a second, latency, errors, and the
    /// server's CPU and memory when its process can be found.
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab bench echo --addr 127.0.0.1:8888 --conns 50 --idle 1000 --secs 5"
    )]
    Echo(echo::Args),

    /// Run select-demo, poll-demo and epoll-demo in turn under the same
    /// load, with more and more idle connections, and compare their cost.
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab bench mux --idle 0,100,1000 --secs 2 --csv mux.csv --svg mux.svg"
    )]
    Mux(mux::Args),
}

pub fn run(nar: &Narrator, args: &Args) -> anyhow::Result<()> {
    match &args.mode {
        Mode::Echo(echo_args) => echo::run(nar, echo_args),
        Mode::Mux(mux_args) => mux::run(nar, mux_args),
    }
}

/// Parse `--addr HOST:PORT`. Without `--allow-remote` only loopback
/// addresses are accepted, and no name other than `localhost` is looked up
/// (a lookup could ask a DNS server, and a benchmark floods its target).
pub fn parse_target(text: &str, allow_remote: bool) -> Result<SocketAddr, Failure> {
    let bad = || {
        Failure::new(
            format!("`{text}` is not HOST:PORT"),
            Some("for example --addr 127.0.0.1:8888, or --addr [::1]:8888 for IPv6"),
        )
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return check_loopback(addr, text, allow_remote);
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    if host != "localhost" && !allow_remote {
        return Err(not_loopback(text));
    }
    let addr = crate::sys::resolve(host, port)?;
    check_loopback(addr, text, allow_remote)
}

fn check_loopback(addr: SocketAddr, text: &str, allow_remote: bool) -> Result<SocketAddr, Failure> {
    if addr.port() == 0 {
        return Err(Failure::new(
            format!("`{text}`: port 0 cannot be connected to"),
            Some("give the port the server printed when it started"),
        ));
    }
    if allow_remote || is_loopback(addr.ip()) {
        Ok(addr)
    } else {
        Err(not_loopback(text))
    }
}

/// 127.0.0.0/8, ::1, and 127.x.y.z written as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn not_loopback(text: &str) -> Failure {
    Failure::new(
        format!("refusing to load `{text}`: it is not a loopback address"),
        Some("a benchmark floods its target; it runs against 127.0.0.1 or ::1 unless you add --allow-remote for a machine you are responsible for"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_without_allow_remote() {
        assert!(parse_target("127.0.0.1:8888", false).is_ok());
        assert!(parse_target("127.3.2.1:8888", false).is_ok());
        assert!(parse_target("[::1]:8888", false).is_ok());
        assert!(parse_target("[::ffff:127.0.0.1]:8888", false).is_ok());
        assert!(parse_target("localhost:8888", false).is_ok());
        assert!(parse_target("10.0.0.1:8888", false).is_err());
        assert!(parse_target("[2001:db8::1]:8888", false).is_err());
        // A name is refused before it is looked up.
        assert!(parse_target("example.invalid:80", false).is_err());
        assert!(parse_target("10.0.0.1:8888", true).is_ok());
    }

    #[test]
    fn malformed_targets_are_refused() {
        for text in [
            "",
            "8888",
            "127.0.0.1",
            "127.0.0.1:",
            ":8888",
            "127.0.0.1:99999",
            "127.0.0.1:0",
        ] {
            assert!(parse_target(text, false).is_err(), "{text}");
        }
    }
}
