//! When accept() fails for one client, not for the server.
//!
//! Some accept() errors leave the listening socket as good as before: the
//! client gave up between its handshake and our call (ECONNABORTED,
//! EPROTO), or descriptors or kernel memory ran out for a moment (EMFILE,
//! ENFILE, ENOBUFS, ENOMEM). A server says so and goes on serving. Every
//! server demo handles them the same way, so the rule lives here.

use std::time::Duration;

use nix::errno::Errno;

use crate::narrate::{errno_name, Narrator};
use crate::sys;

/// True for the accept() errors after which the server goes on.
pub fn is_transient(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::ECONNABORTED
            | Errno::EPROTO
            | Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOBUFS
            | Errno::ENOMEM
    )
}

/// Warn about a transient accept() failure. When descriptors ran out, the
/// client stays in the queue and the listener stays readable, so pause a
/// moment instead of spinning on the same error.
pub fn carry_on(nar: &Narrator, errno: Errno) {
    let out_of_fds = matches!(errno, Errno::EMFILE | Errno::ENFILE);
    nar.warning(
        format!(
            "accept() failed with {}; the server goes on",
            errno_name(errno)
        ),
        out_of_fds
            .then_some("EMFILE means this process has as many fds open as RLIMIT_NOFILE allows"),
    );
    if out_of_fds {
        let _ = sys::nanosleep(Duration::from_millis(100));
    }
}
