//! The chat server: bind, fork the console reader, then the receive loop.
//!
//! `run` opens the socket and the console's own socket, forks, and hands
//! the parent to `serve` and the child to `console` (in `console.rs`).
//! `serve` blocks SIGCHLD, then waits in ppoll() (which lets SIGCHLD in
//! only while it waits) and reads one datagram at a time; `handle` decides
//! what it means: the checks that student versions forget (is this sender
//! really that user?) are in `check_sender`. `shut_down` tells every user, then ends and reaps the
//! console process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{bind, socket, MsgFlags, SockFlag, SockType};
use nix::sys::time::TimeSpec;
use serde_json::json;

use super::console::{console, open_console_socket};
use super::protocol::{parse_request, Refusal, Request, ADMIN, MAX_DATAGRAM};
use super::{is_transient, local_destination, recv_datagram, send_datagram_if, show_process};
use crate::demos::children::{self, Forked, ForkedChild, SigchldReap};
use crate::error::Failure;
use crate::kernel;
use crate::narrate::{errno_name, Narrator};
use crate::stop;
use crate::sys;

/// The receive loop's state: the socket, who is logged in, and the console.
struct Room {
    fd: RawFd,
    /// Each user's name and the address their datagrams come from. Sorted,
    /// so `USERS` and the narration list names in a stable order.
    users: BTreeMap<String, SocketAddr>,
    /// The console process's socket address: the only sender allowed to
    /// speak as `admin`.
    console_addr: SocketAddr,
    /// The console process, until it has been reaped.
    console: Option<ForkedChild>,
    /// Was the datagram being handled narrated? Its replies are narrated
    /// only if it was (under load the throttle hides most steps).
    shown: bool,
}

impl Room {
    /// Send one reply of the datagram being handled.
    fn send(&self, nar: &Narrator, datagram: &str, to: SocketAddr) {
        send_datagram_if(nar, self.fd, datagram, to, self.shown);
    }
}

pub(super) fn run(nar: &Narrator, host: &str, port: u16) -> Result<()> {
    nar.start(
        "chatroom server",
        "chatroom",
        "The course's UDP chat server: one socket, a map from names to addresses, and a forked console that speaks as admin.",
    );
    // Until the fork, nothing needs cleaning up: `q` at a --step pause
    // ends the run before the call it shows.
    nar.may_end_at_any_step();
    let wanted = sys::resolve(host, port)?;
    let (sock, bound) = open_socket(nar, wanted)?;

    // The console's socket is made before fork(), so that the parent knows
    // its address: a `C admin ...` from anywhere else is refused.
    let console_target = local_destination(bound);
    let (console_sock, console_addr) =
        open_console_socket(nar, console_target, bound.ip().is_unspecified())?;

    // SIGCHLD interrupts the loop's ppoll() (no SA_RESTART) when the
    // console ends, and its handler reaps it, so the loop can say so and
    // go on.
    children::install_sigchld(nar, SigchldReap::Loop)?;
    nar.note("When the console process ends (end of input on the console), the kernel sends SIGCHLD; the handler reaps it with waitpid(), and the receive loop's ppoll() returns EINTR so the loop can say what happened.");

    let parent = nix::unistd::getpid();
    match children::fork(nar, "one process for the console, one for the receive loop")? {
        Forked::Child => {
            drop(sock);
            console(nar, parent, console_sock, console_target)
        }
        Forked::Parent { child } => {
            // Now there is a child to end and reap: `q` stops as Ctrl-C does.
            nar.must_clean_up_from_here();
            drop(console_sock);
            nar.info(
                "processes",
                json!({ "receive_loop": parent.as_raw(), "console": child.as_raw() }),
                format!("pid {parent} runs the receive loop; pid {child} reads the console"),
            );
            show_process(nar, parent, "the receive loop");
            show_process(nar, child, "the console reader");
            let mut room = Room {
                fd: sock.as_raw_fd(),
                users: BTreeMap::new(),
                console_addr,
                console: Some(ForkedChild::new(child)),
                shown: true,
            };
            let served = serve(nar, &mut room);
            shut_down(nar, &mut room);
            served?;
            let step = nar.call("close", format!("fd {}", room.fd));
            step.check(nix::unistd::close(sock), |_| "0".into())?;
            Ok(())
        }
    }
}

