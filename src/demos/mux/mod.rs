//! The three multiplexing echo servers: select, poll and epoll.
//!
//! SCAFFOLD: replaced by the issue that builds these demos.

pub mod epoll;
pub mod poll;
pub mod select;
