//! The status a reconcile builds, and the one way it is written: conditions
//! from an outcome, the status patch only when something changed, and an
//! Event only when a condition moved.

use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{Resource, ResourceExt};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    Context, Error,
    patch::write_status,
    report::{Outcome, apply_outcome, apply_sync_failure, publish, publish_outcome},
};
use crate::api::{
    BusinessProfile, BusinessProfileStatus, CallerReputationNumber, CallerReputationNumberStatus,
    conditions::Reason,
};

/// A custom resource whose status carries conditions and an observed generation.
pub trait Reported:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
    type Status: Clone + Default + Serialize;

    fn current_status(&self) -> Option<&Self::Status>;
    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition>;
    fn set_observed_generation(status: &mut Self::Status, generation: Option<i64>);
}

impl Reported for BusinessProfile {
    type Status = BusinessProfileStatus;

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition> {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut Self::Status, generation: Option<i64>) {
        status.observed_generation = generation;
    }
}

impl Reported for CallerReputationNumber {
    type Status = CallerReputationNumberStatus;

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition> {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut Self::Status, generation: Option<i64>) {
        status.observed_generation = generation;
    }
}

/// The status being built during one reconcile of `object`.
pub struct Draft<'a, K: Reported> {
    pub object: &'a K,
    pub status: K::Status,
    /// The reconcile's clock reading, used for every timestamp it writes.
    pub now: Time,
}

impl<'a, K: Reported> Draft<'a, K> {
    pub fn new(object: &'a K, ctx: &Context) -> Self {
        Self {
            object,
            status: object.current_status().cloned().unwrap_or_default(),
            now: ctx.now(),
        }
    }

    pub fn generation(&self) -> Option<i64> {
        self.object.meta().generation
    }

    /// Applies `outcome`, writes the status if it changed, and publishes an Event when the conditions moved.
    pub async fn finish(mut self, ctx: &Context, outcome: &Outcome) -> Result<(), Error> {
        let generation = self.generation();
        K::set_observed_generation(&mut self.status, generation);
        let moved = apply_outcome(
            K::conditions(&mut self.status),
            outcome,
            generation,
            &self.now,
        );
        self.write(ctx).await?;
        if moved {
            publish_outcome(&ctx.recorder, self.object, outcome).await;
        }
        Ok(())
    }

    /// Records a failure that tells nothing about the state at Plivo, then writes.
    pub async fn finish_unsynced(
        mut self,
        ctx: &Context,
        reason: Reason,
        message: &str,
    ) -> Result<(), Error> {
        let generation = self.generation();
        let moved = apply_sync_failure(
            K::conditions(&mut self.status),
            reason,
            message,
            generation,
            &self.now,
        );
        self.write(ctx).await?;
        if moved {
            let warning = reason != Reason::Paused;
            publish(
                &ctx.recorder,
                self.object,
                warning,
                reason,
                reason.as_str(),
                message,
            )
            .await;
        }
        Ok(())
    }

    /// Writes the status as it is now, if it differs from the stored one.
    pub async fn write(&self, ctx: &Context) -> Result<(), Error> {
        let api = ctx.api::<K>(&self.object.namespace().unwrap_or_default());
        write_status(
            &api,
            self.object,
            self.object.current_status(),
            &self.status,
            false,
        )
        .await
        .map_err(Error::kube("write the status"))?;
        Ok(())
    }
}
