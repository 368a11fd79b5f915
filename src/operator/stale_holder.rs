//! Clearing of another holder's Lease that stopped changing, judged by this
//! replica's monotonic clock.
//!
//! `kube-lease-manager` 0.13 sleeps until `renewTime + leaseDurationSeconds`
//! by the local wall clock before a standby reads the Lease again. A holder
//! whose clock runs ahead writes a `renewTime` in the future, so after it
//! dies the library's standby would wait for the skew as well, an hour for a
//! clock an hour ahead. [`clear_stale_holder`] does not wait for it. Once
//! the version another identity holds has stayed unchanged for its lease
//! duration plus [`MARGIN`], it clears the holder with that resourceVersion
//! as precondition. A renewal that landed meanwhile turns the write into a
//! 409 Conflict and nothing changes. After a clear the standby rebuilds its
//! lease manager, which finds the Lease unheld and takes it.
//!
//! The clear cannot make two leaders. The old holder's fence opens only for
//! the lease duration minus half the grace from the send of its last
//! accepted renewal, and this replica saw that renewal only after it was
//! accepted. The new holder's fence opens only on its own accepted write.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams},
};

use super::takeover::{LeaseObservations, StaleVersion};

/// Time past the lease duration before a standby clears the holder itself.
/// When `renewTime` is right, the library's own expiry path clears the
/// holder first (its wait and the takeover guard end one duration after the
/// last renewal arrived), so this path acts only when the recorded time lies
/// in the future.
pub const MARGIN: Duration = Duration::from_secs(1);

/// Pause after a failed clear before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Outcome of [`clear_holder`].
#[derive(Debug, PartialEq, Eq)]
pub enum Clear {
    /// The holder was removed.
    Cleared,
    /// The Lease no longer has the given resourceVersion.
    Changed,
}

/// Clears the holder of Lease `name` once another identity has left it
/// unchanged for its lease duration plus [`MARGIN`]. Completes with the
/// cleared holder's identity; never completes while the holder renews.
/// API errors are logged and retried.
pub async fn clear_stale_holder(
    leases: &Api<Lease>,
    name: &str,
    identity: &str,
    observations: &LeaseObservations,
) -> String {
    loop {
        let stale = observations.unchanged_for_duration(identity, MARGIN).await;
        match clear_holder(leases, name, &stale).await {
            Ok(Clear::Cleared) => return stale.holder,
            Ok(Clear::Changed) => {
                tracing::debug!(lease = %name, holder = %stale.holder, "Lease changed before the stale holder was cleared");
            }
            Err(error) => {
                tracing::warn!(error = %error, lease = %name, holder = %stale.holder, "Failed to clear a stale Lease holder; retrying");
            }
        }
        // The election client records the version this read returns, so the
        // next wait starts from the Lease as it is now.
        if let Err(error) = leases.get(name).await {
            tracing::debug!(error = %error, lease = %name, "Failed to read the Lease; retrying");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Removes the holder, times and duration of Lease `name` if it is still at
/// `stale.resource_version`, as the library's release of an expired Lease does.
///
/// # Errors
/// Returns the Kubernetes API error of the write, except the 409 Conflict of
/// a changed Lease, which is [`Clear::Changed`].
pub async fn clear_holder(
    leases: &Api<Lease>,
    name: &str,
    stale: &StaleVersion,
) -> Result<Clear, kube::Error> {
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": stale.resource_version },
        "spec": {
            "holderIdentity": null,
            "acquireTime": null,
            "renewTime": null,
            "leaseDurationSeconds": null,
        },
    });
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Clear::Cleared),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Clear::Changed),
        Err(error) => Err(error),
    }
}
