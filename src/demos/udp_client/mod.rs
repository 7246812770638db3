//! # udp-client: send a datagram, and maybe hear back
//!
//! The UDP client of the course, and the questions UDP leaves to you. There
//! is no handshake: the first sendto() already carries data, and the kernel
//! binds a port for us on the way. A reply may never come, and UDP will not
//! say why, so every wait has a timeout. With --connect the socket is tied
//! to the server: datagrams from anyone else are filtered out, and the ICMP
//! "port unreachable" a closed port sends back becomes ECONNREFUSED on the
//! next call; without it the same situation is silence until the timeout.
//! With --count the client floods the server and counts what came back.
//!
//! System calls, in order: socket(SOCK_DGRAM), setsockopt(SO_RCVTIMEO),
//! connect with --connect, then for each message: sendto (send when
//! connected), getsockname after the first one, recvfrom (recv when
//! connected) until the reply or the timeout; close.
//!
//! Try it (with `netlab udp-server --port 9999` in another terminal):
//!
//! ```text
//! netlab udp-client --port 9999 --message hello --message ""
//! netlab udp-client --port 9998 --message anyone            # nobody there
//! netlab udp-client --port 9998 --message anyone --connect  # ECONNREFUSED
//! netlab udp-client --port 9999 --count 500 --size 200
//! ```
//!
//! Lesson: `netlab lesson udp`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    connect, recv, send, sendto, setsockopt, socket, sockopt, MsgFlags, SockFlag, SockType,
};
use nix::sys::time::TimeVal;
use serde_json::json;

use super::stdin_lines;
use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::kernel::{self, snmp};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;
use crate::sys;

mod flood;
use flood::flood;

const SHOW_CHARS: usize = 60;

/// The largest UDP payload over IPv4: 65535 minus the IP and UDP headers.
const MAX_DATAGRAM: usize = 65_507;

/// Datagrams from strangers tolerated while waiting for one reply.
const MAX_STRANGERS: u32 = 16;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The server's address (an IP address or a host name).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The server's port.
    #[arg(long, short, default_value_t = 8888)]
    pub port: u16,

    /// Send this text as one datagram (repeat the flag for several; "" sends
    /// an empty datagram). Without it, each line typed on standard input is
    /// one datagram, until Ctrl-D.
    #[arg(long, short, value_name = "TEXT", conflicts_with = "count")]
    pub message: Vec<String>,

    /// How long to wait for each reply (SO_RCVTIMEO). A reply that does not
    /// come in time is reported as lost, and the client goes on.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_timeout)]
    pub timeout: f64,

    /// Flood: send N datagrams as fast as possible, then count the replies.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: Option<u64>,

    /// The size of each flood datagram, in bytes.
    #[arg(long, value_name = "B", default_value_t = 64, requires = "count", value_parser = clap::value_parser!(u32).range(0..=65_507))]
    pub size: u32,

    /// connect() the UDP socket to the server: only its datagrams are
    /// received, and a closed port shows up as ECONNREFUSED.
    #[arg(long)]
    pub connect: bool,
}

/// A timeout in seconds, more than 0 (0 would mean "wait for ever").
fn parse_timeout(text: &str) -> Result<f64, String> {
    match parse_seconds(text)? {
        secs if secs >= 0.001 => Ok(secs),
        _ => Err(format!(
            "`{text}` is too short: give at least 0.001 seconds"
        )),
    }
}

/// The socket and what we learned about it.
struct Client {
    sock: OwnedFd,
    server: SocketAddr,
    connected: bool,
    /// Our address, known after connect() or the first sendto().
    local: Option<SocketAddr>,
    timeout: f64,
}

/// What came back, over the whole run.
#[derive(Default)]
struct Tally {
    sent: u64,
    replies: u64,
    lost: u64,
    refused: u64,
    /// Sends that failed for another reason (EINVAL, EMSGSIZE, ...), and
    /// the last such error.
    failed: u64,
    last_error: Option<Errno>,
}

