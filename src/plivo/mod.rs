//! Plivo REST client.

pub mod signature;
