//! SCAFFOLD: the `tcp-client` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-client",
    summary: "A TCP client: connect, send, read the reply, close cleanly (FIN, not RST); netlab is the server.",
    lesson: "tcp",
    role: Role::TcpClient,
    example: "python3 echo_client.py {host} {port}",
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
