//! # unix-demo: Unix domain sockets
//!
//! A socket between two programs on the same machine, with no network
//! stack in between: AF_UNIX. A stream server is built with the same calls
//! as a TCP one (socket, bind, listen, accept, recv, send, close), but its
//! address is a file name. bind() creates that file, and stat() shows it is
//! a socket (`s` in `ls -l`). The kernel can also say who the peer is:
//! SO_PEERCRED gives its pid, uid and gid, which a TCP server never learns.
//!
//! Two classic traps, and the Linux extra:
//!
//! - The file outlives the socket. A server that crashed left its file
//!   behind, and the next bind() fails with EADDRINUSE. Before it calls the
//!   file stale, the demo asks twice: connect() (is anybody listening?) and
//!   `/proc/net/unix` (is any socket bound to this path, perhaps one that
//!   has not called listen() yet?). Only a file no socket is bound to is
//!   removed, and only with `--unlink-stale`; a clean server unlinks its
//!   file itself.
//! - `--role both` without `--path` uses a file name with the process id in
//!   it, so two runs at once never share (or fight over) one file.
//! - `--abstract NAME` uses the Linux abstract namespace: the name lives in
//!   the kernel, not in the file system, and vanishes with the socket.
//!
//! `--role both` runs the server and forks a child that is the client; the
//! parent reaps it before it exits, also after Ctrl-C. `--role pair` needs
//! no name at all: socketpair() makes two connected sockets, and after
//! fork() parent and child each keep one.
//!
//! System calls: socket(AF_UNIX, SOCK_STREAM), bind, stat, listen, fork,
//! accept, getsockopt(SO_PEERCRED), recv, send, close, unlink, waitpid;
//! the client: socket, connect, send, recv, close; `--role pair`:
//! socketpair, fork, close, getsockopt(SO_PEERCRED), send, recv, waitpid.
//!
//! Try it:
//!
//! ```text
//! netlab unix-demo                                  # server and forked client
//! netlab unix-demo --role server --path /tmp/demo.sock
//! netlab unix-demo --role client --path /tmp/demo.sock --message hi
//! netlab unix-demo --abstract netlab-demo
//! netlab unix-demo --role pair
//! ```
//!
//! Lesson: `netlab lesson unix-sockets`.

mod client;
mod pair;
mod server;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType, UnixAddr};
use serde_json::json;

use super::children::{self, ForkedChild};
use crate::error::Failure;
use crate::kernel;
use crate::narrate::{Fact, Narrator};

/// The socket file used by `--role server` and `--role client` when neither
/// --path nor --abstract is given, so that the two find each other.
pub const DEFAULT_PATH: &str = "/tmp/netlab-unix.sock";

/// The socket file of `--role both` when no name is given: one per process
/// (`/tmp/netlab-unix-PID.sock`), because server and client are the same
/// run and no other run needs to find it.
fn own_default_path() -> PathBuf {
    PathBuf::from(format!("/tmp/netlab-unix-{}.sock", std::process::id()))
}

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The socket file to bind (server) or connect to (client).
    #[arg(long, value_name = "PATH", conflicts_with = "abstract_name")]
    pub path: Option<PathBuf>,

    /// Use this name in the Linux abstract namespace instead of a file.
    #[arg(long = "abstract", value_name = "NAME")]
    pub abstract_name: Option<String>,

    /// Which end to run: the server, the client, or both (the client is a forked child).
    #[arg(long, value_enum, default_value_t = Role::Both)]
    pub role: Role,

    /// If bind() finds a socket file no socket is bound to (checked in
    /// /proc/net/unix; left by a crashed run), remove it and bind again.
    #[arg(long)]
    pub unlink_stale: bool,

    /// What the client sends.
    #[arg(long, short, value_name = "TEXT", default_value = "hello over AF_UNIX")]
    pub message: String,

    /// The server exits after this many clients (--role both: always 1).
    #[arg(long, value_name = "N")]
    pub max_clients: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Listen, accept clients and echo what they send.
    Server,
    /// Connect, send --message, read the echo.
    Client,
    /// The server, with a forked child as its client.
    Both,
    /// No server and no name: socketpair(), then fork(); parent and child each keep one end.
    Pair,
}

