//! # chatroom-server: check a student's chat server
//!
//! The exercise: the course's UDP chat server, speaking the protocol of
//! `netlab chatroom` (`src/demos/chatroom/protocol.rs`). One socket, one
//! dict from each user's name to the address their datagrams come from,
//! one datagram per message, UTF-8, at most 1024 bytes, no newline:
//!
//! | The client sends | The server answers                                   |
//! |------------------|------------------------------------------------------|
//! | `L name`         | `OK` to it; `JOIN name` to everyone else             |
//! |                  | (`ERR name taken` when another address has the name) |
//! | `C name text`    | `MSG name text` to every user but the sender         |
//! | `Q name`         | `EXIT` to it; `LEAVE name` to everyone left          |
//! | `W name`         | `USERS name name ...`, sorted (the `/who` extension) |
//! | anything else    | `ERR reason` to the sender; nothing else changes     |
//!
//! The probes play several clients at once, each a UDP socket of its own
//! on loopback, and each probe logs in users of its own (earlier probes'
//! users stay logged in, as in a real room):
//!
//! - `login`: `L ana` is answered `OK`. Every other probe needs logins, so
//!   they are not run when this fails.
//! - `duplicate`: a second address asking for a name in use gets `ERR`,
//!   not `OK` (a server that says OK has just given bo's messages away).
//! - `fan-out`: of three users, one says a line; the other two get `MSG
//!   name text`, the sender gets nothing back. The text has two spaces in
//!   a row, which must come through. `JOIN` for the users who came after
//!   is expected too, and none for a user's own login, as warnings.
//! - `quit`: `Q` gets `EXIT`, the others get `LEAVE`, and a line said
//!   afterwards no longer reaches the one who left.
//! - `malformed`: an empty datagram, bytes that are not UTF-8, a word that
//!   is no request, a request without its name, and 1,500 bytes: the
//!   server survives each and keeps its users (a later `C` still fans
//!   out). An `ERR` for each is expected, as a warning. The report adds
//!   the socket's line in /proc/net/udp: still bound, datagrams dropped.
//! - `spoofed` (a warning at most): a stranger's `C kim ...` must not reach
//!   the room as kim's line.
//! - `who` (a warning at most): `W mo` is answered with the sorted names.
//!   abe logs in just before, after everyone else: a server that lists
//!   its dict in login order (no sorted()) puts abe last.
//!
//! Try it: `netlab check chatroom-server -- python3 chat_server.py {port}`.
//! netlab's own server passes: `netlab check chatroom-server -- netlab
//! chatroom server --port {port}`. A reference answer in Python:
//! `tests/exercises/chatroom/good.py`. Lesson: `netlab lesson chatroom`.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::net::passed;
use super::net::show;
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Status, Target};
use super::udp_echo::{client_socket, socket_fact};

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

const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: "login",
        checks: "L name is answered OK",
    },
    ProbeInfo {
        name: "duplicate",
        checks: "a name already in use is refused with ERR",
    },
    ProbeInfo {
        name: "fan-out",
        checks: "C from one of three users reaches the other two as MSG, and not the sender",
    },
    ProbeInfo {
        name: "quit",
        checks: "Q is answered EXIT, the others get LEAVE, and the user gets no more lines",
    },
    ProbeInfo {
        name: "malformed",
        checks:
            "bad datagrams (empty, not UTF-8, no request, too long) are survived; users are kept",
    },
    ProbeInfo {
        name: "spoofed",
        checks: "a C naming someone else, from a stranger's address, is not passed on",
    },
    ProbeInfo {
        name: "who",
        checks: "W name is answered with USERS and the sorted names (the /who extension)",
    },
];

/// How long one expected datagram may take. A server answers in well under
/// a millisecond on loopback; the margin is for a loaded machine.
const REPLY_WAIT: f64 = 1.0;
/// How long to keep listening for datagrams that must NOT come (a MSG back
/// to its sender) once the ones that must have arrived. The server sends
/// them in the same loop, so they would be close behind.
const SETTLE: Duration = Duration::from_millis(250);
/// How many datagrams each socket keeps in one `gather` (and reads per
/// turn): far more than any probe expects, and a bound on a flood.
const KEEP: usize = 64;