/// socket, bind, getsockname: the address every user sends to.
fn open_socket(nar: &Narrator, wanted: SocketAddr) -> Result<(OwnedFd, SocketAddr)> {
    let step = nar.call(
        "socket",
        format!("{}, SOCK_DGRAM, 0", sys::family_name(&wanted)),
    );
    let sock = step.check(
        socket(
            sys::family_of(&wanted),
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = sock.as_raw_fd();
    nar.note("One UDP socket serves every user: each datagram arrives with its sender's address, and that address is how the server tells users apart.");

    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    if let Err(errno) = bind(fd, &sys::to_kernel(wanted)) {
        step.fail(errno);
        return Err(bind_failure(errno, wanted).into());
    }
    step.ok("0");
    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    let target = sys::connectable(bound);
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port() }),
        format!(
            "chat server on {bound} (UDP); join with: netlab --quiet chatroom client --name NAME --server {target}"
        ),
    );
    Ok((sock, bound))
}

/// A port already taken gets its own message; other bind errors are the
/// same for every socket (`Failure::of_bind`).
fn bind_failure(errno: Errno, wanted: SocketAddr) -> Failure {
    let port = wanted.port();
    match errno {
        Errno::EADDRINUSE => {
            let holders = kernel::udp::udp_sockets_on_port(port).unwrap_or_default();
            Failure::with_hint(
                format!(
                    "cannot bind {wanted}: port {port} is in use by {} UDP socket(s) (Address already in use)",
                    holders.len()
                ),
                format!("is another chat server running? Stop it or choose another port (--port 0 lets the kernel pick one); `ss -lunp 'sport = :{port}'` shows who holds it"),
            )
        }
        other => Failure::of_bind(other, wanted, 8888),
    }
}

/// The receive loop: one datagram, one decision, until Ctrl-C or SIGTERM.
///
/// Each turn: narrate a console the SIGCHLD handler has reaped, wait in
/// ppoll() until the socket is readable, then read the datagram with
/// recvmsg() and handle it. SIGCHLD is blocked in this thread all along,
/// except inside ppoll(): see `block_sigchld` for the race this closes.
fn serve(nar: &Narrator, room: &mut Room) -> Result<()> {
    let wait_mask = block_sigchld(nar)?;
    // The protocol's limit; recvmsg() with MSG_TRUNC still tells the real
    // length of a longer datagram, which is refused as too long.
    let mut buf = [0u8; MAX_DATAGRAM];
    let fd = room.fd;
    while stop::requested().is_none() {
        // Safe to look now and then wait: a SIGCHLD that comes after this
        // look stays pending (blocked) until ppoll() lets it in.
        console_reaped(nar, room);
        if !wait_for_datagram(nar, fd, &wait_mask)? {
            continue;
        }
        // The socket is readable, so this call does not wait; MSG_DONTWAIT
        // makes sure of it, in case the datagram is gone after all.
        let step = nar.call_with("recvmsg", || {
            format!("fd {fd}, {} bytes, MSG_TRUNC|MSG_DONTWAIT", buf.len())
        });
        let datagram = match recv_datagram(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(received) => received,
            Err(Errno::EAGAIN) => {
                // ppoll() said readable, but nothing was there: back to wait.
                step.fail(Errno::EAGAIN);
                continue;
            }
            Err(errno) if is_transient(errno) => {
                step.fail(errno);
                if errno != Errno::EINTR {
                    nar.warning(
                        format!(
                            "recvmsg() failed with {}; the server goes on",
                            errno_name(errno)
                        ),
                        None,
                    );
                    let _ = sys::nanosleep(Duration::from_millis(100));
                }
                continue;
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("recvmsg() failed");
            }
        };
        step.ok_with(datagram.real as i64, || datagram.describe(&buf));
        room.shown = nar.showing();
        nar.count("datagrams_in", 1);
        if datagram.oversized() {
            if room.shown {
                nar.info(
                    "oversized",
                    json!({ "from": datagram.from.to_string(), "length": datagram.real, "max": MAX_DATAGRAM }),
                    format!(
                        "the datagram had {} bytes, more than the protocol's {MAX_DATAGRAM}; only {} were kept, the rest is gone",
                        datagram.real, datagram.kept
                    ),
                );
            }
            refuse(nar, room, datagram.from, Refusal::Oversized, None);
        } else {
            handle(nar, room, &buf[..datagram.kept], datagram.from);
        }
    }
    Ok(())
}

