//! SCAFFOLD: the `udp-echo` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "udp-echo",
    summary:
        "A UDP echo server: reply to each datagram's sender; survive empty and oversized datagrams.",
    lesson: "udp",
    role: Role::UdpServer,
    example: "python3 udp_echo_server.py {port}",
    probes: PROBES,
    prepare: None,
    run,
};

const PROBES: &[ProbeInfo] = &[ProbeInfo {
    name: "scaffold",
    checks: "SCAFFOLD: not built yet",
}];

fn run(session: &mut Session) {
    session.skip("scaffold", "SCAFFOLD: not built yet");
}
