//! Finding the Plivo profile of a BusinessProfile, creating it at most once.
//!
//! Plivo's profile create is not idempotent. Before calling it the operator
//! records a creation intent in the status with a write that fails on a stale
//! resourceVersion, and records the UUID right after. A restart that finds
//! the intent without a UUID looks the profile up by EIN instead of creating
//! again: Plivo allows one profile per EIN, so a profile with this EIN and the
//! alias from the intent is the one the interrupted create made.

use kube::ResourceExt;

use super::{Context, Error, desired};
use crate::{
    api::{BusinessProfile, BusinessProfileStatus, CreationIntent, conditions::Reason},
    controller::{patch::write_status, report::Outcome},
    plivo::{self, Account, Profile},
};

/// The Plivo profile behind a BusinessProfile, and how it was found.
pub struct Found {
    pub profile: Profile,
    pub reason: Reason,
}

impl Found {
    /// Returns the Ready message for a profile that matches the spec.
    pub fn message(&self) -> String {
        match self.reason {
            Reason::Created => format!("Created Plivo profile {}.", self.profile.profile_uuid),
            Reason::Adopted => format!("Adopted Plivo profile {}.", self.profile.profile_uuid),
            _ => format!(
                "Plivo profile {} matches the spec.",
                self.profile.profile_uuid
            ),
        }
    }
}

/// The reason no profile could be found or created in this reconcile.
pub enum Blocked {
    /// The user has to act, and the outcome tells how.
    Outcome(Outcome),
    /// A retry may succeed.
    Retry(Error),
}

impl From<Error> for Blocked {
    fn from(error: Error) -> Self {
        Self::Retry(error)
    }
}

/// Returns the Plivo profile for `profile`, adopting or creating it, and
/// records its UUID in `status` (writing the status at once after a create).
pub async fn find_or_create(
    profile: &BusinessProfile,
    account: &Account,
    ctx: &Context,
    status: &mut BusinessProfileStatus,
) -> Result<Found, Blocked> {
    if let Some(uuid) = &profile.spec.profile_uuid {
        // A profile this resource created cannot be swapped for another one: its
        // fields would be written over the adopted profile, and the created one lost.
        if let Some(created) = status
            .profile_uuid
            .as_deref()
            .filter(|created| created != uuid)
        {
            return Err(Blocked::Outcome(Outcome::blocked(
                Reason::UpdateRejected,
                format!(
                    "This resource created Plivo profile {created}; spec.profileUUID cannot switch it to {uuid}. Delete this BusinessProfile (deletionPolicy Orphan keeps {created}) and create one that adopts {uuid}."
                ),
            )));
        }
        let found = adopt(account, uuid).await?;
        status.creation_intent = None;
        return Ok(found);
    }

    if let Some(uuid) = status.profile_uuid.clone() {
        match account.get_profile(&uuid).await {
            Ok(existing) => {
                return Ok(Found {
                    profile: existing,
                    reason: Reason::Created,
                });
            }
            Err(plivo::Error::NotFound { .. }) => {
                crate::controller::report::publish(
                    &ctx.recorder,
                    profile,
                    true,
                    Reason::ProfileNotFound,
                    "Create",
                    &format!(
                        "Plivo profile {uuid} was deleted outside the operator; creating it again."
                    ),
                )
                .await;
                status.profile_uuid = None;
            }
            Err(error) => return Err(retry_or_outcome(error)),
        }
    }

    if let Some(intent) = status.creation_intent.clone()
        && let Some(found) = lookup(profile, account, Some(&intent)).await?
    {
        return record(profile, ctx, status, found, Reason::Created).await;
    }

    create(profile, account, ctx, status).await
}

async fn adopt(account: &Account, uuid: &str) -> Result<Found, Blocked> {
    match account.get_profile(uuid).await {
        Ok(existing) => Ok(Found {
            profile: existing,
            reason: Reason::Adopted,
        }),
        Err(plivo::Error::NotFound { .. }) => Err(Blocked::Outcome(Outcome::blocked(
            Reason::ProfileNotFound,
            format!(
                "Plivo has no profile {uuid} on this account; correct spec.profileUUID or check the credentials."
            ),
        ))),
        Err(error) => Err(retry_or_outcome(error)),
    }
}

/// Looks for this resource's profile among the account's profiles by EIN.
/// Returns `Blocked` with `ProfileExists` when a profile with the EIN exists
/// that this resource did not create.
async fn lookup(
    profile: &BusinessProfile,
    account: &Account,
    intent: Option<&CreationIntent>,
) -> Result<Option<Profile>, Blocked> {
    let ein = profile.spec.ein_digits().unwrap_or_default();
    let profiles = account
        .list_all_profiles()
        .await
        .map_err(retry_or_outcome)?;
    let Some(candidate) = profiles.into_iter().find(|p| desired::ein_of(p) == ein) else {
        return Ok(None);
    };
    if intent.is_some_and(|intent| desired::is_own_creation(intent, &candidate)) {
        return Ok(Some(candidate));
    }
    Err(Blocked::Outcome(Outcome::blocked(
        Reason::ProfileExists,
        format!(
            "Plivo already has profile {} for EIN {}, and this resource did not create it; set spec.profileUUID: {} to adopt it.",
            candidate.profile_uuid, profile.spec.ein, candidate.profile_uuid
        ),
    )))
}

