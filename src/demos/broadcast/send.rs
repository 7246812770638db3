//! `netlab broadcast send`: pick a broadcast address, get permission with
//! SO_BROADCAST, and sendto() it, once or every `--interval` seconds.
//!
//! The target is 127.255.255.255 (this machine only) unless the user names
//! one: `--to ADDR`, or `--iface NAME`, whose broadcast address is read
//! from the interface list (getifaddrs).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use anyhow::Result;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use serde_json::json;

use super::sockets::{is_kernel_broadcast, open_sender, pause, send_datagram};
use super::LOOPBACK_BROADCAST;
use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::narrate::Narrator;
use crate::stop;
use crate::sys;

/// The flags of `broadcast send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Send to this IPv4 address (normally a subnet's broadcast address,
    /// such as 192.168.1.255). Default: 127.255.255.255, this machine only.
    #[arg(long, value_name = "ADDR", value_parser = parse_ipv4, conflicts_with = "iface")]
    pub to: Option<Ipv4Addr>,

    /// Send to the broadcast address of this network interface (e.g. eth0).
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,

    /// The port the listeners bound.
    #[arg(long, short, default_value_t = 9999)]
    pub port: u16,

    /// How many datagrams to send.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,

    /// Seconds to wait between two datagrams.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_seconds)]
    pub interval: f64,

    /// The text of each datagram (it may be empty: a 0-byte datagram is valid).
    #[arg(long, short, value_name = "TEXT", default_value = "hello, everyone")]
    pub message: String,

    /// Leave SO_BROADCAST off, to see the kernel refuse the send with EACCES.
    #[arg(long)]
    pub no_broadcast_flag: bool,
}

/// `--to`: an IPv4 address, with a word on why IPv6 has no broadcast.
fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Ok(ip),
        Ok(std::net::IpAddr::V6(_)) => Err(
            "IPv6 has no broadcast (it uses multicast, e.g. ff02::1); give an IPv4 address".into(),
        ),
        Err(_) => Err(format!(
            "`{text}` is not an IPv4 address such as 192.168.1.255"
        )),
    }
}

pub fn run(nar: &Narrator, args: &SendArgs) -> Result<()> {
    nar.start(
        "broadcast send",
        "broadcast",
        "A UDP sender that broadcasts: SO_BROADCAST, then sendto() a broadcast address.",
    );

    // 1. Where to: the interface's broadcast address, the user's address,
    //    or loopback's. Then check it against the kernel's own list.
    let (target_ip, how) = match (&args.to, &args.iface) {
        (_, Some(name)) => (interface_broadcast(nar, name)?, "iface"),
        (Some(ip), None) => (*ip, "to"),
        (None, None) => {
            nar.note("No --to or --iface: the target is 127.255.255.255, the broadcast address of lo, so the datagrams never leave this machine.");
            (LOOPBACK_BROADCAST, "default")
        }
    };
    let is_broadcast = is_kernel_broadcast(nar, target_ip);
    if is_broadcast == Some(false) {
        nar.warning(
            format!("{target_ip} is not a broadcast address on this machine: the datagrams go to that one host, like any unicast UDP"),
            Some("a subnet's broadcast address is its last address, e.g. 192.168.1.255 for 192.168.1.0/24; `ip -brief address` lists the subnets, --iface NAME picks one"),
        );
    }
    let target = SocketAddrV4::new(target_ip, args.port);
    nar.info(
        "target",
        json!({ "addr": target.to_string(), "how": how, "is_broadcast": is_broadcast }),
        format!("sending to {target}"),
    );

    // 2. The socket, with (or without) permission to broadcast.
    let sender = open_sender(nar, !args.no_broadcast_flag)?;

    // 3. sendto(), --count times. The first one binds the socket to an
    //    ephemeral port, which is what the listeners see as the sender.
    for number in 1..=args.count {
        if stop::requested().is_some() {
            break;
        }
        let Some(sent) = send_datagram(nar, &sender, target, args.message.as_bytes())? else {
            break;
        };
        if number == 1 {
            let step = nar.call("getsockname", format!("fd {}", sender.as_raw_fd()));
            if let Ok(local) =
                step.check(sys::local_addr(sender.as_raw_fd()), |addr| addr.to_string())
            {
                nar.note("We never called bind(): the first sendto() bound the socket to an ephemeral port on 0.0.0.0. Listeners see that port, with the address of the interface the datagram left by.");
                nar.info(
                    "sent",
                    json!({ "from": local.to_string(), "to": target.to_string(), "bytes": sent }),
                    format!("sent from {local} to {target}"),
                );
            }
        }
        if number < args.count && args.interval > 0.0 && !pause(nar, args.interval) {
            break;
        }
    }

    let step = nar.call("close", format!("fd {}", sender.as_raw_fd()));
    step.check(nix::unistd::close(sender), |_| "0".into())?;
    Ok(())
}

