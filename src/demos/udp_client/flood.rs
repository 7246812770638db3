//! udp-client's `--count` flood: N datagrams back to back, then the
//! replies counted, and what the kernel says it dropped.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use nix::errno::Errno;
use serde_json::json;

use super::{learn_local_address, send_datagram, wait_for_reply, Client, Reply, Tally};
use crate::kernel;
use crate::narrate::text::bytes;
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;

/// --count: send N datagrams as fast as the kernel takes them, then count
/// the replies until one timeout passes without any.
pub(super) fn flood(
    nar: &Narrator,
    client: &mut Client,
    count: u64,
    size: usize,
    tally: &mut Tally,
) {
    nar.note("Flood: the datagrams go out back to back, as fast as sendto() returns. UDP has no flow control: nothing slows the sender down when the receiver cannot keep up.");
    let started = Instant::now();
    let mut send_errors: u64 = 0;
    for number in 1..=count {
        if stop::requested().is_some() {
            break;
        }
        let payload = flood_payload(number, size);
        match send_datagram(nar, client, &payload, true) {
            Ok(_) => tally.sent += 1,
            Err(Errno::EINTR) => {}
            Err(Errno::ECONNREFUSED) => {
                tally.refused += 1;
                send_errors += 1;
            }
            Err(errno) => {
                send_errors += 1;
                tally.failed += 1;
                tally.last_error = Some(errno);
            }
        }
        if client.local.is_none() && tally.sent > 0 {
            learn_local_address(nar, client);
        }
    }
    let sending = started.elapsed();
    if send_errors > 0 {
        nar.warning(
            format!("{send_errors} of the {count} datagrams could not be sent"),
            Some("the failed calls above, or the summary lines, name the errors"),
        );
    }
    nar.info(
        "flood_sent",
        json!({ "sent": tally.sent, "errors": send_errors, "seconds": sending.as_secs_f64() }),
        format!(
            "sent {} datagram(s) of {} in {:.3} s ({send_errors} send error(s)); now counting the replies",
            tally.sent,
            bytes(size),
            sending.as_secs_f64()
        ),
    );

    while tally.replies < tally.sent && stop::requested().is_none() {
        match wait_for_reply(nar, client, true) {
            Reply::Received => tally.replies += 1,
            Reply::Refused => tally.refused += 1,
            Reply::TimedOut | Reply::Stopped => break,
        }
    }
    tally.lost = tally.sent.saturating_sub(tally.replies);
    let fd = client.sock.as_raw_fd();
    let own_drops = match kernel::udp::socket_memory(client.sock.as_fd()) {
        Ok(memory) => {
            nar.kernel_always(Fact::new(
                format!("fd {fd}"),
                "socket_drops",
                json!({ "drops": memory.drops }),
                "getsockopt(SO_MEMINFO)",
                format!("fd {fd}: {} datagram(s) for this client dropped on arrival by the kernel (a full receive buffer)", memory.drops),
            ));
            Some(memory.drops)
        }
        Err(errno) => {
            nar.kernel_always(Fact::unavailable(
                format!("fd {fd}"),
                "socket_drops",
                "getsockopt(SO_MEMINFO)",
                errno_name(errno),
            ));
            None
        }
    };
    nar.info(
        "flood",
        json!({ "sent": tally.sent, "replies": tally.replies, "lost": tally.lost, "refused": tally.refused, "client_drops": own_drops }),
        format!(
            "{} sent, {} replies, {} lost; ECONNREFUSED {} time(s)",
            tally.sent, tally.replies, tally.lost, tally.refused
        ),
    );
    if tally.lost > 0 {
        nar.note("Every missing reply is a datagram or a reply that a kernel dropped on the way, most often because a receive buffer was full. Nobody resent it: reliability is the program's job with UDP. The server's own count tells which side dropped them.");
    }
}

/// "netlab 000001 ......": a numbered datagram of exactly `size` bytes.
fn flood_payload(number: u64, size: usize) -> Vec<u8> {
    let mut payload = format!("netlab {number:06} ").into_bytes();
    payload.resize(size, b'.');
    payload
}
