//! # byteorder: which byte comes first
//!
//! A number longer than one byte is stored as several bytes, and machines
//! disagree on their order: a little-endian CPU (x86, most ARM) stores the
//! least significant byte first, while the headers of TCP/IP put the most
//! significant byte first ("network byte order", big-endian). htons() and
//! htonl() convert a 16-bit and a 32-bit number from the host's order to
//! the network's; on a big-endian machine they change nothing.
//!
//! This demo looks at the bytes of one number in this machine's memory,
//! converts it, and then lets the kernel show its own storage: it connects
//! a UDP socket to 127.0.0.1 on that port (a UDP connect sends nothing) and
//! reads back the raw `sin_port` field that getpeername() fills in.
//!
//! Calls shown: htons, htonl (library functions), socket, connect,
//! getpeername, close.
//!
//! Try it:
//!
//! ```text
//! netlab byteorder 8888
//! netlab byteorder 0x0a000001
//! ```
//!
//! Lesson: `netlab lesson osi-and-sockets`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Result;
use nix::sys::socket::{
    connect, getpeername, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use serde_json::json;

use crate::narrate::{Fact, Narrator};

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The number to look at: decimal (8888) or hex (0x22b8), from 0 to 4294967295.
    #[arg(default_value = "8888", value_parser = parse_number)]
    pub number: u32,
}

/// A 32-bit unsigned number, in decimal or with a 0x prefix in hex.
fn parse_number(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    let parsed = match trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => trimmed.parse::<u32>(),
    };
    parsed.map_err(|_| {
        format!("`{text}` is not a whole number from 0 to 4294967295 (decimal, or hex with 0x)")
    })
}

/// Bytes as hex pairs, in memory order: "b8 22".
fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "byteorder",
        "osi-and-sockets",
        "A number's bytes in this machine's order and in network order (big-endian), and the conversions htons() and htonl().",
    );
    // Nothing here but descriptors: `q` in --step may end the run at once.
    nar.may_end_at_any_step();

    // 1. This machine's order, found the honest way: store 0x0102 and
    //    look at which byte the CPU put first.
    let probe: u16 = 0x0102;
    let first = probe.to_ne_bytes()[0];
    let little = first == 0x02;
    let order = if little {
        "little-endian"
    } else {
        "big-endian"
    };
    nar.info(
        "endianness",
        json!({ "order": if little { "little" } else { "big" }, "probe_bytes": hex_bytes(&probe.to_ne_bytes()) }),
        format!(
            "0x0102 is stored in memory as {}: this machine is {order}",
            hex_bytes(&probe.to_ne_bytes())
        ),
    );
    if little {
        nar.note("Little-endian: the least significant byte comes first in memory, the reverse of network order, so htons() and htonl() really swap bytes here.");
    } else {
        nar.note("Big-endian: memory order is already network order, so htons() and htonl() return their argument unchanged here.");
    }

    // 2. The number as 16 bits (a port) and as 32 bits (an IPv4 address).
    let number = args.number;
    let as_port = u16::try_from(number).ok();
    if let Some(port) = as_port {
        // htons() is exactly "store big-endian, read back in host order".
        let swapped = port.to_be();
        let step = nar.call("htons", format!("{port}"));
        step.ok_value(i64::from(swapped), format!("{swapped} (0x{swapped:04x})"));
        nar.info(
            "short",
            json!({
                "value": port,
                "host_bytes": hex_bytes(&port.to_ne_bytes()),
                "network_bytes": hex_bytes(&port.to_be_bytes()),
                "htons": swapped,
            }),
            format!(
                "{port} = 0x{port:04x}: in memory here {}, on the wire {}",
                hex_bytes(&port.to_ne_bytes()),
                hex_bytes(&port.to_be_bytes())
            ),
        );
    } else {
        nar.note(
            "The number does not fit in 16 bits, so it cannot be a port: only htonl() applies.",
        );
    }
    let swapped = number.to_be();
    let step = nar.call("htonl", format!("{number}"));
    step.ok_value(i64::from(swapped), format!("{swapped} (0x{swapped:08x})"));
    let as_address = Ipv4Addr::from(number);
    nar.info(
        "long",
        json!({
            "value": number,
            "host_bytes": hex_bytes(&number.to_ne_bytes()),
            "network_bytes": hex_bytes(&number.to_be_bytes()),
            "htonl": swapped,
            "ipv4": as_address.to_string(),
        }),
        format!(
            "{number} = 0x{number:08x}: in memory here {}, on the wire {} (as an IPv4 address: {as_address})",
            hex_bytes(&number.to_ne_bytes()),
            hex_bytes(&number.to_be_bytes())
        ),
    );
    nar.note("An IPv4 address in dotted form is written in network order: the first number is the first byte on the wire.");

    // 3. The kernel's own storage of a port: sin_port as getpeername fills it.
    match as_port {
        Some(0) => nar.note("Port 0 cannot be connected to, so the kernel part (getpeername's sin_port) is skipped."),
        Some(port) => kernel_port_bytes(nar, port)?,
        None => {}
    }
    Ok(())
}

/// connect() a UDP socket to 127.0.0.1:port (nothing is sent) and read the
/// raw bytes of the sin_port field the kernel returns.
fn kernel_port_bytes(nar: &Narrator, port: u16) -> Result<()> {
    let step = nar.call("socket", "AF_INET, SOCK_DGRAM, 0");
    let fd: OwnedFd = step.check(
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let raw = fd.as_raw_fd();
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let step = nar.call("connect", format!("fd {raw}, {target}"));
    step.check(connect(raw, &SockaddrIn::from(target)), |_| "0".into())?;
    nar.note("connect() on a UDP socket sends no packet: it only records the peer address in the kernel.");
    let step = nar.call("getpeername", format!("fd {raw}"));
    let peer: SockaddrIn = step.check(getpeername::<SockaddrIn>(raw), |addr| addr.to_string())?;
    let raw_addr: &libc::sockaddr_in = peer.as_ref();
    // The struct's fields hold the bytes exactly as the kernel wrote them;
    // to_ne_bytes shows them in memory order without converting anything.
    let port_bytes = raw_addr.sin_port.to_ne_bytes();
    let addr_bytes = raw_addr.sin_addr.s_addr.to_ne_bytes();
    nar.kernel(Fact::new(
        format!("fd {raw}"),
        "sin_port_bytes",
        json!({ "port": port, "sin_port": hex_bytes(&port_bytes), "sin_addr": hex_bytes(&addr_bytes) }),
        "getpeername",
        format!(
            "the kernel's sockaddr_in holds port {port} as bytes {} and 127.0.0.1 as {}: network order",
            hex_bytes(&port_bytes),
            hex_bytes(&addr_bytes)
        ),
    ));
    if port_bytes == port.to_be_bytes() {
        nar.note("The kernel keeps addresses and ports in network order inside its socket structures, which is why a C program must call htons() before bind() or connect().");
    }
    let step = nar.call("close", format!("fd {raw}"));
    step.check(nix::unistd::close(fd), |_| "0".into())?;
    Ok(())
}
