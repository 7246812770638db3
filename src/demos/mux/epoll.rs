//! # epoll-demo: an echo server for thousands of clients with epoll
//!
//! select() and poll() hand the kernel the whole list of sockets on every
//! call, and the kernel checks each one, even when one of ten thousand is
//! ready. epoll splits the work: `epoll_ctl` registers each socket once in
//! an *interest list* kept inside the kernel, the kernel moves a socket to a
//! *ready list* when data arrives, and `epoll_wait` returns only the ready
//! ones. Its cost follows the number of ready sockets, not of open ones.
//!
//! Level-triggered (the default) reports a socket again and again while it
//! has unread data. `--edge` sets EPOLLET: a socket is reported once per
//! arrival of new data, so the server must read until EAGAIN. `--edge
//! --partial-read` makes the classic mistake (one read per event) and shows
//! the bytes left behind in the kernel's receive queue while the client waits.
//!
//! System calls: getrlimit/setrlimit(RLIMIT_NOFILE), socket, bind, listen,
//! epoll_create1, epoll_ctl(ADD, MOD, DEL), epoll_wait, accept, fcntl, recv,
//! send, ioctl(FIONREAD), close.
//!
//! Try it:
//!
//! ```text
//! netlab epoll-demo --port 8888                       # this terminal
//! nc 127.0.0.1 8888                                   # two or three more
//! netlab epoll-demo --port 8888 --edge --partial-read --bufsize 4
//! ```
//!
//! Lesson: `netlab lesson io-multiplexing`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use serde_json::json;

use super::conn::{ConnTable, Ending, Flushed, Received};
use super::{
    accept_client, close_listener, narrate_receive_queue, open_listener, raise_fd_limit,
    receive_queue, Accepted, ServerArgs,
};
use crate::narrate::Narrator;
use crate::stop;

/// The flags of this demo.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Edge-triggered (EPOLLET): each socket is reported once per arrival of
    /// data, so the server reads until recv() says EAGAIN.
    #[arg(long)]
    pub edge: bool,

    /// With --edge: read only once per event (the classic bug). Whatever one
    /// recv() did not take stays in the kernel, unreported, until the client
    /// sends again; every second the server shows such stalled clients.
    #[arg(long, requires = "edge")]
    pub partial_read: bool,

    /// How many ready sockets one epoll_wait() may return.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_events: u32,
}

/// Everything the event loop works with.
struct Server<'a> {
    nar: &'a Narrator,
    args: &'a Args,
    epoll: Epoll,
    listen_fd: BorrowedFd<'a>,
    clients: ConnTable,
    /// The one receive buffer, shared by every client.
    buf: Vec<u8>,
    /// What a client is watched for while it is keeping up, and while its
    /// output is backed up.
    read_interest: EpollFlags,
    write_interest: EpollFlags,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "epoll-demo",
        "io-multiplexing",
        "An echo server for many clients in one thread: epoll keeps the interest list in the kernel and returns only the ready sockets.",
    );
    raise_fd_limit(nar)?;
    let listen_fd = open_listener(nar, &args.server)?;

    // epoll_create1(): the kernel object that holds the interest list and
    // the ready list. It is a file descriptor too.
    let step = nar.call("epoll_create1", "EPOLL_CLOEXEC");
    let epoll = step.check(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC), |epoll| {
        format!("epfd {}", epoll.0.as_raw_fd())
    })?;
    nar.note("An epoll instance is a kernel object with two lists: the sockets we asked about (the interest list) and the ones that are ready (the ready list).");
    nar.fd_table();

    let edge = if args.edge {
        EpollFlags::EPOLLET
    } else {
        EpollFlags::empty()
    };
    let mut server = Server {
        nar,
        args,
        epoll,
        listen_fd: listen_fd.as_fd(),
        clients: ConnTable::new(),
        buf: vec![0u8; args.server.bufsize as usize],
        read_interest: EpollFlags::EPOLLIN | edge,
        write_interest: EpollFlags::EPOLLOUT | edge,
    };
    if args.partial_read {
        nar.note("--edge --partial-read: one recv() per event. When a message is longer than --bufsize, the rest stays in the kernel and no new event comes for it: the client stalls.");
    } else if args.edge {
        nar.note("--edge: edge-triggered. epoll reports a socket once when new data arrives, so each event is drained with recv() until EAGAIN.");
    } else {
        nar.note("Level-triggered (the default): epoll reports a socket on every epoll_wait() for as long as it has unread data, so one recv() per event is enough.");
    }
    // The listening socket is watched level-triggered in every mode: it is
    // drained with accept() until EAGAIN anyway.
    server.watch(listen_fd.as_fd(), EpollFlags::EPOLLIN)?;

    let result = server.event_loop();
    // Stopping (or failing): close every client, then epoll, then the listener.
    server.clients.close_all(nar);
    let Server { epoll, .. } = server;
    let step = nar.call("close", format!("epfd {}", epoll.0.as_raw_fd()));
    step.check(nix::unistd::close(epoll.0), |_| "0".into())?;
    close_listener(nar, listen_fd)?;
    result
}

