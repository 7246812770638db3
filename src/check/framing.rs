//! SCAFFOLD: the `framing` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "framing",
    summary: "A TCP server for length-prefixed messages: each message answered whole, however the stream cuts it.",
    lesson: "sticky-packets",
    role: Role::TcpServer,
    example: "python3 framing_server.py {port}",
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
