//! Everything on the backend side that is not a socket: the backends and their `-n` slots
//! ([`backend`]), an upstream's live set of backends, taking a slot from it and the queue of
//! requests waiting for one ([`set`]), the balancers that order its backends ([`balancer`]),
//! active health checks ([`health`]), the `-config` servers' passive health ([`passive`]),
//! and what a failed attempt means ([`retry`]).
//!
//! The event loops (`server`) own every connection to a backend; this module tells them
//! which backend may take a request and keeps count of what is in flight.

pub mod backend;
pub mod balancer;
pub mod health;
pub mod passive;
pub mod retry;
pub mod routes;
pub mod set;

pub use backend::{Backend, Slot};
pub use set::{AcquireError, Acquired, BackendSet, Change, Notify};