/// How one wait for a reply ended.
enum Reply {
    Received,
    TimedOut,
    Refused,
    Stopped,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "udp-client",
        "udp",
        "A UDP client: sendto, a reply that may never come, and what connect() changes for UDP.",
    );
    let server = sys::resolve(&args.host, args.port)?;
    let mut client = open_socket(nar, args, server)?;
    let mut tally = Tally::default();

    if let Some(count) = args.count {
        flood(nar, &mut client, count, args.size as usize, &mut tally);
    } else if args.message.is_empty() {
        // Interactive: each line typed is one datagram.
        let how = "Type a line and press Enter to send it as one datagram; Ctrl-D ends the input.";
        stdin_lines::send_each_line(nar, how, |line| {
            exchange(nar, &mut client, line, &mut tally);
            true
        })?;
    } else {
        for message in &args.message {
            if stop::requested().is_some() {
                break;
            }
            exchange(nar, &mut client, message.as_bytes(), &mut tally);
        }
    }

    let fd = client.sock.as_raw_fd();
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(client.sock), |_| "0".into())?;
    nar.note("The socket is closed. The server is not told: UDP has no connection, so there is nothing to close on its side.");

    if stop::requested().is_none() && tally.sent == 0 && tally.refused == 0 {
        if let Some(errno) = tally.last_error {
            return Err(Failure::with_hint(
                format!(
                    "no datagram could be sent to {server}: sendto() failed with {} ({})",
                    errno_name(errno),
                    errno.desc()
                ),
                match errno {
                    Errno::EINVAL if server.port() == 0 => {
                        "port 0 is not a destination: give the server's port with --port"
                            .to_string()
                    }
                    Errno::EMSGSIZE => {
                        "one datagram holds at most 65507 bytes over IPv4: send less".to_string()
                    }
                    _ => "the failed calls above say what the kernel refused".to_string(),
                },
            )
            .into());
        }
    }
    let tried = tally.sent + tally.refused;
    if stop::requested().is_none() && tried > 0 && tally.replies == 0 {
        let port = server.port();
        return Err(if tally.refused > 0 {
            Failure::with_hint(
                format!("nothing is bound to {server}: the kernel there answered with ICMP port unreachable (ECONNREFUSED)"),
                format!("start a server first, e.g. `netlab udp-server --port {port}`"),
            )
        } else {
            Failure::with_hint(
                format!("no reply from {server} to any of {} datagram(s)", tally.sent),
                format!("is a server running there? e.g. `netlab udp-server --port {port}`; --connect shows whether the port is closed"),
            )
        }
        .into());
    }
    Ok(())
}