/// Block SIGCHLD in this thread, the receive loop's, and return the mask
/// that ppoll() waits with: the mask as it was, SIGCHLD not blocked.
///
/// The race this closes. The handler reaps the console and leaves a note
/// in a table; the loop reads the table (`console_reaped`) and then waits.
/// If SIGCHLD came after the loop read the table but before the wait
/// began, the handler would run in that gap, the wait would then start
/// with no signal left to interrupt it, and the console's end would be
/// told only when the next datagram happened to arrive. Blocked, the
/// signal cannot come in that gap: it stays pending. ppoll() swaps in the
/// mask without SIGCHLD and starts waiting in one system call, so a
/// pending SIGCHLD is delivered inside the wait, and ppoll() returns EINTR
/// at once; one that comes later interrupts the wait the same way.
///
/// It is blocked after fork(), in the parent only: the console process
/// keeps the mask it was born with (it forks nothing and waits for no
/// SIGCHLD). netlab's stop helper thread blocks SIGCHLD too (`stop.rs`),
/// so no other thread can take the signal while this one has it blocked.
/// It stays blocked until the process exits: after the loop, `shut_down`
/// waits for the console by its pid, and no handler must reap it first.
fn block_sigchld(nar: &Narrator) -> Result<SigSet> {
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let step = nar.call("pthread_sigmask", "SIG_BLOCK, {SIGCHLD}");
    let old = step
        .check(sigchld.thread_swap_mask(SigmaskHow::SIG_BLOCK), |_| {
            "0".into()
        })
        .context("blocking SIGCHLD in the receive loop")?;
    nar.note("SIGCHLD is now blocked in the receive loop: if the console ends while the loop is busy, the signal stays pending, and the handler does not run until the loop waits in ppoll(). The console was forked before this call, so its own mask is unchanged.");
    nar.note("Why not look for a reaped console and then wait in recvmsg()? A SIGCHLD that came after the look but before recvmsg() began to wait would run its handler in that gap, and recvmsg() would then sleep until the next datagram. ppoll() unblocks SIGCHLD and begins to wait in one system call, so the signal lands inside the wait and ppoll() returns EINTR at once.");
    let mut wait_mask = old;
    wait_mask.remove(Signal::SIGCHLD);
    Ok(wait_mask)
}

/// ppoll() on the socket, with `wait_mask` (SIGCHLD not blocked) in force
/// for the length of the wait only. True when a datagram is waiting; false
/// after a signal (EINTR) or a timeout, and the loop looks again.
///
/// While the throttle holds hidden steps (a flood), the wait ends when
/// their summary is due (`Narrator::tick_due_in`, at most 1 s), and
/// `Narrator::tick` prints it: when the flood stops, its summary comes
/// then, not whenever the next datagram happens to arrive.
fn wait_for_datagram(nar: &Narrator, fd: RawFd, wait_mask: &SigSet) -> Result<bool> {
    // Whole milliseconds, rounded up, so the wait never ends just short.
    let millis = nar
        .tick_due_in()
        .map(|due| (due.as_micros().div_ceil(1000) as u64 + 1).min(MAX_WAIT_MS));
    let step = nar.blocking_with(
        "ppoll",
        || match millis {
            Some(millis) => format!("fd {fd} POLLIN, {millis} ms, sigmask -SIGCHLD"),
            None => format!("fd {fd} POLLIN, sigmask -SIGCHLD"),
        },
        "waiting for a datagram or SIGCHLD",
    );
    // SAFETY: `fd` is the room's socket, open for the whole receive loop.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN)];
    let timeout = millis.map(|millis| TimeSpec::from_duration(Duration::from_millis(millis)));
    let waited = ppoll(&mut fds, timeout, Some(*wait_mask));
    let readable = match waited {
        Ok(0) => {
            step.ok_with(0, || "0: the timeout passed".into());
            false
        }
        Ok(count) => {
            step.ok_with(i64::from(count), || "the socket is readable".into());
            true
        }
        // A signal: SIGCHLD (the console ended), or Ctrl-C or SIGTERM.
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            false
        }
        Err(errno) if is_transient(errno) => {
            step.fail(errno);
            nar.warning(
                format!(
                    "ppoll() failed with {}; the server goes on",
                    errno_name(errno)
                ),
                None,
            );
            let _ = sys::nanosleep(Duration::from_millis(100));
            false
        }
        Err(errno) => {
            step.fail(errno);
            return Err(errno).context("ppoll() failed");
        }
    };
    nar.tick();
    Ok(readable)
}

/// The longest the loop waits, while a summary is pending, before it
/// prints it.
const MAX_WAIT_MS: u64 = 1000;

