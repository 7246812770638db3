//! SCAFFOLD: the `chatroom-server` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "chatroom-server",
    summary: "The chatroom's UDP server (L/C/Q): logins, fan-out to all but the sender, quit, bad datagrams survived.",
    lesson: "chatroom",
    role: Role::UdpServer,
    example: "python3 chat_server.py {port}",
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
