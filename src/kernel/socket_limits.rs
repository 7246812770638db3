//! The caps on socket buffer sizes: `net.core.rmem_max` and `wmem_max`.
//!
//! `setsockopt(SO_RCVBUF, n)` asks for a receive buffer of `n` bytes. The
//! kernel first caps `n` at `/proc/sys/net/core/rmem_max` (for a program
//! without CAP_NET_ADMIN), then stores *twice* that value, because the
//! buffer must also hold its own bookkeeping (socket buffers, headers);
//! `getsockopt` reports the doubled number. The same goes for SO_SNDBUF and
//! `wmem_max`. (The minimum is enforced too: a tiny request is raised.)

use std::io;

pub const RMEM_MAX: &str = "/proc/sys/net/core/rmem_max";
pub const WMEM_MAX: &str = "/proc/sys/net/core/wmem_max";

/// The largest SO_RCVBUF an unprivileged `setsockopt` may ask for.
pub fn rmem_max() -> io::Result<u64> {
    read_number(RMEM_MAX)
}

/// The largest SO_SNDBUF an unprivileged `setsockopt` may ask for.
pub fn wmem_max() -> io::Result<u64> {
    read_number(WMEM_MAX)
}

fn read_number(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse::<u64>().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} does not hold a number: {text:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_are_readable_numbers() {
        assert!(rmem_max().expect("rmem_max") > 0);
        assert!(wmem_max().expect("wmem_max") > 0);
    }
}