const HINT_LOGIN: &str = "Answer L name with the two bytes OK (no newline), sent with sendto() to the address recvfrom() returned, after storing name -> address in your dict.";
const HINT_DUPLICATE: &str = "Before adding a name, look it up in your dict: if another address already has it, answer ERR name taken and leave the dict as it was.";
const HINT_DUPLICATE_SILENT: &str = "Refuse a taken name out loud: send ERR name taken to the address that asked, or its client waits for an answer that never comes.";
const HINT_FANOUT_MISSING: &str = "For C name text, send MSG name text to every address in your dict except the sender's: loop over all the users, not only the first or the last.";
const HINT_FANOUT_SENDER: &str = "Skip the sender when you fan a C out: its client has shown the line already, and a MSG back to it is printed twice.";
const HINT_FANOUT_STRIP: &str = "Forward the text exactly as it came: do not strip() it, or the datagram before you split it, since spaces at the ends of a line are part of the text (a datagram has no newline to remove).";
const HINT_FANOUT_FORMAT: &str = "Forward C name text as exactly MSG name text: the word MSG, a space, the sender's name, a space, and the text unchanged, with no newline.";
const HINT_JOIN: &str = "When someone logs in, send JOIN name to each user already there, so their clients can say who arrived.";
const HINT_JOIN_SELF: &str = "Send JOIN name only to the users who were there before: the newcomer learns it is in from its OK, and a JOIN of its own makes its client announce its own arrival.";
const HINT_FANOUT_SPACES: &str = "Forward the text exactly as it came, spaces and all: split only the first two spaces (msg.split(\" \", 2)) and keep the rest whole; split() with no argument and \" \".join() squeeze runs of spaces into one.";
const HINT_EXIT: &str =
    "Answer Q name with EXIT to its sender: the client waits for that word before it ends.";
const HINT_LEAVE: &str =
    "After a Q, send LEAVE name to every user still in your dict, so the others learn who left.";
const HINT_STILL_LISTED: &str =
    "On Q, delete the name from your dict: a user who left should receive no more lines.";
const HINT_MALFORMED: &str = "A datagram you cannot parse must not end your server or empty its dict: check the length, decode inside try/except UnicodeDecodeError, check how many parts split() gave, answer ERR and go on.";
const HINT_MALFORMED_NO_ERR: &str = "Answer each datagram you refuse with ERR and a reason, to its sender only, so a client can tell why nothing happened.";
const HINT_SPOOFED: &str = "Check that a C comes from the address its name logged in from: anyone can write any name into a datagram, so a stranger can speak as someone else.";
const HINT_WHO: &str = "For the /who extension, answer W name with USERS and the logged-in names, sorted, separated by single spaces.";
const HINT_WHO_SPACES: &str = "Join the names with single spaces and nothing after the last one: \"USERS \" + \" \".join(sorted(users)), rather than adding a space after each name.";
const HINT_WHO_REVERSE: &str = "Sort the names from A to Z: sorted(users), without reverse=True.";
const HINT_WHO_ORDER: &str =
    "Sort the names before you join them: \"USERS \" + \" \".join(sorted(users)).";
const HINT_WHO_UNSORTED: &str = "Sort the names before you join them: \"USERS \" + \" \".join(sorted(users)). A dict keeps the order in which the users logged in, which is not sorted.";
const HINT_OWN_SOCKET: &str = "netlab could not use a UDP socket of its own on loopback; check that the loopback interface is up (ip link show lo) and run the check again.";

fn run(session: &mut Session) {
    if session.probe("login", 2.0, login) != Status::Pass {
        for probe in &PROBES[1..] {
            session.skip(
                probe.name,
                "not run: it logs users in, and the probe login did not pass",
            );
        }
        return;
    }
    session.probe("duplicate", 3.0, duplicate);
    session.probe("fan-out", 4.0, fan_out);
    session.probe("quit", 4.0, quit);
    session.probe("malformed", 5.0, malformed);
    session.probe("spoofed", 3.0, spoofed);
    session.probe("who", 3.0, who);
}

/// `login`: `L ana` gets `OK`.
fn login(target: Target, deadline: Instant) -> Outcome {
    let expected = "L ana is answered with OK";
    match log_in(&target, "ana", deadline) {
        Ok(user) => Outcome::pass(
            expected,
            format!("ana logged in from {} and got OK", user.address()),
        ),
        Err(Trouble::Netlab(err)) => own_socket_failure(expected, &err),
        Err(Trouble::Program(happened)) => Outcome::fail(expected, happened, HINT_LOGIN),
    }
}