async fn create(
    profile: &BusinessProfile,
    account: &Account,
    ctx: &Context,
    status: &mut BusinessProfileStatus,
) -> Result<Found, Blocked> {
    let request = desired::create_request(profile).map_err(|field| {
        Blocked::Outcome(Outcome::blocked(
            Reason::InvalidProfile,
            format!("spec.{field} is required to create a Plivo profile; set it, or set spec.profileUUID to adopt an existing profile."),
        ))
    })?;

    let intent = CreationIntent {
        profile_alias: request.profile_alias.clone(),
        ein: request.ein.clone().unwrap_or_default(),
        requested_at: ctx.now(),
    };
    let mut with_intent = status.clone();
    with_intent.creation_intent = Some(intent.clone());
    let api = ctx.api::<BusinessProfile>(&profile.namespace().unwrap_or_default());
    write_status(&api, profile, profile.status.as_ref(), &with_intent, true)
        .await
        .map_err(Error::kube("record the creation intent"))?;
    *status = with_intent;

    match account.create_profile(&request).await {
        Ok(uuid) => {
            tracing::info!(namespace = %profile.namespace().unwrap_or_default(), name = %profile.name_any(), profile_uuid = %uuid, "Profile created");
            let created = Profile {
                profile_uuid: uuid,
                profile_alias: Some(request.profile_alias.clone()),
                ein: request.ein.clone(),
                ..Profile::default()
            };
            let found = record(profile, ctx, status, created, Reason::Created).await?;
            // The create response carries only the UUID, so read the profile for the drift check to compare Plivo's values.
            let stored = account
                .get_profile(&found.profile.profile_uuid)
                .await
                .map_err(retry_or_outcome)?;
            Ok(Found {
                profile: stored,
                reason: Reason::Created,
            })
        }
        Err(error) if is_ein_conflict(&error) => {
            match lookup(profile, account, Some(&intent)).await? {
                Some(found) => record(profile, ctx, status, found, Reason::Created).await,
                None => Err(Blocked::Outcome(Outcome::blocked(
                    Reason::InvalidProfile,
                    format!("{error}"),
                ))),
            }
        }
        // The request may have reached Plivo; the intent stays, so the next attempt looks it up.
        Err(error) if error.is_retryable() => Err(Blocked::Retry(Error::Plivo(error))),
        Err(error) => Err(Blocked::Outcome(Outcome::blocked(
            Reason::InvalidProfile,
            format!("{error}; correct the spec so that Plivo accepts it."),
        ))),
    }
}

/// Writes the UUID into the status at once, clearing the intent.
async fn record(
    profile: &BusinessProfile,
    ctx: &Context,
    status: &mut BusinessProfileStatus,
    found: Profile,
    reason: Reason,
) -> Result<Found, Blocked> {
    let before = status.clone();
    status.profile_uuid = Some(found.profile_uuid.clone());
    status.creation_intent = None;
    let api = ctx.api::<BusinessProfile>(&profile.namespace().unwrap_or_default());
    write_status(&api, profile, Some(&before), status, false)
        .await
        .map_err(Error::kube("record the profile UUID"))?;
    Ok(Found {
        profile: found,
        reason,
    })
}

/// Returns the UUID of the Plivo profile this resource owns, looking it up
/// when a create was interrupted before its UUID was recorded.
pub async fn owned_uuid(
    profile: &BusinessProfile,
    account: &Account,
) -> Result<Option<String>, Error> {
    let status = profile.status.as_ref();
    if let Some(uuid) = profile
        .spec
        .profile_uuid
        .clone()
        .or_else(|| status.and_then(|s| s.profile_uuid.clone()))
    {
        return Ok(Some(uuid));
    }
    let Some(intent) = status.and_then(|s| s.creation_intent.as_ref()) else {
        return Ok(None);
    };
    match lookup(profile, account, Some(intent)).await {
        Ok(found) => Ok(found.map(|p| p.profile_uuid)),
        Err(Blocked::Retry(error)) => Err(error),
        // A profile with this EIN that is not ours is not deleted.
        Err(Blocked::Outcome(_)) => Ok(None),
    }
}

fn retry_or_outcome(error: plivo::Error) -> Blocked {
    if error.is_retryable() {
        return Blocked::Retry(Error::Plivo(error));
    }
    Blocked::Outcome(Outcome::plivo_rejected(&error))
}

/// Plivo rejects a second profile for an EIN with a 400 whose text names the EIN.
fn is_ein_conflict(error: &plivo::Error) -> bool {
    matches!(error, plivo::Error::InvalidRequest { message, .. } if message.to_ascii_lowercase().contains("ein"))
}
