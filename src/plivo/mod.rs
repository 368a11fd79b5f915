//! Plivo REST client.
