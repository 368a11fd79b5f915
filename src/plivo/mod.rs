//! Plivo REST client.

/// Placeholder until the client lands.
#[derive(Clone)]
pub struct PlivoClient;
