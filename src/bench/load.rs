//! The load generator: many echo connections driven by one thread.
//!
//! One thread and one epoll instance drive every connection, which is the
//! only way a load generator on a small machine stays cheaper than the
//! server it measures (a thread per connection would spend its time in the
//! scheduler). Each *active* connection has exactly one message in flight:
//! send it, wait until the whole echo is back, check it byte for byte, send
//! the next. *Idle* connections are opened first and then left alone; they
//! are what makes select() and poll() slow. At the end every idle connection
//! sends one message, and one that does not get its echo back counts as lost.
//!
//! Phases: connect (non-blocking, a bounded number at a time), the timed
//! run, the idle check. Nothing here allocates per round trip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use serde_json::json;

use super::connect::open_connections;
use super::epoll::{self, Epoll};
use super::histogram::Histogram;
use super::outcome::{measure_server, own_cpu_seconds, Outcome};
use super::server::ServerProcess;
use crate::narrate::{errno_name, Narrator};
use crate::stop;

/// The idle check's message: enough to prove the server still serves the
/// connection, small enough for ten thousand of them.
const IDLE_CHECK_BYTES: usize = 64;
/// How long the idle check waits for the last echo.
const IDLE_CHECK_PATIENCE: Duration = Duration::from_secs(5);

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    /// Connections that echo messages back to back.
    pub active: usize,
    /// Connections opened first and then left idle.
    pub idle: usize,
    pub duration: Duration,
    /// Bytes per message.
    pub size: usize,
}

/// Is this connection one that echoes all the time, or one that waits?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Active,
    Idle,
}

/// One client connection and its message in flight.
pub struct Conn {
    /// None once the connection failed or is finished (and was closed).
    fd: Option<OwnedFd>,
    pub role: Role,
    /// The message being echoed, rewritten for every round trip so that an
    /// echo that belongs to another connection or an older message differs.
    message: Vec<u8>,
    sent: usize,
    received: usize,
    /// When the first byte of this message was sent.
    started: Instant,
    seq: u64,
    round_trips: u64,
    /// Is EPOLLOUT in the interest set (a send did not fit at once)?
    watching_out: bool,
}

