//! The one error type a demo raises on purpose: a message and a hint.
//!
//! Most failures travel as `anyhow::Error` with context ("binding
//! 0.0.0.0:8888"). When the demo knows what the user should do next, it
//! returns a `Failure` instead, and `main` prints the hint under the message.

use std::fmt;
use std::net::SocketAddr;

use nix::errno::Errno;

use crate::kernel;
use crate::narrate::errno_name;

#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    /// A failure whose hint had to be built from values read at run time.
    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl Failure {
    /// A failed bind() of `wanted`, explained for the errors that mean the
    /// same for every socket: EACCES (a port below the unprivileged start),
    /// EADDRNOTAVAIL (not an address of this machine), and any other by
    /// name. EADDRINUSE is the caller's to explain, since which table shows
    /// the port's holder depends on the protocol. `example_port` is the
    /// port the hint suggests instead.
    pub fn of_bind(errno: Errno, wanted: SocketAddr, example_port: u16) -> Failure {
        match errno {
            Errno::EACCES => {
                let first_free = kernel::sysctl::unprivileged_port_start()
                    .map(|start| start.to_string())
                    .unwrap_or_else(|_| "1024".into());
                Failure::with_hint(
                    format!("cannot bind {wanted}: permission denied; ports below {first_free} need root or CAP_NET_BIND_SERVICE"),
                    format!("use a port of {first_free} or above, e.g. --port {example_port} (the limit is /proc/sys/net/ipv4/ip_unprivileged_port_start)"),
                )
            }
            Errno::EADDRNOTAVAIL => Failure::new(
                format!("cannot bind {wanted}: {} is not an address of this machine", wanted.ip()),
                Some("use 0.0.0.0 (every interface), 127.0.0.1 (this machine only), or one of the addresses `ip -brief address` lists"),
            ),
            other => Failure::new(
                format!("cannot bind {wanted}: {} ({})", errno_name(other), other.desc()),
                None,
            ),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The run has already said why it failed (`netlab check` printed its
/// report and verdict): `main` exits 1 without another message.
#[derive(Debug, Clone, Copy)]
pub struct AlreadyReported;

impl fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the report above says what failed")
    }
}

impl std::error::Error for AlreadyReported {}
