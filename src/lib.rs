//! goaround: an HTTP/1.1 load balancer, a drop-in replacement for GoAround.
//!
//! `main` parses flags ([`cli`]), validates them ([`config`]) and hands the result to
//! [`server::run`]. The I/O-free HTTP/1.1 codec lives in [`http1`]; backends, balancing,
//! health checks and forwarding in [`upstream`]; the `-config` file's locations in
//! [`routing`]; the control socket and metrics in their own modules; handing the listening
//! sockets to a new binary in [`upgrade`]. docs/ARCHITECTURE.md describes the threads and
//! why they are shaped so.
#![forbid(unsafe_code)]

mod accept;
mod access_log;
pub mod cache;
pub mod cli;
pub mod config;
pub mod control;
mod fast_hash;
pub mod http1;
mod json;
pub mod logging;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod stats;
pub mod status;
pub mod tls;
pub mod upgrade;
pub mod upstream;

#[cfg(test)]
mod test_util;