impl Server<'_> {
    fn event_loop(&mut self) -> Result<()> {
        let nar = self.nar;
        let mut events = vec![EpollEvent::empty(); self.args.max_events as usize];
        let (mut wakeups, mut ready_total) = (0u64, 0u64);
        // With --partial-read, wake up every second even when nothing is
        // ready, to show the clients whose bytes are stuck in the kernel.
        let every_second = if self.args.partial_read {
            EpollTimeout::from(1000u16)
        } else {
            EpollTimeout::NONE
        };
        let epfd = self.epoll.0.as_raw_fd();
        while stop::requested().is_none() {
            // After a burst, wake up when its summary line is due, so the
            // class sees it when the traffic stops, not at the next client.
            let timeout = match nar.tick_due_in() {
                Some(due) => EpollTimeout::from((due.as_millis() + 1).min(1000) as u16),
                None => every_second,
            };
            let slots = events.len();
            let step = nar.blocking_with(
                "epoll_wait",
                || {
                    format!(
                        "epfd {epfd}, {slots} slots, timeout {}",
                        timeout_text(timeout)
                    )
                },
                "until one of the watched sockets is ready",
            );
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                // A signal: the loop condition checks whether to stop.
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    continue;
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(errno).context("epoll_wait() failed");
                }
            };
            let events = &events[..ready];
            step.ok_with(ready as i64, || describe_ready(events));
            nar.tick();
            if ready == 0 {
                // A timeout, not a wakeup: nothing was ready.
                self.show_stalled_clients();
                continue;
            }
            // Counted like select-demo's and poll-demo's: returns with
            // something ready.
            wakeups += 1;
            ready_total += ready as u64;
            nar.count("wakeups", 1);
            for event in events {
                // The u64 we registered each fd with is the fd itself.
                let fd = event.data() as RawFd;
                if fd == self.listen_fd.as_raw_fd() {
                    self.accept_all()?;
                } else if let Some(ending) = self.serve(fd, event.events()) {
                    self.drop_client(fd, ending);
                }
            }
            // After this wakeup's accepts and closes.
            nar.gauge("connections_open", self.clients.len() as u64);
        }
        nar.info(
            "wakeups",
            json!({ "epoll_wait": wakeups, "ready": ready_total, "edge": self.args.edge }),
            format!("epoll_wait returned {wakeups} times with something ready, {ready_total} ready sockets in all"),
        );
        Ok(())
    }

    /// epoll_ctl(ADD): put a socket on the interest list, once. The u64
    /// stored with it comes back with every event: here, the fd itself.
    fn watch(&self, fd: BorrowedFd<'_>, interest: EpollFlags) -> nix::Result<()> {
        let (epfd, raw) = (self.epoll.0.as_raw_fd(), fd.as_raw_fd());
        let step = self.nar.call_with("epoll_ctl", || {
            format!(
                "epfd {epfd}, EPOLL_CTL_ADD, fd {raw}, {}",
                epoll_bits(interest)
            )
        });
        step.check(
            self.epoll.add(fd, EpollEvent::new(interest, raw as u64)),
            |_| "0".into(),
        )
        .map(drop)
    }

    /// epoll_ctl(MOD): switch a client between reading and writing. A
    /// failure is that client's problem: the caller closes it.
    fn rewatch(&mut self, fd: RawFd, interest: EpollFlags) -> Option<Ending> {
        let nar = self.nar;
        let epfd = self.epoll.0.as_raw_fd();
        let conn = self.clients.get_mut(fd)?;
        let step = nar.call_with("epoll_ctl", || {
            format!(
                "epfd {epfd}, EPOLL_CTL_MOD, fd {fd}, {}",
                epoll_bits(interest)
            )
        });
        let mut event = EpollEvent::new(interest, fd as u64);
        match self.epoll.modify(conn.fd.as_fd(), &mut event) {
            Ok(()) => {
                step.ok_with(0, || "0".into());
                None
            }
            Err(errno) => {
                step.fail(errno);
                Some(Ending::Failed(errno))
            }
        }
    }

    /// The listener is readable: accept every waiting client.
    fn accept_all(&mut self) -> Result<()> {
        loop {
            match accept_client(self.nar, self.listen_fd, &self.args.server)? {
                Accepted::Client(conn) => match self.watch(conn.fd.as_fd(), self.read_interest) {
                    Ok(()) => self.clients.insert(conn),
                    Err(errno) => {
                        self.nar.warning(
                            format!("cannot watch fd {} with epoll; closing it", conn.raw_fd()),
                            None,
                        );
                        conn.close(self.nar, Ending::Failed(errno));
                    }
                },
                Accepted::QueueEmpty | Accepted::Failed => return Ok(()),
            }
        }
    }

    /// A client socket is ready: write what is pending, read what came.
    /// Returns why the client must be closed, if it must.
    fn serve(&mut self, fd: RawFd, ready: EpollFlags) -> Option<Ending> {
        let nar = self.nar;
        let edge = self.args.edge;
        let one_read_only = !edge || self.args.partial_read;
        // EPOLLERR and EPOLLHUP are always reported: let recv() or send()
        // say what happened (0 for FIN, ECONNRESET for a reset).
        let trouble = ready.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP);
        // None: closed earlier in this same batch of events.
        let conn = self.clients.get_mut(fd)?;

        let mut may_read = ready.contains(EpollFlags::EPOLLIN) || trouble;
        if conn.backed_up() {
            if !(ready.contains(EpollFlags::EPOLLOUT) || trouble) {
                return None;
            }
            match conn.flush(nar) {
                Flushed::StillBackedUp => return None,
                Flushed::Gone(ending) => return Some(ending),
                Flushed::AllSent => {
                    if let Some(ending) = self.rewatch(fd, self.read_interest) {
                        return Some(ending);
                    }
                    // Edge-triggered: the data that arrived while we were not
                    // reading raised its edge long ago; read it now or never.
                    may_read = may_read || edge;
                }
            }
        }
        if !may_read {
            return None;
        }
        let conn = self.clients.get_mut(fd)?;
        loop {
            match conn.receive_and_echo(nar, &mut self.buf) {
                // Backed up: stop reading, wait until it is writable.
                Received::Echoed(_) if conn.backed_up() => {
                    return self.rewatch(fd, self.write_interest);
                }
                Received::Echoed(_) if one_read_only => break,
                // Edge-triggered: keep reading until EAGAIN.
                Received::Echoed(_) | Received::Interrupted => continue,
                Received::Drained => break,
                Received::Gone(ending) => return Some(ending),
            }
        }
        if edge && nar.showing() {
            // Evidence for the lesson: what did we leave in the kernel?
            let left = narrate_receive_queue(nar, fd);
            if self.args.partial_read && left.is_some_and(|bytes| bytes > 0) {
                nar.note("Bytes are left in the receive queue, and with EPOLLET epoll_wait will not report this socket again until more data arrives: this client is stalled.");
            } else if !self.args.partial_read {
                nar.note("Drained until EAGAIN: nothing is left in the receive queue, so waiting for the next edge is safe.");
            }
        }
        None
    }

    /// epoll_ctl(DEL), then close().
    fn drop_client(&mut self, fd: RawFd, ending: Ending) {
        let nar = self.nar;
        let Some(conn) = self.clients.remove(fd) else {
            return;
        };
        let epfd = self.epoll.0.as_raw_fd();
        let step = nar.call_with("epoll_ctl", || {
            format!("epfd {epfd}, EPOLL_CTL_DEL, fd {fd}")
        });
        // close() would also drop it from the interest list; DEL says so
        // explicitly, as a program that keeps the socket open must.
        match self.epoll.delete(conn.fd.as_fd()) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
        conn.close(nar, ending);
    }

    /// --partial-read: a second passed with no event. Ask the kernel which
    /// clients still have unread bytes: those are the stalled ones.
    fn show_stalled_clients(&self) {
        let nar = self.nar;
        if !self.args.partial_read || !nar.showing() {
            return;
        }
        for conn in self.clients.iter() {
            let fd = conn.raw_fd();
            if receive_queue(fd).is_ok_and(|waiting| waiting > 0) {
                if let Some(waiting) = narrate_receive_queue(nar, fd) {
                    nar.info(
                        "stalled",
                        json!({ "fd": fd, "peer": conn.peer.to_string(), "unread": waiting }),
                        format!("client {} on fd {fd} is stalled: {waiting} bytes wait in the kernel, and epoll_wait reported nothing", conn.peer),
                    );
                }
            }
        }
    }
}