/// `duplicate`: bo logs in, then a second address asks for "bo".
fn duplicate(target: Target, deadline: Instant) -> Outcome {
    let expected = "a second address asking for the name bo gets ERR (name taken), not OK";
    let bo = match log_in(&target, "bo", deadline) {
        Ok(user) => user,
        Err(trouble) => return trouble.into_outcome(expected),
    };
    let intruder = match client_socket(target.addr) {
        Ok(socket) => socket,
        Err(err) => return own_socket_failure(expected, &err),
    };
    let answer = match ask(&target, &intruder, b"L bo", deadline) {
        Ok(answer) => answer,
        Err(err) => return own_socket_failure(expected, &err),
    };
    let from = format!(
        "bo logged in from {}; L bo from {}",
        bo.address(),
        address(&intruder)
    );
    match answer {
        Some(reply) if reply.starts_with(b"ERR ") => Outcome::pass(
            expected,
            format!("{from} was refused with {}", show(&reply)),
        ),
        Some(reply) if reply == b"OK" => Outcome::fail(
            expected,
            format!("{from} was answered OK: two addresses now claim the name bo"),
            HINT_DUPLICATE,
        ),
        Some(reply) => Outcome::fail(
            expected,
            format!("{from} was answered with {}", show(&reply)),
            HINT_DUPLICATE,
        ),
        None => Outcome::fail(
            expected,
            format!("{from} got no answer{}", ending(&target)),
            HINT_DUPLICATE_SILENT,
        ),
    }
}

/// `fan-out`: cy, di and ed log in (in that order); cy says a line.
fn fan_out(target: Target, deadline: Instant) -> Outcome {
    // Two spaces in a row: the text must come through unchanged.
    // A space at the end: the text must not be strip()ped either.
    let line = "hello di and ed,  你好 ";
    let msg = format!("MSG cy {line}");
    let expected = format!("di and ed each get \"{msg}\"; cy, the sender, gets nothing back");
    let users = match log_in_all(&target, &["cy", "di", "ed"], deadline) {
        Ok(users) => users,
        Err(trouble) => return trouble.into_outcome(&expected),
    };
    // The JOINs the later logins caused: cy hears of di and ed, di of ed.
    let joins_wanted: [&[&str]; 3] = [&["JOIN di", "JOIN ed"], &["JOIN ed"], &[]];
    let joins = match gather(
        &target,
        &sockets(&users),
        soon(&target, deadline),
        |inboxes| {
            joins_wanted
                .iter()
                .zip(inboxes)
                .all(|(wanted, inbox)| wanted.iter().all(|w| has(inbox, w.as_bytes())))
        },
    ) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(&expected, &err),
    };
    let missing_joins: Vec<String> = joins_wanted
        .iter()
        .zip(&joins)
        .zip(&users)
        .flat_map(|((wanted, inbox), user)| {
            wanted
                .iter()
                .filter(|w| !has(inbox, w.as_bytes()))
                .map(move |w| format!("{} got no \"{w}\"", user.name))
        })
        .collect();

    let said = format!("C cy {line}");
    if let Err(err) = users[0].socket.send_to(said.as_bytes(), target.addr) {
        return own_socket_failure(&expected, &err);
    }
    let inboxes = match gather_then_settle(&target, &sockets(&users), deadline, |inboxes| {
        has(&inboxes[1], msg.as_bytes()) && has(&inboxes[2], msg.as_bytes())
    }) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(&expected, &err),
    };
    // What each got that carries the line's text, in whatever form.
    let carrying = |inbox: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        inbox
            .iter()
            .filter(|d| contains(d, line.as_bytes()))
            .cloned()
            .collect()
    };
    let sender_got = carrying(&inboxes[0]);
    for (user, inbox) in users.iter().zip(&inboxes).skip(1) {
        if has(inbox, msg.as_bytes()) {
            continue;
        }
        let close = carrying(inbox);
        let stripped = inbox.iter().find(|d| *d == msg.trim_end().as_bytes());
        if let (None, Some(other)) = (close.first(), stripped) {
            return Outcome::fail(
                &expected,
                format!(
                    "{} got {} instead: the space at the end of cy's text was cut off",
                    user.name,
                    show(other)
                ),
                HINT_FANOUT_STRIP,
            );
        }
        let squeezed = inbox.iter().find(|d| {
            *d != msg.as_bytes()
                && squeeze(d).trim_ascii_end() == squeeze(msg.as_bytes()).trim_ascii_end()
        });
        return match (close.first(), squeezed) {
            (Some(other), _) => Outcome::fail(
                &expected,
                format!("{} got {} instead", user.name, show(other)),
                HINT_FANOUT_FORMAT,
            ),
            (None, Some(other)) => Outcome::fail(
                &expected,
                format!(
                    "{} got {} instead: the two spaces in a row in cy's text came out as one",
                    user.name,
                    show(other)
                ),
                HINT_FANOUT_SPACES,
            ),
            (None, None) => Outcome::fail(
                &expected,
                format!("{} got no MSG for cy's line{}", user.name, ending(&target)),
                HINT_FANOUT_MISSING,
            ),
        };
    }
    if let Some(echoed) = sender_got.first() {
        return Outcome::fail(
            &expected,
            format!(
                "di and ed got the line, but cy, who sent it, got {} back as well",
                show(echoed)
            ),
            HINT_FANOUT_SENDER,
        );
    }
    // A JOIN for the newcomer itself, before its OK (kept by log_in) or
    // after it (among the JOINs gathered above).
    let own_joins: Vec<String> = users
        .iter()
        .zip(&joins)
        .filter(|(user, inbox)| {
            let own = format!("JOIN {}", user.name);
            has(&user.before_ok, own.as_bytes()) || has(inbox, own.as_bytes())
        })
        .map(|(user, _)| {
            format!(
                "{} got \"JOIN {}\", a JOIN for its own login",
                user.name, user.name
            )
        })
        .collect();
    if !own_joins.is_empty() {
        return Outcome::warn(
            &expected,
            format!(
                "the line reached di and ed and not cy; but {}",
                own_joins.join(", ")
            ),
            HINT_JOIN_SELF,
        );
    }
    if !missing_joins.is_empty() {
        return Outcome::warn(
            &expected,
            format!(
                "the line reached di and ed and not cy; but {}",
                missing_joins.join(", ")
            ),
            HINT_JOIN,
        );
    }
    Outcome::pass(
        &expected,
        "di and ed got the MSG, cy got nothing back; the JOINs for di and ed came too",
    )
}

