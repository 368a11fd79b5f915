//! Reconcilers for the custom resources.