/// Did the SIGCHLD handler reap the console? Say so; the server goes on.
fn console_reaped(nar: &Narrator, room: &mut Room) {
    for status in children::take_reaped() {
        nar.info(
            "console_reaped",
            children::status_value(&status),
            format!(
                "the SIGCHLD handler reaped the console process: {}",
                children::describe_status(&status)
            ),
        );
        let ours = room
            .console
            .as_ref()
            .is_some_and(|console| Some(console.pid()) == status.pid());
        if ours {
            if let Some(console) = room.console.take() {
                // The kernel's word: /proc no longer has the process.
                show_process(nar, console.pid(), "the console process");
                console.reaped_elsewhere();
            }
            if stop::requested().is_none() {
                nar.note("The console is gone but the receive loop goes on: users still chat; only admin lines have stopped.");
            }
        }
    }
}

/// What one datagram means, and the replies it causes.
fn handle(nar: &Narrator, room: &mut Room, datagram: &[u8], from: SocketAddr) {
    let request = match parse_request(datagram) {
        Ok(request) => request,
        Err(refusal) => return refuse(nar, room, from, refusal, None),
    };
    // Logins and quits change the room: they are rare, and they are the
    // state, so they are narrated even when the throttle hides the rest.
    let changes_the_room = matches!(request, Request::Login { .. } | Request::Quit { .. });
    if nar.showing() || changes_the_room {
        nar.info(
            "request",
            json!({ "from": from.to_string(), "kind": request.kind(), "name": request.name() }),
            format!("{from} sends {} as {}", request.kind(), request.name()),
        );
    }
    match request {
        Request::Login { name } => login(nar, room, name, from),
        Request::Chat { name, text } => {
            if let Err(refusal) = check_sender(room, name, from) {
                return refuse(nar, room, from, refusal, Some(name));
            }
            let line = format!("MSG {name} {text}");
            let others: Vec<SocketAddr> = room
                .users
                .iter()
                .filter(|(user, _)| user.as_str() != name)
                .map(|(_, addr)| *addr)
                .collect();
            if nar.showing() {
                nar.info(
                    "fan_out",
                    json!({ "name": name, "to": others.len() }),
                    if name == ADMIN {
                        format!("MSG datagrams to send: {}, one to each user", others.len())
                    } else {
                        format!(
                            "MSG datagrams to send: {}, one to each user but {name}",
                            others.len()
                        )
                    },
                );
            }
            for addr in others {
                room.send(nar, &line, addr);
            }
        }
        Request::Quit { name } => quit(nar, room, name, from),
        Request::Who { name } => {
            if let Err(refusal) = check_sender(room, name, from) {
                return refuse(nar, room, from, refusal, Some(name));
            }
            let names: Vec<&str> = room.users.keys().map(String::as_str).collect();
            let reply = format!("USERS {}", names.join(" "));
            room.send(nar, reply.trim_end(), from);
        }
    }
}

/// `L name`: a free name is registered at the sender's address.
fn login(nar: &Narrator, room: &mut Room, name: &str, from: SocketAddr) {
    match room.users.get(name) {
        // The same user asking again: our OK was lost on the way.
        Some(addr) if *addr == from => {
            nar.note("The same address asks again for the name it already has: its OK must have been lost, so OK is sent again and nothing else changes.");
            room.send(nar, "OK", from);
            return;
        }
        Some(_) => return refuse(nar, room, from, Refusal::NameTaken, Some(name)),
        None => {}
    }
    if room.users.values().any(|addr| *addr == from) {
        return refuse(nar, room, from, Refusal::AlreadyLoggedIn, Some(name));
    }
    room.users.insert(name.to_string(), from);
    room.send(nar, "OK", from);
    let line = format!("JOIN {name}");
    for (_, addr) in room.users.iter().filter(|(user, _)| user.as_str() != name) {
        room.send(nar, &line, *addr);
    }
    show_users(nar, room);
}

/// `Q name`: the user leaves, gets EXIT, and the others are told.
fn quit(nar: &Narrator, room: &mut Room, name: &str, from: SocketAddr) {
    if name != ADMIN && !room.users.contains_key(name) {
        nar.note("Q for a name that is not logged in: most likely our EXIT was lost and the client asks again, so EXIT is sent again.");
        room.send(nar, "EXIT", from);
        return;
    }
    if let Err(refusal) = check_sender(room, name, from) {
        return refuse(nar, room, from, refusal, Some(name));
    }
    if name == ADMIN {
        // The console speaks, it does not log in or out.
        return refuse(nar, room, from, Refusal::Malformed, Some(name));
    }
    room.users.remove(name);
    room.send(nar, "EXIT", from);
    let line = format!("LEAVE {name}");
    for addr in room.users.values() {
        room.send(nar, &line, *addr);
    }
    show_users(nar, room);
}

