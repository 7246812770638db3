//! SCAFFOLD: the `tcp-concurrent` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-concurrent",
    summary: "tcp-echo for many clients at once: one silent client must not stall the others; no zombies, no inherited listener.",
    lesson: "io-multiplexing",
    role: Role::TcpServer,
    example: "python3 concurrent_server.py {port}",
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
