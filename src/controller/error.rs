//! Errors a reconcile returns to kube-runtime, and how long to wait after each.
//!
//! Only failures worth retrying reach the error policy: permanent Plivo
//! errors are turned into conditions inside the reconcile and wait for a change.

use std::time::Duration;

use rand::RngExt;

use crate::plivo;

/// A reconcile step that failed and should be retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("failed to {operation}")]
    Kube {
        operation: String,
        #[source]
        source: kube::Error,
    },

    /// A Plivo call failed with an error worth retrying; its text names the operation.
    #[error(transparent)]
    Plivo(#[from] plivo::Error),

    /// Reading the credentials Secret failed for a reason a retry may fix.
    #[error(transparent)]
    Credentials(#[from] super::credentials::CredentialsError),
}

impl Error {
    pub fn kube(operation: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let operation = operation.into();
        move |source| Self::Kube { operation, source }
    }

    /// The delay Plivo asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Plivo(source) => source.retry_after(),
            Self::Kube { .. } | Self::Credentials(_) => None,
        }
    }

    /// Whether the apiserver rejected a write because the object changed since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Kube { source: kube::Error::Api(status), .. } if status.code == 409
        )
    }
}

/// Renders an error with its whole `source()` chain on one line.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some library errors already print their source; do not repeat it.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Exponential backoff with full jitter: attempt 0 waits up to `base`, each
/// further attempt doubles the ceiling up to `cap`.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let floor = ceiling / 2;
    let spread = ceiling.saturating_sub(floor).as_millis() as u64;
    floor + Duration::from_millis(rand::rng().random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        for attempt in 0..40 {
            let delay = backoff_delay(attempt, base, cap);
            assert!(delay <= cap, "attempt {attempt} waited {delay:?}");
            let floor = base.saturating_mul(1u32 << attempt.min(16)).min(cap) / 2;
            assert!(
                delay >= floor,
                "attempt {attempt} waited {delay:?}, below {floor:?}"
            );
        }
    }

    #[test]
    fn chain_renders_every_source_once() {
        let io = std::io::Error::other("connection reset");
        let error = Error::Kube {
            operation: "read Secret demo/plivo".into(),
            source: kube::Error::Service(Box::new(io)),
        };
        let text = chain(&error);
        assert!(text.starts_with("failed to read Secret demo/plivo: "));
        assert_eq!(text.matches("connection reset").count(), 1, "{text}");
    }
}