/// The rule student versions forget: a datagram that says `C ana ...` is
/// from ana only if it comes from the address ana logged in from. Anyone
/// can write any name into a datagram; nobody else can receive at ana's
/// address, and for the replies to a forged source address to matter, the
/// forger would have to be on the path.
fn check_sender(room: &Room, name: &str, from: SocketAddr) -> Result<(), Refusal> {
    if name == ADMIN {
        return if from == room.console_addr {
            Ok(())
        } else {
            Err(Refusal::Spoofed)
        };
    }
    match room.users.get(name) {
        None => Err(Refusal::UnknownName),
        Some(addr) if *addr != from => Err(Refusal::Spoofed),
        Some(_) => Ok(()),
    }
}

/// Refuse a datagram: narrate why, and answer `ERR reason` to the address
/// it came from (never to the user it names). The users are untouched.
fn refuse(nar: &Narrator, room: &Room, from: SocketAddr, refusal: Refusal, name: Option<&str>) {
    nar.count("refused", 1);
    if nar.showing() {
        let registered = name.and_then(|name| room.users.get(name));
        let text = match (refusal, name, registered) {
            (Refusal::Spoofed, Some(name), Some(addr)) => format!(
                "refused a datagram from {from}: it claims to be {name}, who logged in from {addr}"
            ),
            (Refusal::Spoofed, Some(name), None) => format!(
                "refused a datagram from {from}: it claims to be {name}, but only the console at {} speaks as {name}",
                room.console_addr
            ),
            (_, Some(name), _) => format!("refused a datagram from {from} naming {name}: {refusal}"),
            (_, None, _) => format!("refused a datagram from {from}: {refusal}"),
        };
        nar.info(
            "refused",
            json!({
                "from": from.to_string(), "reason": refusal.reason(), "name": name,
                "registered": registered.map(SocketAddr::to_string), "users": room.users.len(),
            }),
            text,
        );
        if refusal == Refusal::Spoofed {
            nar.note("The name in a datagram is only a claim; the source address is what the kernel saw. A C, Q or W must come from the address its user logged in from.");
        }
    }
    room.send(nar, &format!("ERR {refusal}"), from);
}

/// The users map, after a change.
fn show_users(nar: &Narrator, room: &Room) {
    // Not throttled: a change of the users map is always narrated.
    nar.gauge("users", room.users.len() as u64);
    let listed: Vec<String> = room
        .users
        .iter()
        .map(|(name, addr)| format!("{name} at {addr}"))
        .collect();
    let map: serde_json::Map<String, serde_json::Value> = room
        .users
        .iter()
        .map(|(name, addr)| (name.clone(), json!(addr.to_string())))
        .collect();
    nar.info(
        "users",
        json!({ "count": room.users.len(), "users": map }),
        if listed.is_empty() {
            "users: nobody".to_string()
        } else {
            format!("users ({}): {}", listed.len(), listed.join(", "))
        },
    );
}

/// After Ctrl-C or SIGTERM: tell every user, then end and reap the console.
fn shut_down(nar: &Narrator, room: &mut Room) {
    room.shown = true;
    if stop::requested().is_some() && !room.users.is_empty() {
        nar.info(
            "going_down",
            json!({ "users": room.users.len() }),
            format!(
                "users to tell that the server is stopping: {}",
                room.users.len()
            ),
        );
        for addr in room.users.values() {
            room.send(nar, "DOWN", *addr);
        }
        nar.note("DOWN is one datagram to each user, and UDP may lose it: a client that misses it only learns that the server is gone when its next request goes unanswered.");
    }
    // From here the parent waits for the console by its pid; the handler
    // must not reap it first.
    let _ = children::set_sigchld(nar, SigHandler::SigDfl);
    console_reaped(nar, room);
    if let Some(mut console) = room.console.take() {
        // wait() sends SIGTERM first when a stop is pending; otherwise the
        // loop ended on an error, and the console must be asked to end too.
        if stop::requested().is_none() {
            let pid = console.pid();
            let step = nar.call("kill", format!("{pid}, SIGTERM"));
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                Ok(()) => step.ok("0"),
                Err(errno) => step.fail(errno),
            }
        }
        let _ = console.wait(nar, "the console process");
    }
    children::reap_all(nar, true);
}
