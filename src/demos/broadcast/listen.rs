//! `netlab broadcast listen`: bind 0.0.0.0 on a shared port and print each
//! datagram with its sender, until Ctrl-C or `--count`.

use std::os::fd::AsRawFd;

use anyhow::Result;
use nix::errno::Errno;
use serde_json::json;

use super::sockets::{open_listener, receive};
use super::{DATAGRAM_MAX, SHOW_CHARS};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
use crate::stop;

/// The flags of `broadcast listen`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// The port to listen on (several listeners may share it); 0 lets the kernel pick one.
    #[arg(long, short, default_value_t = 9999)]
    pub port: u16,

    /// Exit after this many datagrams.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

pub fn run(nar: &Narrator, args: &ListenArgs) -> Result<()> {
    nar.start(
        "broadcast listen",
        "broadcast",
        "A UDP listener on a shared port: it receives the broadcasts sent to its subnet, with each sender's address.",
    );
    let (fd, bound) = open_listener(nar, args.port, None)?;
    nar.note("Bound to 0.0.0.0 with SO_REUSEADDR: this socket receives datagrams for the port on every interface, broadcasts included, and other listeners may bind the same port.");
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port() }),
        format!(
            "listening on UDP {bound}; try: netlab broadcast send --port {}",
            bound.port()
        ),
    );

    let raw = fd.as_raw_fd();
    let mut heard: u64 = 0;
    while stop::requested().is_none() && args.count.is_none_or(|max| heard < max) {
        let step = nar.blocking(
            "recvfrom",
            format!("fd {raw}, {}, 0", bytes(DATAGRAM_MAX)),
            "waiting for a datagram",
        );
        match receive(raw) {
            Ok((data, from)) => {
                heard += 1;
                step.ok_value(
                    data.len() as i64,
                    format!(
                        "{} from {from}: {}",
                        bytes(data.len()),
                        show_bytes(&data, SHOW_CHARS)
                    ),
                );
                nar.count("datagrams_in", 1);
                if data.is_empty() {
                    nar.note("A 0-byte datagram: valid in UDP, where each datagram stands alone. (For TCP, reading 0 bytes would mean the end of the stream.)");
                }
                nar.info(
                    "datagram",
                    json!({ "listener": null, "fd": raw, "from": from.to_string(), "bytes": data.len(), "text": show_bytes(&data, SHOW_CHARS) }),
                    format!("datagram {heard} from {from}"),
                );
            }
            Err(Errno::EINTR) => step.fail(Errno::EINTR),
            Err(errno) => {
                // A UDP socket has no connection to lose: report and go on.
                step.fail(errno);
                nar.warning(
                    format!(
                        "recvfrom() failed with {}; listening goes on",
                        crate::narrate::errno_name(errno)
                    ),
                    None,
                );
            }
        }
    }

    let step = nar.call("close", format!("fd {raw}"));
    step.check(nix::unistd::close(fd), |_| "0".into())?;
    Ok(())
}
