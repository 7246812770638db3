//! SCAFFOLD: the `tcp-echo` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-echo",
    summary: "A TCP echo server: every byte back, clients that vanish or reset, no CLOSE_WAIT, no leaked descriptors.",
    lesson: "tcp",
    role: Role::TcpServer,
    example: "python3 echo_server.py {port}",
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
