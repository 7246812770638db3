//! `--role pair`: socketpair() and fork(): two connected sockets with no
//! name at all, shared between a parent and its child.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Result;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::{client, end_child, peer_credentials, reap_child, server, unix_table_entry};
use crate::demos::children::{self, Forked, ForkedChild};
use crate::narrate::Narrator;

pub(super) fn run(nar: &Narrator, message: &[u8]) -> Result<()> {
    // socketpair(): two sockets, already connected to each other.
    let step = nar.call("socketpair", "AF_UNIX, SOCK_STREAM, 0");
    let (parent_end, child_end) = step.check(
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        ),
        |(one, two)| format!("fds {} and {}", one.as_raw_fd(), two.as_raw_fd()),
    )?;
    unix_table_entry(nar, &parent_end);
    nar.note("Two sockets, connected to each other, and neither has a name: no file, no abstract name. Only a process holding one of the descriptors can use them, so the pair is made before fork(), and each process keeps one end.");

    let mut child = match children::fork(nar, "making a child process to talk to")? {
        Forked::Child => end_child(nar, child_talks(nar, &parent_end, &child_end, message)),
        Forked::Parent { child } => ForkedChild::new(child),
    };

    // The parent closes the child's end: as long as any process holds it,
    // the parent's recv() could never see end of stream.
    let step = nar.call(
        "close",
        format!("fd {} (the child's end)", child_end.as_raw_fd()),
    );
    step.check(nix::unistd::close(child_end), |_| "0".into())?;
    nar.note("The parent closes the child's end. If it kept that descriptor open, its own recv() would never return 0, because one writer to the other end would still be alive: itself.");
    peer_credentials(nar, &parent_end, "the other end");
    nar.note("SO_PEERCRED names this very process, not the child: for a socketpair the kernel records the process that made the pair, for both ends. Credentials are taken when a connection is made, and fork() hands descriptors on without changing them.");
    server::serve(nar, parent_end)?;
    reap_child(nar, &mut child)
}

/// The child keeps its end and closes the parent's, then talks. (The
/// descriptors are closed by number: the child ends in _exit(), so their
/// `OwnedFd`s are never dropped.)
fn child_talks(
    nar: &Narrator,
    parent_end: &OwnedFd,
    child_end: &OwnedFd,
    message: &[u8],
) -> Result<()> {
    let parent_fd = parent_end.as_raw_fd();
    let step = nar.call("close", format!("fd {parent_fd} (the parent's end)"));
    step.check(nix::unistd::close(parent_fd), |_| "0".into())?;
    peer_credentials(nar, child_end, "the other end");
    let talked = client::talk(nar, child_end, message);
    let child_fd = child_end.as_raw_fd();
    let step = nar.call("close", format!("fd {child_fd}"));
    step.check(nix::unistd::close(child_fd), |_| "0".into())?;
    talked
}