/// socket, SO_RCVTIMEO, and connect() with --connect.
fn open_socket(nar: &Narrator, args: &Args, server: SocketAddr) -> Result<Client> {
    let step = nar.call(
        "socket",
        format!("{}, SOCK_DGRAM, 0", sys::family_name(&server)),
    );
    let sock = step.check(
        socket(
            sys::family_of(&server),
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = sock.as_raw_fd();

    // A reply may never come: without a timeout, recvfrom() would wait for ever.
    let step = nar.call(
        "setsockopt",
        format!("fd {fd}, SOL_SOCKET, SO_RCVTIMEO, {} s", args.timeout),
    );
    let timeval = TimeVal::from(libc::timeval {
        tv_sec: args.timeout.trunc() as libc::time_t,
        tv_usec: (args.timeout.fract() * 1e6) as libc::suseconds_t,
    });
    step.check(setsockopt(&sock, sockopt::ReceiveTimeout, &timeval), |_| {
        "0".into()
    })?;
    nar.note("SO_RCVTIMEO limits how long a receive waits; then it fails with EAGAIN. A UDP client needs it: a lost datagram is never announced, only noticed by its missing reply.");

    let mut client = Client {
        sock,
        server,
        connected: false,
        local: None,
        timeout: args.timeout,
    };
    if args.connect {
        let step = nar.call("connect", format!("fd {fd}, {server}"));
        match connect(fd, &sys::to_kernel(server)) {
            Ok(()) => step.ok("0"),
            Err(errno) => {
                step.fail(errno);
                return Err(Failure::new(
                    format!(
                        "connect({server}) failed: {} ({})",
                        errno_name(errno),
                        errno.desc()
                    ),
                    Some("check the address; `ip route` shows where this machine can send"),
                )
                .into());
            }
        }
        nar.note("connect() on a UDP socket sends nothing and no server is asked. The kernel only records the peer: send() now goes there, only its datagrams are received, and an ICMP error about it is reported to us.");
        client.connected = true;
        learn_local_address(nar, &mut client);
    } else {
        nar.note("No connect(): every sendto() names the server, and the socket accepts datagrams from anyone.");
    }
    Ok(client)
}

/// getsockname(), and the socket's line in /proc/net/udp.
fn learn_local_address(nar: &Narrator, client: &mut Client) {
    let fd = client.sock.as_raw_fd();
    let step = nar.call("getsockname", format!("fd {fd}"));
    let Ok(local) = step.check(sys::local_addr(fd), |addr| addr.to_string()) else {
        return;
    };
    client.local = Some(local);
    if client.connected {
        nar.note("connect() bound the socket to a local address and an ephemeral port, without sending a single packet.");
    } else {
        nar.note("The first sendto() bound the socket to an ephemeral port: the server needs an address to answer to.");
    }
    let table = kernel::udp::table_of(&local);
    match kernel::udp::udp_socket_of(client.sock.as_fd()) {
        Ok(entry) => nar.kernel(Fact::new(
            format!("fd {fd}"),
            "udp_socket",
            json!({ "local": entry.local.to_string(), "remote": entry.remote.to_string(), "connected": entry.connected }),
            table,
            if entry.connected {
                format!("fd {fd} is listed as {} <-> {}, state 01 (ESTABLISHED): UDP borrows the word, but no handshake happened", entry.local, entry.remote)
            } else {
                format!("fd {fd} is listed as {} with no remote address: it takes datagrams from anyone", entry.local)
            },
        )),
        Err(err) => nar.kernel(Fact::unavailable(format!("fd {fd}"), "udp_socket", table, err)),
    }
    nar.info(
        "bound",
        json!({ "local": local.to_string(), "server": client.server.to_string(), "connected": client.connected }),
        format!("this client is {local}; the server is {}", client.server),
    );
}

/// Send one datagram and wait for one reply (or its absence).
fn exchange(nar: &Narrator, client: &mut Client, message: &[u8], tally: &mut Tally) {
    if message.is_empty() {
        nar.note("An empty datagram is still a datagram: it has a sender and a destination, the server receives it, and can answer.");
    }
    // The counters before, to show whether an ICMP "port unreachable" came back.
    let family = snmp::Family::of(&client.server);
    let before = read_unreachable_counters(family);
    match send_datagram(nar, client, message, false) {
        Ok(_) => tally.sent += 1,
        // An earlier datagram's ICMP error: this one was not sent.
        Err(Errno::ECONNREFUSED) => {
            tally.refused += 1;
            return;
        }
        Err(Errno::EINTR) => return,
        Err(errno) => {
            tally.failed += 1;
            tally.last_error = Some(errno);
            return;
        }
    }
    if client.local.is_none() {
        learn_local_address(nar, client);
    }
    match wait_for_reply(nar, client, false) {
        Reply::Received => tally.replies += 1,
        Reply::TimedOut => {
            tally.lost += 1;
            if client.connected {
                nar.note("No reply and no error: the server may be busy, or the datagram or its reply was lost. UDP does not send it again.");
            } else {
                nar.note("No reply within the timeout, and UDP cannot say why: the datagram or the reply was lost, or nothing listens on that port. Even when the server's kernel answers with ICMP port unreachable, an unconnected socket is not told; --connect would be.");
            }
            show_unreachable_growth(nar, before.as_ref(), client.connected, family);
        }
        Reply::Refused => {
            tally.refused += 1;
            show_unreachable_growth(nar, before.as_ref(), client.connected, family);
        }
        Reply::Stopped => {}
    }
}

/// sendto() (send() when connected). Returns the bytes sent, or the errno.
/// In a flood (`flood` true) failures are counted by the caller, not warned
/// about one by one.
fn send_datagram(
    nar: &Narrator,
    client: &Client,
    data: &[u8],
    flood: bool,
) -> Result<usize, Errno> {
    let fd = client.sock.as_raw_fd();
    let shown = show_bytes(data, SHOW_CHARS);
    let (step, sent) = if client.connected {
        let step = nar.call(
            "send",
            format!("fd {fd}, {}: {shown}, 0", bytes(data.len())),
        );
        (step, send(fd, data, MsgFlags::empty()))
    } else {
        let step = nar.call(
            "sendto",
            format!("fd {fd}, {}: {shown}, {}", bytes(data.len()), client.server),
        );
        let to = sys::to_kernel(client.server);
        (step, sendto(fd, data, &to, MsgFlags::empty()))
    };
    match sent {
        Ok(count) => {
            step.ok_value(count as i64, bytes(count));
            nar.count("bytes_out", count as u64);
            Ok(count)
        }
        Err(errno) => {
            step.fail(errno);
            match errno {
                Errno::ECONNREFUSED => nar.note("ECONNREFUSED on a send: an ICMP port unreachable for an earlier datagram was waiting in the socket, and this call reported it. This datagram was not sent."),
                Errno::EMSGSIZE => nar.note("EMSGSIZE: one UDP datagram carries at most 65507 bytes over IPv4. UDP never splits a message; a larger one must be cut by the program."),
                Errno::EINTR => {}
                _ if flood => {}
                _ => nar.warning(format!("sending failed with {}; the client goes on", errno_name(errno)), None),
            }
            Err(errno)
        }
    }
}

/// recvfrom() (recv() when connected) until a reply from the server, the
/// timeout, or an error. Datagrams from other senders are shown and skipped.
/// In a flood (`flood` true) replies are counted for the summary instead of
/// announced one by one.
fn wait_for_reply(nar: &Narrator, client: &Client, flood: bool) -> Reply {
    let fd = client.sock.as_raw_fd();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut strangers = 0;
    loop {
        let wait = format!(
            "waiting up to {} s for a reply from {}",
            client.timeout, client.server
        );
        let step = if client.connected {
            nar.blocking("recv", format!("fd {fd}, {}, 0", bytes(buf.len())), wait)
        } else {
            nar.blocking("recvfrom", format!("fd {fd}, {}", bytes(buf.len())), wait)
        };
        let received = receive_one(fd, &mut buf, client);
        match received {
            Ok((length, from)) => {
                let shown = match length {
                    0 => "an empty datagram".to_string(),
                    _ => show_bytes(&buf[..length], SHOW_CHARS),
                };
                step.ok_value(
                    length as i64,
                    format!("{} from {from}: {shown}", bytes(length)),
                );
                if from != client.server {
                    strangers += 1;
                    if flood {
                        nar.count("strangers", 1);
                    } else {
                        nar.info(
                            "stranger",
                            json!({ "from": from.to_string(), "bytes": length }),
                            format!("a datagram from {from}, not from the server: not our reply"),
                        );
                        nar.note("An unconnected UDP socket receives from anyone who knows its port, so the sender's address must be checked. A connected socket would have filtered this datagram out in the kernel.");
                    }
                    if strangers >= MAX_STRANGERS {
                        return Reply::TimedOut;
                    }
                    continue;
                }
                if flood {
                    nar.count("replies", 1);
                } else {
                    nar.info(
                        "reply",
                        json!({ "bytes": length, "from": from.to_string() }),
                        format!("the server answered {}", bytes(length)),
                    );
                }
                return Reply::Received;
            }
            Err(Errno::EAGAIN) => {
                step.fail(Errno::EAGAIN);
                nar.info(
                    "no_reply",
                    json!({ "timeout": client.timeout, "connected": client.connected }),
                    format!("no reply within {} s", client.timeout),
                );
                return Reply::TimedOut;
            }
            Err(Errno::ECONNREFUSED) => {
                step.fail(Errno::ECONNREFUSED);
                nar.note("ECONNREFUSED: the server's kernel answered our datagram with ICMP port unreachable, because nothing is bound to that port. Only a connected UDP socket is told, and only on its next call.");
                return Reply::Refused;
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    return Reply::Stopped;
                }
            }
            Err(errno) => {
                step.fail(errno);
                nar.warning(
                    format!(
                        "receiving failed with {}; the client goes on",
                        errno_name(errno)
                    ),
                    None,
                );
                return Reply::TimedOut;
            }
        }
    }
}

/// One recvfrom() or recv(): the length and the sender.
fn receive_one(fd: RawFd, buf: &mut [u8], client: &Client) -> Result<(usize, SocketAddr), Errno> {
    if client.connected {
        // Only the connected peer's datagrams reach this socket.
        let length = recv(fd, buf, MsgFlags::empty())?;
        return Ok((length, client.server));
    }
    sys::recvfrom(fd, buf)
}

/// The counters that move when a datagram meets a closed port.
/// For IPv6 they are Udp6 NoPorts and Icmp6 InDestUnreachs, in /proc/net/snmp6.
fn read_unreachable_counters(family: snmp::Family) -> Option<(snmp::Counters, snmp::Counters)> {
    Some((
        snmp::read_counters_of(family, "Udp").ok()?,
        snmp::read_counters_of(family, "Icmp").ok()?,
    ))
}

/// How Udp NoPorts and Icmp InDestUnreachs grew since `before`: evidence
/// that a closed port answered, whether or not the socket was told.
fn show_unreachable_growth(
    nar: &Narrator,
    before: Option<&(snmp::Counters, snmp::Counters)>,
    connected: bool,
    family: snmp::Family,
) {
    let subject = "this network namespace";
    let (Some((udp_before, icmp_before)), Some((udp_now, icmp_now))) =
        (before, read_unreachable_counters(family))
    else {
        nar.kernel(Fact::unavailable(
            subject,
            "unreachable_growth",
            family.path(),
            "the Udp or Icmp counters could not be read",
        ));
        return;
    };
    let no_ports = snmp::counter(&snmp::growth(udp_before, &udp_now), "NoPorts");
    let unreachable = snmp::counter(&snmp::growth(icmp_before, &icmp_now), "InDestUnreachs");
    nar.kernel(Fact::new(
        subject,
        "unreachable_growth",
        json!({ "NoPorts": no_ports, "InDestUnreachs": unreachable }),
        family.path(),
        format!(
            "since the send: {} NoPorts +{no_ports} (datagrams for a port nobody had bound), {} InDestUnreachs +{unreachable} (\"unreachable\" answers received); other programs may add to both",
            family.protocol("Udp"),
            family.protocol("Icmp")
        ),
    ));
    if no_ports > 0 && unreachable > 0 && !connected {
        nar.note("So the port was closed and the kernel did answer with ICMP port unreachable. The answer reached this machine, but an unconnected UDP socket is not told of it.");
    }
}
