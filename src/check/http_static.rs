//! SCAFFOLD: the `http-static` exercise (replace this header: what the exercise
//! asks of the student's program, each probe and what it reads from the
//! kernel, the lesson).

use super::session::{Exercise, ProbeInfo, Role, Session};

pub static EXERCISE: Exercise = Exercise {
    name: "http-static",
    summary: "An HTTP/1.1 server for static files: status, Content-Length and Content-Type right, HEAD, no path outside the root.",
    lesson: "http",
    role: Role::TcpServer,
    example: "python3 http_server.py {port} {root}",
    probes: PROBES,
    prepare: Some(prepare),
    run,
};

const PROBES: &[ProbeInfo] = &[ProbeInfo {
    name: "scaffold",
    checks: "SCAFFOLD: not built yet",
}];

fn run(session: &mut Session) {
    session.skip("scaffold", "SCAFFOLD: not built yet");
}

fn prepare(_root: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}
