//! udp-server's loss reports: how many datagrams the kernel dropped, read
//! from the socket (SO_MEMINFO, the drops column of /proc/net/udp) and from
//! the namespace's UDP counters in /proc/net/snmp.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Tally;
use crate::kernel::{self, snmp};
use crate::narrate::{Fact, Narrator};

/// After each datagram, ask the kernel (getsockopt(SO_MEMINFO), one cheap
/// call) whether it dropped any since the last report. Report them when the
/// receive queue has drained, which is when a flood is over (at most four
/// times a second, for a server that keeps catching up), or a second after
/// the first unreported drop while the queue stays full. The end of the run
/// always reports.
pub(super) fn report_drops_when_due(
    nar: &Narrator,
    sock: &OwnedFd,
    table: &'static str,
    tally: &mut Tally,
    before: Option<&snmp::Counters>,
    family: snmp::Family,
) {
    let Ok(memory) = kernel::udp::socket_memory(sock.as_fd()) else {
        return;
    };
    if u64::from(memory.drops) <= tally.drops_reported {
        return;
    }
    let waiting = *tally.unreported_since.get_or_insert_with(Instant::now);
    let drained = memory.rmem_alloc == 0
        && tally
            .last_report
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(250));
    if drained || waiting.elapsed() >= Duration::from_secs(1) {
        report_drops(nar, sock, table, tally, before, family);
    }
}

/// The loss report: the socket's drop counter in /proc/net/udp, and how the
/// namespace's UDP counters grew since the server started.
pub(super) fn report_drops(
    nar: &Narrator,
    sock: &OwnedFd,
    table: &'static str,
    tally: &mut Tally,
    before: Option<&snmp::Counters>,
    family: snmp::Family,
) {
    tally.last_report = Some(Instant::now());
    tally.unreported_since = None;
    let subject = format!("fd {}", sock.as_raw_fd());
    let entry = match kernel::udp::udp_socket_of(sock.as_fd()) {
        Ok(entry) => entry,
        Err(err) => {
            let fact = Fact::unavailable(subject, "socket_drops", table, err);
            nar.kernel_always(fact);
            return;
        }
    };
    let drops = entry.drops.max(tally.drops_seen);
    tally.drops_reported = drops;
    nar.kernel_always(Fact::new(
        &subject,
        "socket_drops",
        json!({ "drops": entry.drops, "rxq_ovfl": tally.drops_seen, "rx_queue": entry.rx_queue }),
        table,
        format!(
            "{subject}: {} datagram(s) dropped since the socket was created (its drops column)",
            entry.drops
        ),
    ));
    if drops > 0 {
        nar.note("Those datagrams arrived while the receive buffer was full, so the kernel threw them away. The senders were not told: for them, sendto() succeeded.");
    }
    if let Some(before) = before {
        if let Ok(now) = snmp::read_counters_of(family, "Udp") {
            let grown = snmp::growth(before, &now);
            nar.kernel_always(Fact::new(
                "this network namespace",
                "udp_counters_growth",
                json!(snmp::only(&grown, &LESSON_COUNTERS)),
                family.path(),
                format!(
                    "since this server started: {} InDatagrams +{}, RcvbufErrors +{}, InErrors +{} (every UDP socket here adds to them)",
                    family.protocol("Udp"),
                    snmp::counter(&grown, "InDatagrams"),
                    snmp::counter(&grown, "RcvbufErrors"),
                    snmp::counter(&grown, "InErrors")
                ),
            ));
        }
    }
}

/// Read and narrate the namespace's UDP counters; `when` says when.
pub(super) fn udp_counters(
    nar: &Narrator,
    when: &str,
    family: snmp::Family,
) -> Option<snmp::Counters> {
    match snmp::read_counters_of(family, "Udp") {
        Ok(counters) => {
            nar.kernel(Fact::new(
                "this network namespace",
                "udp_counters",
                json!(snmp::only(&counters, &LESSON_COUNTERS)),
                family.path(),
                format!(
                    "{} counters {when}: InDatagrams {}, NoPorts {}, InErrors {}, RcvbufErrors {}",
                    family.protocol("Udp"),
                    snmp::counter(&counters, "InDatagrams"),
                    snmp::counter(&counters, "NoPorts"),
                    snmp::counter(&counters, "InErrors"),
                    snmp::counter(&counters, "RcvbufErrors")
                ),
            ));
            Some(counters)
        }
        Err(err) => {
            nar.kernel(Fact::unavailable(
                "this network namespace",
                "udp_counters",
                family.path(),
                err,
            ));
            None
        }
    }
}

/// The counters the UDP lesson talks about.
const LESSON_COUNTERS: [&str; 5] = [
    "InDatagrams",
    "NoPorts",
    "InErrors",
    "RcvbufErrors",
    "OutDatagrams",
];