/// `quit`: fay, gus and hal log in; fay sends `Q fay`; then gus says a line.
fn quit(target: Target, deadline: Instant) -> Outcome {
    let expected =
        "fay gets EXIT, gus and hal get LEAVE fay, and gus's next line no longer reaches fay";
    let users = match log_in_all(&target, &["fay", "gus", "hal"], deadline) {
        Ok(users) => users,
        Err(trouble) => return trouble.into_outcome(expected),
    };
    // The JOINs of the logins, read now so they are not taken for replies.
    if let Err(err) = gather(
        &target,
        &sockets(&users),
        soon(&target, deadline),
        |inboxes| has(&inboxes[0], b"JOIN hal") && has(&inboxes[1], b"JOIN hal"),
    ) {
        return own_socket_failure(expected, &err);
    }
    if let Err(err) = users[0].socket.send_to(b"Q fay", target.addr) {
        return own_socket_failure(expected, &err);
    }
    let until = soon(&target, deadline);
    let inboxes = match gather(&target, &sockets(&users), until, |inboxes| {
        has(&inboxes[0], b"EXIT")
            && has(&inboxes[1], b"LEAVE fay")
            && has(&inboxes[2], b"LEAVE fay")
    }) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if !has(&inboxes[0], b"EXIT") {
        return Outcome::fail(
            expected,
            format!(
                "fay got no EXIT after Q fay (it got {}){}",
                listing(&inboxes[0]),
                ending(&target)
            ),
            HINT_EXIT,
        );
    }
    let not_told: Vec<&str> = users[1..]
        .iter()
        .zip(&inboxes[1..])
        .filter(|(_, inbox)| !has(inbox, b"LEAVE fay"))
        .map(|(user, _)| user.name)
        .collect();
    if !not_told.is_empty() {
        return Outcome::fail(
            expected,
            format!(
                "fay got EXIT, but {} got no LEAVE fay",
                not_told.join(" and ")
            ),
            HINT_LEAVE,
        );
    }
    let line = b"C gus is fay still here?";
    if let Err(err) = users[1].socket.send_to(line, target.addr) {
        return own_socket_failure(expected, &err);
    }
    // In whatever form the server forwards it (the probe fan-out judges
    // that), the line's text must reach hal and not fay.
    let text = b"is fay still here?";
    let after = match gather_then_settle(&target, &sockets(&users), deadline, |inboxes| {
        carries(&inboxes[2], text)
    }) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if carries(&after[0], text) {
        return Outcome::fail(
            expected,
            "fay got EXIT and the others LEAVE fay, but gus's next line still reached fay",
            HINT_STILL_LISTED,
        );
    }
    if !carries(&after[2], text) {
        return Outcome::fail(
            expected,
            format!(
                "fay left properly, but gus's next line did not reach hal{}",
                ending(&target)
            ),
            HINT_FANOUT_MISSING,
        );
    }
    Outcome::pass(
        expected,
        "fay got EXIT, gus and hal got LEAVE fay, and gus's next line reached hal only",
    )
}