/// getifaddrs(): find `name`'s IPv4 broadcast address, or explain why not.
fn interface_broadcast(nar: &Narrator, name: &str) -> Result<Ipv4Addr> {
    // One entry per address of each interface (and one for its link).
    let step = nar.call("getifaddrs", "");
    let entries: Vec<_> = step
        .check(getifaddrs().map(|list| list.collect::<Vec<_>>()), |list| {
            format!("0, a list of {} entries", list.len())
        })?;
    let mut names: Vec<String> = entries
        .iter()
        .map(|entry| entry.interface_name.clone())
        .collect();
    names.sort();
    names.dedup();
    nar.info(
        "interfaces",
        json!(names),
        format!("interfaces: {}", names.join(", ")),
    );

    let of_name: Vec<_> = entries
        .iter()
        .filter(|entry| entry.interface_name == name)
        .collect();
    if of_name.is_empty() {
        return Err(Failure::with_hint(
            format!("there is no network interface named `{name}`"),
            format!("this machine has: {}", names.join(", ")),
        )
        .into());
    }
    let ipv4 = |addr: &Option<nix::sys::socket::SockaddrStorage>| {
        addr.as_ref()
            .and_then(|addr| addr.as_sockaddr_in().map(|sin| sin.ip()))
    };
    let found = of_name.iter().find_map(|entry| {
        let broadcast = ipv4(&entry.broadcast)?;
        entry
            .flags
            .contains(InterfaceFlags::IFF_BROADCAST)
            .then_some((entry, broadcast))
    });
    let Some((entry, broadcast)) = found else {
        let loopback = of_name
            .iter()
            .any(|entry| entry.flags.contains(InterfaceFlags::IFF_LOOPBACK));
        let hint = if loopback {
            "the loopback interface has no broadcast flag; without --iface the target is 127.255.255.255, which the kernel does treat as broadcast"
        } else {
            "`ip -brief address` shows which interfaces have an IPv4 address; a point-to-point link or an interface without IPv4 cannot broadcast"
        };
        return Err(Failure::new(
            format!("the interface `{name}` has no IPv4 broadcast address"),
            Some(hint),
        )
        .into());
    };
    let address = ipv4(&entry.address);
    let netmask = ipv4(&entry.netmask);
    nar.info(
        "iface",
        json!({
            "name": name,
            "address": address.map(|ip| ip.to_string()),
            "netmask": netmask.map(|ip| ip.to_string()),
            "broadcast": broadcast.to_string(),
        }),
        format!(
            "{name}: address {}, netmask {}, broadcast {broadcast}",
            address.map_or("?".into(), |ip| ip.to_string()),
            netmask.map_or("?".into(), |ip| ip.to_string()),
        ),
    );
    nar.note("The broadcast address is the subnet's last address: the address with every host bit (the bits the netmask leaves out) set to 1.");
    Ok(broadcast)
}
