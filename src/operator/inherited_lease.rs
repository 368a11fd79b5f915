//! Renewal of a Lease that this identity already held when the process started.
//!
//! After a restart under the same identity (a container restart keeps
//! `$POD_NAME`) before the old Lease expired, `kube-lease-manager` reports
//! the Lease as acquired without writing it. The fence opens only on a Lease
//! write this process sent, so without one the controllers would run with a
//! closed fence until the library's first renewal, up to two thirds of the
//! Lease duration later. One renewal at once opens it.

use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::{
    Api,
    api::{Patch, PatchParams},
};

/// Outcome of [`renew_inherited`].
#[derive(Debug)]
pub enum Renewal {
    /// The Lease was renewed with this identity as holder.
    Renewed,
    /// Another identity holds the Lease now, or it changed between the read
    /// and the write; the election loop finds out on its next check.
    NotHolder,
}

/// Renews Lease `name` if `identity` holds it, with the Lease's
/// resourceVersion as precondition, so the write never lands on a Lease
/// another replica took meanwhile.
///
/// # Errors
/// Returns the Kubernetes API error of the read or of the write, except the
/// 409 Conflict of a changed Lease, which is [`Renewal::NotHolder`].
pub async fn renew_inherited(
    leases: &Api<Lease>,
    name: &str,
    identity: &str,
) -> Result<Renewal, kube::Error> {
    let lease = leases.get(name).await?;
    let holder = lease
        .spec
        .as_ref()
        .and_then(|spec| spec.holder_identity.as_deref());
    if holder != Some(identity) {
        return Ok(Renewal::NotHolder);
    }

    let patch = serde_json::json!({
        "metadata": { "resourceVersion": lease.metadata.resource_version },
        "spec": { "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()) },
    });
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Renewal::Renewed),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Renewal::NotHolder),
        Err(error) => Err(error),
    }
}
