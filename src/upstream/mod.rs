//! Everything on the backend side: the backends and their handles ([`backend`]), the live set
//! and taking a handle from it ([`set`]), balancing policies ([`policy`]) and the balancers
//! they can use ([`balancer`]), active health checks ([`health`]), the `-config` servers'
//! passive health ([`passive`]) and sending a request with ureq ([`forward`]).
//!
//! The client side (`server`) asks this module for a [`Lease`] and gives it back by dropping
//! it; it never sees a connection to a backend.

pub mod backend;
pub mod balancer;
pub mod forward;
pub mod health;
pub mod passive;
pub mod policy;
pub mod set;

pub use backend::{AgentSettings, Backend, Lease};
pub use set::{AcquireError, BackendSet, Change};
