//! Before a load starts: enough file descriptors, and not too much memory.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::error::Failure;
use crate::narrate::{errno_name, Narrator};

/// Descriptors this process needs besides its connections (stdio, epoll,
/// the stop pipe, a few to spare).
const OWN_FDS: u64 = 32;

/// Every active connection keeps its message in memory: refuse a load
/// that would need more than 1 GiB for them.
pub fn check_memory(active: usize, size: usize) -> Result<(), Failure> {
    const MAX_IN_FLIGHT: usize = 1 << 30;
    let total = active.saturating_mul(size);
    if total > MAX_IN_FLIGHT {
        return Err(Failure::new(
            format!(
                "{active} connections with {size}-byte messages would keep {} MiB in flight",
                total >> 20
            ),
            Some("use fewer connections or smaller messages (at most 1 GiB in all)"),
        ));
    }
    Ok(())
}

/// Raise this process's soft RLIMIT_NOFILE to the hard limit, so that it
/// may hold `connections` sockets and a few descriptors of its own (stdio,
/// epoll, the stop pipe). Returns the new soft limit.
pub fn raise_fd_limit(nar: &Narrator, connections: u64) -> Result<u64, Failure> {
    let needed = connections + OWN_FDS;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|errno| {
        Failure::new(
            format!("getrlimit(RLIMIT_NOFILE) failed: {}", errno_name(errno)),
            None,
        )
    })?;
    let step = nar.call(
        "setrlimit",
        format!("RLIMIT_NOFILE, soft {hard}, hard {hard}"),
    );
    if let Err(errno) = step.check(setrlimit(Resource::RLIMIT_NOFILE, hard, hard), |_| {
        "0".into()
    }) {
        return Err(Failure::new(
            format!("setrlimit(RLIMIT_NOFILE) failed: {}", errno_name(errno)),
            None,
        ));
    }
    nar.note("Every connection is a file descriptor, and the soft limit on open descriptors (often 1024) would stop the load early; a process may raise it up to the hard limit.");
    if hard < needed {
        return Err(Failure::with_hint(
            format!("{connections} connections need {needed} file descriptors with our own, but the hard limit is {hard} (soft was {soft})"),
            "use fewer connections, or raise the hard limit (`ulimit -Hn`, /etc/security/limits.conf) as root",
        ));
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_that_need_too_much_memory_are_refused() {
        assert!(check_memory(50, 64).is_ok());
        assert!(check_memory(1000, 1 << 20).is_ok());
        assert!(check_memory(2000, 1 << 20).is_err());
        assert!(check_memory(usize::MAX, 2).is_err());
    }
}
