//! goaround: an HTTP/1.1 load balancer, a drop-in replacement for GoAround.
//!
//! `main` parses flags ([`cli`]), validates them ([`config`]) and hands the result to
//! [`server::run`]. The I/O-free HTTP/1.1 codec lives in [`http1`]; backends, balancing,
//! health checks and forwarding in [`upstream`]; the control socket and metrics in their own
//! modules; handing the listening sockets to a new binary in [`upgrade`] (public: `main`
//! takes them over at start). docs/ARCHITECTURE.md describes the threads and why they are shaped so.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod control;
pub mod http1;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod upgrade;
pub mod upstream;

#[cfg(test)]
mod test_util;
