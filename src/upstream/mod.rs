//! Everything on the backend side that is not a socket: the backends and their `-n` slots
//! ([`backend`]), the live set, taking a slot from it and the queue of requests waiting for
//! one ([`set`]), balancing policies ([`policy`]), active health checks ([`health`]), and
//! what a failed attempt means ([`retry`]).
//!
//! The event loops (`server`) own every connection to a backend; this module tells them
//! which backend may take a request and keeps count of what is in flight.

pub mod backend;
pub mod health;
pub mod policy;
pub mod retry;
pub mod set;

pub use backend::{Backend, Slot};
pub use set::{AcquireError, Acquired, BackendSet, Change, Notify};