/// Where the socket lives: a file, or a name in the abstract namespace.
#[derive(Debug, Clone)]
pub enum Place {
    File(PathBuf),
    Abstract(String),
}

impl Place {
    fn from_args(args: &Args) -> Place {
        match (&args.abstract_name, &args.path) {
            (Some(name), _) => Place::Abstract(name.clone()),
            (None, Some(path)) => Place::File(path.clone()),
            (None, None) if args.role == Role::Both => Place::File(own_default_path()),
            (None, None) => Place::File(PathBuf::from(DEFAULT_PATH)),
        }
    }

    /// The address for bind() and connect(). A name too long for
    /// `sun_path` (108 bytes) is a clear error, not a truncation.
    fn address(&self) -> Result<UnixAddr, Failure> {
        let result = match self {
            Place::File(path) => UnixAddr::new(path.as_path()),
            Place::Abstract(name) => UnixAddr::new_abstract(name.as_bytes()),
        };
        result.map_err(|errno| {
            Failure::new(
                format!("{self} cannot be a socket address: {}", errno.desc()),
                Some("a Unix socket name must fit in 108 bytes (sun_path); choose a shorter one"),
            )
        })
    }

    /// The name as `/proc/net/unix` and `ss -x` show it: the path, or `@name`.
    fn shown(&self) -> String {
        match self {
            Place::File(path) => path.display().to_string(),
            Place::Abstract(name) => format!("@{name}"),
        }
    }

    fn is_abstract(&self) -> bool {
        matches!(self, Place::Abstract(_))
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "unix-demo",
        "unix-sockets",
        "Unix domain sockets: a stream socket between processes on one machine, addressed by a file name or an abstract name.",
    );
    if let Some(name) = &args.abstract_name {
        if name.is_empty() {
            return Err(Failure::new(
                "an abstract name must not be empty",
                Some("give a name, e.g. --abstract netlab-demo"),
            )
            .into());
        }
    }
    let place = Place::from_args(args);
    if args.role == Role::Both && args.path.is_none() && args.abstract_name.is_none() {
        nar.info(
            "default_path",
            json!({ "path": place.shown() }),
            format!("no --path given: this run uses its own socket file {place}"),
        );
        nar.note("With --role both and no --path, the file name carries this process's id, so two runs at the same time never meet on one file.");
    }
    match args.role {
        Role::Client => client::run(nar, &place, args.message.as_bytes()),
        Role::Server => server::run(nar, args, &place, None),
        Role::Both => server::run(nar, args, &place, Some(args.message.as_bytes())),
        Role::Pair => {
            if args.path.is_some() || args.abstract_name.is_some() {
                nar.note("--path and --abstract have no effect with --role pair: a socketpair has no name.");
            }
            pair::run(nar, args.message.as_bytes())
        }
    }
}