/// The bad datagrams of the `malformed` probe, and how the report names them.
fn bad_datagrams() -> Vec<(&'static str, Vec<u8>)> {
    let mut oversized = b"C ivy ".to_vec();
    oversized.resize(1500, b'x');
    vec![
        ("an empty datagram", Vec::new()),
        ("bytes that are not UTF-8", b"C ivy \xff\xfe\xfd".to_vec()),
        ("a word that is no request", b"hello".to_vec()),
        ("L without a name", b"L".to_vec()),
        ("1,500 bytes, over the 1,024-byte limit", oversized),
    ]
}

/// `malformed`, with the program's socket as /proc/net/udp shows it after
/// the bad datagrams (while the program lives): still bound, and how many
/// datagrams the kernel dropped for it.
fn malformed(target: Target, deadline: Instant) -> Outcome {
    let outcome = malformed_datagrams(&target, deadline);
    if target.alive() {
        outcome.with_fact(socket_fact(&target))
    } else {
        outcome
    }
}

/// ivy and jo log in; a stranger sends each bad datagram and waits a
/// moment for ERR; then ivy says a line, which jo must get.
fn malformed_datagrams(target: &Target, deadline: Instant) -> Outcome {
    let expected = "each bad datagram is answered with ERR, and the server goes on with its users: ivy's next line reaches jo";
    let users = match log_in_all(target, &["ivy", "jo"], deadline) {
        Ok(users) => users,
        Err(trouble) => return trouble.into_outcome(expected),
    };
    let stranger = match client_socket(target.addr) {
        Ok(socket) => socket,
        Err(err) => return own_socket_failure(expected, &err),
    };
    let mut unanswered = Vec::new();
    let mut reasons = Vec::new();
    for (what, bytes) in bad_datagrams() {
        // Shorter than REPLY_WAIT: a server that refuses in silence costs
        // this wait for each of the five.
        let until = deadline.min(Instant::now() + target.time(0.3));
        let answer = match stranger.send_to(&bytes, target.addr).and_then(|_| {
            gather(target, &[&stranger], until, |inboxes| {
                !inboxes[0].is_empty()
            })
        }) {
            Ok(mut inboxes) => inboxes.swap_remove(0),
            Err(err) => return own_socket_failure(expected, &err),
        };
        if let Some(ended) = target.ended() {
            return Outcome::fail(
                expected,
                format!("{ended} after it received {what}"),
                HINT_MALFORMED,
            );
        }
        match answer.first() {
            Some(reply) if reply.starts_with(b"ERR ") => reasons.push(show(reply)),
            Some(reply) => unanswered.push(format!("{what} (answered {})", show(reply))),
            None => unanswered.push(format!("{what} (no answer)")),
        }
    }
    let line = b"C ivy still here after the bad datagrams?";
    // The line's text must reach jo, in whatever form (fan-out judges that).
    let text = b"still here after the bad datagrams?";
    if let Err(err) = users[0].socket.send_to(line, target.addr) {
        return own_socket_failure(expected, &err);
    }
    let inboxes = match gather(
        target,
        &sockets(&users),
        soon(target, deadline),
        |inboxes| carries(&inboxes[1], text),
    ) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if !carries(&inboxes[1], text) {
        return Outcome::fail(
            expected,
            format!(
                "after the bad datagrams, ivy's line did not reach jo{}",
                ending(target)
            ),
            HINT_MALFORMED,
        );
    }
    if !unanswered.is_empty() {
        return Outcome::warn(
            expected,
            format!(
                "the server survived all five and ivy's line reached jo; but no ERR came for {}",
                unanswered.join(", ")
            ),
            HINT_MALFORMED_NO_ERR,
        );
    }
    Outcome::pass(
        expected,
        format!(
            "all five were refused ({}), and ivy's line still reached jo",
            reasons.join(", ")
        ),
    )
}

