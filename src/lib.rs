//! Kubernetes operator for Plivo Caller Reputation.
//!
//! - [`api`]: the `BusinessProfile` and `CallerReputationNumber` custom resources.
//! - [`plivo`]: the typed Plivo REST client and callback signature checks.
//! - [`sandbox`]: a local server of Plivo's Profile and Number APIs for tests and demos.
//! - [`controller`]: the reconcilers.
//! - [`fence`]: the check that keeps a replica that lost its Lease from writing.
//! - [`operator`]: process wiring: configuration, HTTP server, leader election.

pub mod api;
pub mod controller;
pub mod fence;
pub mod operator;
pub mod plivo;
pub mod sandbox;