impl Conn {
    pub fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Fill `message` with printable letters that depend on the connection and
/// the sequence number, and end it with a newline (friendly to line-based
/// student servers).
fn fill(message: &mut [u8], conn: usize, seq: u64) {
    let seed = (conn as u64)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(seq.wrapping_mul(7919));
    for (index, byte) in message.iter_mut().enumerate() {
        let mixed = seed.wrapping_add((index as u64).wrapping_mul(131)) ^ (seed >> 7);
        *byte = b'a' + (mixed % 26) as u8;
    }
    if let Some(last) = message.last_mut() {
        *last = b'\n';
    }
}

/// Run the load: connect, run for `load.duration`, check the idle ones.
pub fn run(nar: &Narrator, load: &Load, server: Option<&ServerProcess>) -> anyhow::Result<Outcome> {
    let epoll = Epoll::new()?;
    let mut errors = BTreeMap::new();
    let mut ready = Vec::with_capacity(1024);

    // Phase 1: the idle connections first, then the active ones.
    let mut conns: Vec<Conn> = Vec::with_capacity(load.idle + load.active);
    open_connections(nar, load, &epoll, &mut ready, &mut conns, &mut errors);
    let idle_open = conns.iter().filter(|conn| conn.role == Role::Idle).count();
    let active_open = conns.len() - idle_open;

    // Phase 2: the timed run.
    let mut latency = Histogram::new();
    let mut round_trips = 0u64;
    let mut idle_lost = 0usize;
    let mut scratch = vec![0u8; 64 * 1024];
    let cpu_before = server.map(ServerProcess::cpu_ticks);
    let client_before = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut next_progress = started + Duration::from_secs(1);
    let mut interrupted = stop::requested().is_some();

    for (token, conn) in conns.iter_mut().enumerate() {
        if conn.role == Role::Active {
            begin_round_trip(&epoll, token, conn, &mut errors);
        }
    }
    while !interrupted {
        // An atomic load, checked every turn: under load the loop spends
        // most of its time outside epoll_wait, so a Ctrl-C often lands
        // while no call is blocked and no EINTR ever tells us.
        if stop::requested().is_some() {
            interrupted = true;
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_progress {
            progress(nar, started, round_trips, &errors);
            next_progress += Duration::from_secs(1);
            let any_active = conns
                .iter()
                .any(|conn| conn.role == Role::Active && conn.fd.is_some());
            if !any_active {
                break; // every active connection failed: nothing left to measure
            }
        }
        let wait = deadline.min(next_progress).saturating_duration_since(now);
        match epoll.wait(&mut ready, wait.as_millis().min(1000) as i32 + 1) {
            Ok(()) => {}
            Err(Errno::EINTR) => {
                interrupted = stop::requested().is_some();
                continue;
            }
            Err(errno) => return Err(anyhow::anyhow!("epoll_wait failed: {}", errno_name(errno))),
        }
        for event in &ready {
            let token = event.u64 as usize;
            let events = event.events;
            let Some(conn) = conns.get_mut(token) else {
                continue;
            };
            if conn.fd.is_none() {
                continue;
            }
            if conn.role == Role::Idle {
                // An idle connection has nothing to say: anything it
                // reports means the server closed or reset it.
                if idle_is_gone(conn) {
                    close_conn(conn);
                    idle_lost += 1;
                }
                continue;
            }
            if events & epoll::OUT != 0 {
                send_rest(&epoll, token, conn, &mut errors);
            }
            if conn.fd.is_some()
                && events & (epoll::IN | epoll::ERR | epoll::HUP | epoll::RDHUP) != 0
            {
                if let Some(elapsed) = receive(conn, &mut scratch, &mut errors) {
                    latency.record(elapsed.as_nanos() as u64);
                    round_trips += 1;
                    conn.round_trips += 1;
                    conn.seq += 1;
                    begin_round_trip(&epoll, token, conn, &mut errors);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu_seconds = own_cpu_seconds() - client_before;
    let server_usage = measure_server(server, cpu_before);
    // Open, but not one echo in the whole run: the server never served them.
    let stalled = conns
        .iter()
        .filter(|conn| conn.role == Role::Active && conn.fd.is_some() && conn.round_trips == 0)
        .count();

    // The active connections are done; close them before the idle check.
    for conn in conns.iter_mut().filter(|conn| conn.role == Role::Active) {
        close_conn(conn);
    }
    if !interrupted && idle_open > 0 {
        idle_lost += check_idle(nar, load.size, &epoll, &mut ready, &mut conns, &mut scratch);
    }
    Ok(Outcome {
        round_trips,
        seconds,
        latency,
        errors,
        active_open,
        stalled,
        idle_open,
        idle_lost,
        client_cpu_seconds,
        server: server_usage,
        interrupted,
    })
}

fn progress(nar: &Narrator, started: Instant, round_trips: u64, errors: &BTreeMap<String, u64>) {
    let seconds = started.elapsed().as_secs_f64();
    let failed: u64 = errors.values().sum();
    nar.info(
        "progress",
        json!({ "seconds": round1(seconds), "round_trips": round_trips, "errors": failed }),
        format!(
            "{seconds:.0} s: {} round trips so far ({} a second), {failed} errors",
            super::report::thousands(round_trips as f64),
            super::report::thousands(round_trips as f64 / seconds.max(0.001))
        ),
    );
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub fn new_conn(fd: OwnedFd, role: Role, size: usize) -> Conn {
    // Idle connections get their (small) message only for the idle check.
    let message = match role {
        Role::Active => vec![0; size],
        Role::Idle => Vec::new(),
    };
    Conn {
        fd: Some(fd),
        role,
        message,
        sent: 0,
        received: 0,
        started: Instant::now(),
        seq: 0,
        round_trips: 0,
        watching_out: false,
    }
}

pub fn count(errors: &mut BTreeMap<String, u64>, kind: &str) {
    match errors.get_mut(kind) {
        Some(counter) => *counter += 1,
        None => {
            errors.insert(kind.to_string(), 1);
        }
    }
}

/// Close a connection that failed or is done (dropping the OwnedFd closes
/// it, which also takes it out of the epoll set).
fn close_conn(conn: &mut Conn) {
    conn.fd = None;
}

/// Start a round trip: a fresh message, sent as far as the socket takes it.
fn begin_round_trip(
    epoll: &Epoll,
    token: usize,
    conn: &mut Conn,
    errors: &mut BTreeMap<String, u64>,
) {
    fill(&mut conn.message, token, conn.seq);
    conn.sent = 0;
    conn.received = 0;
    conn.started = Instant::now();
    send_rest(epoll, token, conn, errors);
}

/// send() what is left of the message. A short write is normal for a big
/// message: the rest goes when epoll says the socket is writable again.
fn send_rest(epoll: &Epoll, token: usize, conn: &mut Conn, errors: &mut BTreeMap<String, u64>) {
    let Some(fd) = conn.raw() else { return };
    while conn.sent < conn.message.len() {
        // MSG_NOSIGNAL: a reset connection gives EPIPE, not SIGPIPE.
        match send(fd, &conn.message[conn.sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(count) => conn.sent += count,
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                count(errors, errno_name(errno));
                close_conn(conn);
                return;
            }
        }
    }
    let want_out = conn.sent < conn.message.len();
    if want_out != conn.watching_out {
        let interest = if want_out {
            epoll::IN | epoll::OUT
        } else {
            epoll::IN
        };
        if let Err(errno) = epoll.modify(fd, interest, token as u64) {
            count(errors, errno_name(errno));
            close_conn(conn);
            return;
        }
        conn.watching_out = want_out;
    }
}

/// recv() what the server echoed and compare it with what we sent. Returns
/// the round trip's time once the whole echo is back.
fn receive(
    conn: &mut Conn,
    scratch: &mut [u8],
    errors: &mut BTreeMap<String, u64>,
) -> Option<Duration> {
    let fd = conn.raw()?;
    loop {
        match recv(fd, scratch, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => {
                count(errors, "closed by server");
                close_conn(conn);
                return None;
            }
            Ok(got) => {
                let expected = conn.message.get(conn.received..conn.received + got);
                if expected != Some(&scratch[..got]) || conn.received + got > conn.sent {
                    // Wrong bytes, or bytes we have not sent yet: either way
                    // this is not an echo of our message.
                    count(errors, "echo mismatch");
                    close_conn(conn);
                    return None;
                }
                conn.received += got;
                if conn.received == conn.message.len() {
                    return Some(conn.started.elapsed());
                }
            }
            Err(Errno::EAGAIN) => return None,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                count(errors, errno_name(errno));
                close_conn(conn);
                return None;
            }
        }
    }
}

/// An idle connection reported an event: did the server close or reset it?
/// (Data it did not ask for would be a broken echo server; count it lost.)
fn idle_is_gone(conn: &Conn) -> bool {
    let Some(fd) = conn.raw() else { return false };
    let mut byte = [0u8; 1];
    !matches!(
        recv(fd, &mut byte, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK),
        Err(Errno::EAGAIN)
    )
}

/// The idle check: one message on every idle connection that is still
/// open; each must come back intact within IDLE_CHECK_PATIENCE. Returns
/// how many did not.
fn check_idle(
    nar: &Narrator,
    size: usize,
    epoll: &Epoll,
    ready: &mut Vec<libc::epoll_event>,
    conns: &mut [Conn],
    scratch: &mut [u8],
) -> usize {
    // The kinds of failure are not kept apart here: lost is lost.
    let mut errors = BTreeMap::new();
    let (mut waiting, mut lost) = (0usize, 0usize);
    for (token, conn) in conns.iter_mut().enumerate() {
        if conn.role == Role::Idle && conn.fd.is_some() {
            conn.message.resize(size.min(IDLE_CHECK_BYTES), 0);
            begin_round_trip(epoll, token, conn, &mut errors);
            if conn.fd.is_some() {
                waiting += 1;
            } else {
                lost += 1;
            }
        }
    }
    let checked = waiting + lost;
    let deadline = Instant::now() + IDLE_CHECK_PATIENCE;
    while waiting > 0 && Instant::now() < deadline && stop::requested().is_none() {
        match epoll.wait(ready, 100) {
            Ok(()) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        for event in ready.iter() {
            let token = event.u64 as usize;
            let Some(conn) = conns.get_mut(token) else {
                continue;
            };
            if conn.fd.is_none() {
                continue;
            }
            if event.events & epoll::OUT != 0 {
                send_rest(epoll, token, conn, &mut errors);
            }
            let answered = conn.fd.is_some() && receive(conn, scratch, &mut errors).is_some();
            if answered {
                close_conn(conn);
                waiting -= 1;
            } else if conn.fd.is_none() {
                waiting -= 1;
                lost += 1;
            }
        }
    }
    // Whatever is still waiting got no echo in time.
    lost += waiting;
    nar.info(
        "idle_check",
        json!({ "checked": checked, "lost": lost }),
        format!(
            "idle check: {} of {checked} idle connections echoed one message",
            checked - lost
        ),
    );
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_printable_lines_that_differ_by_connection_and_turn() {
        let mut first = vec![0u8; 64];
        let mut other_conn = vec![0u8; 64];
        let mut next_turn = vec![0u8; 64];
        fill(&mut first, 3, 7);
        fill(&mut other_conn, 4, 7);
        fill(&mut next_turn, 3, 8);
        assert!(first[..63].iter().all(u8::is_ascii_lowercase));
        assert_eq!(first[63], b'\n');
        assert_ne!(first, other_conn);
        assert_ne!(first, next_turn);
        let mut one = [0u8; 1];
        fill(&mut one, 0, 0);
        assert_eq!(one, *b"\n");
    }
}
