//! Plivo REST client.

pub mod signature;

/// Placeholder until the client lands.
#[derive(Clone)]
pub struct PlivoClient;