/// `spoofed`: kim and lee log in; a stranger sends `C kim ...`.
fn spoofed(target: Target, deadline: Instant) -> Outcome {
    let expected =
        "a stranger's C kim ... is refused (ERR to the stranger), and lee gets no MSG from kim";
    let users = match log_in_all(&target, &["kim", "lee"], deadline) {
        Ok(users) => users,
        Err(trouble) => return trouble.into_outcome(expected),
    };
    let stranger = match client_socket(target.addr) {
        Ok(socket) => socket,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if let Err(err) = stranger.send_to(b"C kim I am not really kim", target.addr) {
        return own_socket_failure(expected, &err);
    }
    let msg = b"MSG kim I am not really kim";
    let all = [&users[0].socket, &users[1].socket, &stranger];
    let inboxes = match gather_then_settle(&target, &all, deadline, |inboxes| {
        !inboxes[2].is_empty() || has(&inboxes[1], msg)
    }) {
        Ok(inboxes) => inboxes,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if let Some(ended) = target.ended() {
        return Outcome::fail(
            expected,
            format!("{ended} after a C naming another user's name"),
            HINT_MALFORMED,
        );
    }
    if has(&inboxes[1], msg) {
        return Outcome::warn(
            expected,
            format!(
                "the stranger at {} spoke as kim: lee got \"MSG kim I am not really kim\"",
                address(&stranger)
            ),
            HINT_SPOOFED,
        );
    }
    let answer = match inboxes[2].first() {
        Some(reply) => format!("the stranger got {}", show(reply)),
        None => "the stranger got no answer".to_string(),
    };
    Outcome::pass(expected, format!("lee got nothing; {answer}"))
}

/// `who`: mo logs in, then abe (a name that sorts before every other, so
/// a list kept in login order is not sorted), and mo sends `W mo`.
fn who(target: Target, deadline: Instant) -> Outcome {
    let expected =
        "W mo is answered with USERS and the logged-in names, sorted, mo and abe among them";
    let users = match log_in_all(&target, &["mo", "abe"], deadline) {
        Ok(users) => users,
        Err(trouble) => return trouble.into_outcome(expected),
    };
    let mo = &users[0];
    // mo may hear "JOIN abe" first: the answer is the first datagram that
    // is not a JOIN.
    let not_join = |d: &Vec<u8>| !d.starts_with(b"JOIN ");
    let inbox = match mo.socket.send_to(b"W mo", target.addr).and_then(|_| {
        gather(&target, &[&mo.socket], soon(&target, deadline), |inboxes| {
            inboxes[0].iter().any(not_join)
        })
    }) {
        Ok(mut inboxes) => inboxes.swap_remove(0),
        Err(err) => return own_socket_failure(expected, &err),
    };
    let Some(reply) = inbox.into_iter().find(not_join) else {
        return Outcome::warn(
            expected,
            format!("W mo got no answer{}", ending(&target)),
            HINT_WHO,
        );
    };
    let text = String::from_utf8_lossy(&reply);
    let names: Option<Vec<&str>> = text
        .strip_prefix("USERS ")
        .map(|rest| rest.split(' ').collect());
    let answered = format!("W mo was answered {}", show(&reply));
    let Some(names) = names.filter(|names| names.contains(&"mo") && names.contains(&"abe")) else {
        return Outcome::warn(expected, answered, HINT_WHO);
    };
    // An empty name first: a space too many is no question of order.
    if names.iter().any(|name| name.is_empty()) {
        let why = if names.last() == Some(&"") {
            "the USERS line ends with a space, so split(\" \") of it gives an empty name at the end"
        } else if names.first() == Some(&"") {
            "two spaces follow USERS, so split(\" \") of the line gives an empty first name"
        } else {
            "two names are separated by two spaces, so split(\" \") of the line gives an empty name between them"
        };
        return Outcome::warn(expected, format!("{answered}: {why}"), HINT_WHO_SPACES);
    }
    let Some(pair) = names.windows(2).find(|pair| pair[0] >= pair[1]) else {
        return Outcome::pass(expected, answered);
    };
    let unsorted = format!(
        "{answered}: not sorted, {} comes before {}",
        pair[0], pair[1]
    );
    if names.windows(2).all(|pair| pair[0] > pair[1]) {
        return Outcome::warn(
            expected,
            format!("{answered}: sorted from Z to A, not from A to Z"),
            HINT_WHO_REVERSE,
        );
    }
    // abe logged in last: at the end, after mo, is where login order puts
    // it (a dict keeps the order of insertion).
    let at = |who: &str| names.iter().position(|name| *name == who);
    if names.last() == Some(&"abe") && at("mo") < at("abe") {
        return Outcome::warn(
            expected,
            format!("{unsorted} (abe logged in last, after mo: this is the order of login)"),
            HINT_WHO_UNSORTED,
        );
    }
    Outcome::warn(expected, unsorted, HINT_WHO_ORDER)
}

/// A logged-in user: a name and the socket (address) it logged in from.
struct User {
    name: &'static str,
    socket: UdpSocket,
    /// The other datagrams that came with its OK (a JOIN for itself).
    before_ok: Vec<Vec<u8>>,
}

impl User {
    fn address(&self) -> String {
        address(&self.socket)
    }
}

/// Why a probe could not do what it needed before its own test began.
enum Trouble {
    /// netlab's own socket failed.
    Netlab(io::Error),
    /// The program did not answer a login with OK: what happened instead.
    Program(String),
}

impl Trouble {
    fn into_outcome(self, expected: &str) -> Outcome {
        match self {
            Trouble::Netlab(err) => own_socket_failure(expected, &err),
            Trouble::Program(happened) => Outcome::fail(
                expected,
                format!("the users could not log in: {happened}"),
                HINT_LOGIN,
            ),
        }
    }
}

/// Log `name` in from a new socket: `L name`, and `OK` back. A datagram
/// before the OK (a JOIN for the newcomer itself) does not stop the login;
/// it is kept, and `fan-out` warns about it.
fn log_in(target: &Target, name: &'static str, deadline: Instant) -> Result<User, Trouble> {
    let socket = client_socket(target.addr).map_err(Trouble::Netlab)?;
    let request = format!("L {name}");
    socket
        .send_to(request.as_bytes(), target.addr)
        .map_err(Trouble::Netlab)?;
    let answered = |d: &Vec<u8>| d == b"OK" || d.starts_with(b"ERR");
    let mut inboxes = gather(target, &[&socket], soon(target, deadline), |inboxes| {
        inboxes[0].iter().any(answered)
    })
    .map_err(Trouble::Netlab)?;
    let inbox = inboxes.swap_remove(0);
    if has(&inbox, b"OK") {
        let before_ok = inbox.into_iter().filter(|d| d != b"OK").collect();
        return Ok(User {
            name,
            socket,
            before_ok,
        });
    }
    match inbox.iter().find(|d| answered(d)).or(inbox.first()) {
        Some(reply) => Err(Trouble::Program(format!(
            "L {name} was answered {} instead of \"OK\"",
            show(reply)
        ))),
        None => Err(Trouble::Program(format!(
            "L {name} got no answer{}",
            ending(target)
        ))),
    }
}

/// Log several users in, one after the other.
fn log_in_all(
    target: &Target,
    names: &[&'static str],
    deadline: Instant,
) -> Result<Vec<User>, Trouble> {
    names
        .iter()
        .map(|name| log_in(target, name, deadline))
        .collect()
}

/// Send `request` from `socket` and wait (REPLY_WAIT at most) for the first
/// datagram back.
fn ask(
    target: &Target,
    socket: &UdpSocket,
    request: &[u8],
    deadline: Instant,
) -> io::Result<Option<Vec<u8>>> {
    socket.send_to(request, target.addr)?;
    let mut inboxes = gather(target, &[socket], soon(target, deadline), |inboxes| {
        !inboxes[0].is_empty()
    })?;
    Ok(inboxes.swap_remove(0).into_iter().next())
}

/// What each socket received, in order, one list per socket.
type Inboxes = Vec<Vec<Vec<u8>>>;

/// Read every socket, again and again, until `done` says enough has come,
/// `until` passes, or the program has exited. Datagrams from anyone but the
/// program are left out.
fn gather(
    target: &Target,
    sockets: &[&UdpSocket],
    until: Instant,
    done: impl Fn(&Inboxes) -> bool,
) -> io::Result<Inboxes> {
    let mut inboxes: Inboxes = vec![Vec::new(); sockets.len()];
    // The largest reply the protocol allows is 1,024 bytes; a bigger
    // buffer shows a server that breaks the limit instead of cutting it.
    let mut buf = vec![0u8; 65_536];
    for socket in sockets {
        // Non-blocking, so one loop can look at every socket in turn.
        socket.set_nonblocking(true)?;
    }
    loop {
        let mut got_any = false;
        for (socket, inbox) in sockets.iter().zip(inboxes.iter_mut()) {
            // A bounded number per turn: a program that floods one socket
            // must not keep the loop from its deadline.
            for _ in 0..KEEP {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == target.addr => {
                        if inbox.len() < KEEP {
                            inbox.push(buf[..n].to_vec());
                        }
                        got_any = true;
                    }
                    Ok(_) => {} // someone else's datagram
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    // Interrupted, or an ICMP error left by an earlier
                    // datagram: no datagram, look again.
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
                        ) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if done(&inboxes) || passed(until) || !target.alive() {
            return Ok(inboxes);
        }
        if !got_any {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `gather` until `done` (or REPLY_WAIT), then SETTLE longer, for any
/// datagram that should not come.
fn gather_then_settle(
    target: &Target,
    sockets: &[&UdpSocket],
    deadline: Instant,
    done: impl Fn(&Inboxes) -> bool,
) -> io::Result<Inboxes> {
    let mut inboxes = gather(target, sockets, soon(target, deadline), done)?;
    let settle = deadline.min(Instant::now() + SETTLE);
    let later = gather(target, sockets, settle, |_| false)?;
    for (inbox, more) in inboxes.iter_mut().zip(later) {
        inbox.extend(more);
    }
    Ok(inboxes)
}

/// REPLY_WAIT from now, but not past the probe's deadline.
fn soon(target: &Target, deadline: Instant) -> Instant {
    deadline.min(Instant::now() + target.time(REPLY_WAIT))
}

fn sockets(users: &[User]) -> Vec<&UdpSocket> {
    users.iter().map(|user| &user.socket).collect()
}

/// Did this exact datagram arrive?
fn has(inbox: &[Vec<u8>], datagram: &[u8]) -> bool {
    inbox.iter().any(|d| d == datagram)
}

/// Did a datagram with `text` in it arrive?
fn carries(inbox: &[Vec<u8>], text: &[u8]) -> bool {
    inbox.iter().any(|d| contains(d, text))
}

/// The datagram with every run of spaces squeezed into one, to tell a
/// server that rebuilt the text with split() and join().
fn squeeze(datagram: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(datagram.len());
    for &byte in datagram {
        if !(byte == b' ' && out.last() == Some(&b' ')) {
            out.push(byte);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The datagrams a socket got, for the report: "nothing", or a list.
fn listing(inbox: &[Vec<u8>]) -> String {
    if inbox.is_empty() {
        return "nothing".to_string();
    }
    let shown: Vec<String> = inbox.iter().take(4).map(|d| show(d)).collect();
    shown.join(", ")
}

/// ": your program exited with status 1" once it has ended; "" before.
fn ending(target: &Target) -> String {
    match target.ended() {
        Some(ended) => format!(": {ended}"),
        None => String::new(),
    }
}

fn address(socket: &UdpSocket) -> String {
    socket
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_else(|_| "an unknown address".into())
}

/// netlab's own socket failed: not the student's fault, and said so.
fn own_socket_failure(expected: &str, err: &io::Error) -> Outcome {
    Outcome::fail(
        expected,
        format!("netlab's own UDP socket failed: {err}"),
        HINT_OWN_SOCKET,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_datagrams_are_bad_by_the_protocol() {
        use crate::demos::chatroom::protocol::parse_request;
        for (what, bytes) in bad_datagrams() {
            assert!(parse_request(&bytes).is_err(), "{what} parses");
        }
        assert!(bad_datagrams()
            .iter()
            .any(|(_, bytes)| bytes.len() > crate::demos::chatroom::protocol::MAX_DATAGRAM));
    }
}