fn timeout_text(timeout: EpollTimeout) -> String {
    // (Not `as_millis()`: nix 0.32's panics on NONE.)
    match i32::from(timeout) {
        -1 => "-1 (wait for ever)".into(),
        millis => format!("{millis} ms"),
    }
}

/// "EPOLLIN | EPOLLET": the names of the bits set.
pub fn epoll_bits(flags: EpollFlags) -> String {
    const NAMES: [(EpollFlags, &str); 6] = [
        (EpollFlags::EPOLLIN, "EPOLLIN"),
        (EpollFlags::EPOLLOUT, "EPOLLOUT"),
        (EpollFlags::EPOLLERR, "EPOLLERR"),
        (EpollFlags::EPOLLHUP, "EPOLLHUP"),
        (EpollFlags::EPOLLRDHUP, "EPOLLRDHUP"),
        (EpollFlags::EPOLLET, "EPOLLET"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags.contains(*bit))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        format!("{:#x}", flags.bits())
    } else {
        names.join(" | ")
    }
}

/// "2 ready: fd 5 EPOLLIN, fd 6 EPOLLIN | EPOLLHUP" (the first few).
fn describe_ready(events: &[EpollEvent]) -> String {
    const SHOW_FDS: usize = 12;
    if events.is_empty() {
        return "0: nothing ready before the timeout".into();
    }
    let mut list: Vec<String> = events
        .iter()
        .take(SHOW_FDS)
        .map(|event| format!("fd {} {}", event.data(), epoll_bits(event.events())))
        .collect();
    if events.len() > SHOW_FDS {
        list.push(format!("... (+{} more)", events.len() - SHOW_FDS));
    }
    format!("{} ready: {}", events.len(), list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_bits_are_named() {
        assert_eq!(
            epoll_bits(EpollFlags::EPOLLIN | EpollFlags::EPOLLET),
            "EPOLLIN | EPOLLET"
        );
        assert_eq!(epoll_bits(EpollFlags::EPOLLOUT), "EPOLLOUT");
        assert_eq!(epoll_bits(EpollFlags::empty()), "0x0");
        assert_eq!(timeout_text(EpollTimeout::NONE), "-1 (wait for ever)");
        assert_eq!(timeout_text(EpollTimeout::from(1000u16)), "1000 ms");
    }
}