/// socket(AF_UNIX, SOCK_STREAM, 0), narrated.
fn unix_socket(nar: &Narrator) -> Result<OwnedFd> {
    let step = nar.call("socket", "AF_UNIX, SOCK_STREAM, 0");
    Ok(step.check(
        socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?)
}

/// SO_PEERCRED: the kernel's record of who is at the other end (the pid,
/// uid and gid of the process that called connect() or listen()).
fn peer_credentials(nar: &Narrator, fd: &OwnedFd, whose: &str) -> Option<i32> {
    use nix::sys::socket::{getsockopt, sockopt};
    let raw = fd.as_raw_fd();
    let step = nar.call("getsockopt", format!("fd {raw}, SOL_SOCKET, SO_PEERCRED"));
    let credentials = step
        .check(getsockopt(fd, sockopt::PeerCredentials), |cred| {
            format!("pid {}, uid {}, gid {}", cred.pid(), cred.uid(), cred.gid())
        })
        .ok()?;
    nar.kernel(Fact::new(
        format!("fd {raw}"),
        "peer_cred",
        json!({ "pid": credentials.pid(), "uid": credentials.uid(), "gid": credentials.gid(), "whose": whose }),
        "getsockopt(SO_PEERCRED)",
        format!(
            "{whose} is pid {}, uid {}, gid {}",
            credentials.pid(),
            credentials.uid(),
            credentials.gid()
        ),
    ));
    Some(credentials.pid())
}

/// What `/proc/net/unix` says about the socket on `fd`: its state and name.
fn unix_table_entry(nar: &Narrator, fd: &OwnedFd) {
    use std::os::fd::AsFd;
    let subject = format!("fd {}", fd.as_raw_fd());
    let entry =
        kernel::socket_inode_of(fd.as_fd()).and_then(kernel::proc_unix::unix_entry_by_inode);
    match entry {
        Ok(Some(entry)) => nar.kernel(Fact::new(
            &subject,
            "unix_socket",
            json!({ "inode": entry.inode, "type": entry.kind, "state": entry.state, "path": entry.path }),
            "/proc/net/unix",
            format!(
                "{subject} is a {} socket, {}, {} (inode {})",
                entry.kind,
                entry.state,
                match &entry.path {
                    Some(path) => format!("bound to {path}"),
                    None => "with no name".to_string(),
                },
                entry.inode
            ),
        )),
        Ok(None) => nar.kernel(Fact::unavailable(subject, "unix_socket", "/proc/net/unix", "the socket is not listed")),
        Err(err) => nar.kernel(Fact::unavailable(subject, "unix_socket", "/proc/net/unix", err)),
    }
}

/// The last step of the forked child of `--role both` and `--role pair`:
/// an error is reported on the child's own line, then the child _exit()s
/// with status 1 (0 when all went well).
fn end_child(nar: &Narrator, result: Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            nar.warning(format!("child: {err:#}"), None);
            1
        }
    };
    children::exit_child(code)
}

/// Reap the forked child with waitpid(), after showing it as a zombie.
/// If the child did not exit with status 0 (and we were not stopped with
/// Ctrl-C, which ends the child on purpose), the demo failed: its own
/// client did not get its echo, so the run ends with exit status 1.
fn reap_child(nar: &Narrator, child: &mut ForkedChild) -> Result<()> {
    let pid = child.pid();
    // The child is about to exit (or has): give it a moment to become a
    // zombie, the state in which it waits for our waitpid().
    let stat = children::watch(pid, Duration::from_millis(500), |stat| stat.state == 'Z');
    if let Some(stat) = stat {
        nar.kernel(Fact::new(
            format!("pid {pid}"),
            "child_state",
            json!({ "pid": pid.as_raw(), "state": stat.state.to_string(), "name": kernel::state_name(stat.state) }),
            "/proc/PID/stat",
            format!("the child pid {pid} is {} ({})", stat.state, kernel::state_name(stat.state)),
        ));
        if stat.state == 'Z' {
            nar.note("The child has exited but stays a zombie: the kernel keeps its exit status until the parent collects it with waitpid().");
        }
    }
    let Some(status) = child.wait(nar, "the child to exit") else {
        return Ok(());
    };
    let ended = children::describe_end(&status);
    nar.info(
        "reaped",
        json!({ "pid": pid.as_raw(), "status": ended }),
        format!("child {pid} reaped: {ended}"),
    );
    let succeeded = matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0));
    if succeeded || crate::stop::requested().is_some() {
        return Ok(());
    }
    Err(Failure::new(
        format!("the client child {pid} {ended}: the demo did not complete"),
        Some("the child's lines above say what went wrong"),
    )
    .into())
}
