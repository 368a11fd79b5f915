//! The Plivo calls of an [`Account`]: Profile and Number endpoints, one method each.
//!
//! Paths follow Plivo's SDKs: `/v1/Account/{auth_id}/Profile/{uuid}/` and
//! `/v1/Account/{auth_id}/Number/{digits}/`, always with the trailing slash.

use reqwest::Method;
use serde::Deserialize;

use super::client::{Account, Call, Reply, decode};
use super::error::{Error, Operation};
use super::number::{ListNumbers, Number, UpdateNumber};
use super::page::{ListBody, MAX_PAGE_SIZE, Page};
use super::profile::{CreateProfile, Profile, UpdateProfile};
use super::retry::Idempotency;

/// Upper bound on the items `list_all_*` collects, so that a server that never ends a listing cannot
/// make the client loop forever.
const MAX_LISTED_ITEMS: u32 = 100_000;

/// Answer of profile get and update: `{"api_id", "profile": {…}}`.
#[derive(Deserialize)]
struct ProfileBody {
    #[serde(default)]
    profile: Option<Profile>,
}

impl Account {
    /// Creates a business profile and returns its `profile_uuid`.
    ///
    /// # Errors
    ///
    /// Never repeated after a 5xx or a timeout, because Plivo may have created the profile; the caller
    /// should look it up (one profile per EIN) before creating again.
    pub async fn create_profile(&self, request: &CreateProfile) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(default)]
            profile_uuid: Option<String>,
        }

        let operation = Operation::new("create profile", Some(request.profile_alias.clone()));
        let call = Call {
            method: Method::POST,
            endpoint: "POST /Profile/",
            segments: &["Profile"],
            query: Vec::new(),
            body: Some(json_body(request)),
            idempotency: Idempotency::NotIdempotent,
            operation,
        };
        let operation = call.operation.clone();
        let reply = self.execute(call).await?;
        match decode::<Created>(&operation, &reply)?.profile_uuid {
            Some(uuid) if !uuid.is_empty() => Ok(uuid),
            _ => Err(missing(&operation, &reply, "profile_uuid")),
        }
    }

    /// Reads one business profile.
    pub async fn get_profile(&self, uuid: &str) -> Result<Profile, Error> {
        let operation = Operation::new("get profile", Some(uuid.to_owned()));
        check_uuid(&operation, uuid)?;
        let call = Call {
            method: Method::GET,
            endpoint: "GET /Profile/{uuid}/",
            segments: &["Profile", uuid],
            query: Vec::new(),
            body: None,
            idempotency: Idempotency::Idempotent,
            operation: operation.clone(),
        };
        let reply = self.execute(call).await?;
        profile_in(&operation, &reply)?.ok_or_else(|| missing(&operation, &reply, "profile"))
    }

    /// Reads one page of the account's business profiles; `limit` is 1 to 20.
    pub async fn list_profiles(&self, limit: u32, offset: u32) -> Result<Page<Profile>, Error> {
        let operation = Operation::new("list profiles", None);
        check_limit(&operation, limit)?;
        let call = Call {
            method: Method::GET,
            endpoint: "GET /Profile/",
            segments: &["Profile"],
            query: vec![("limit", limit.to_string()), ("offset", offset.to_string())],
            body: None,
            idempotency: Idempotency::Idempotent,
            operation: operation.clone(),
        };
        let reply = self.execute(call).await?;
        Ok(decode::<ListBody<Profile>>(&operation, &reply)?.into())
    }

    /// Reads all business profiles of the account, page by page.
    pub async fn list_all_profiles(&self) -> Result<Vec<Profile>, Error> {
        let mut profiles = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.list_profiles(MAX_PAGE_SIZE, offset).await?;
            let more = page.has_more(offset);
            offset = next_offset(offset, page.items.len(), "list profiles")?;
            profiles.extend(page.items);
            if !more {
                return Ok(profiles);
            }
        }
    }

    /// Changes a business profile and returns it as stored by Plivo.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an update without any field.
    pub async fn update_profile(
        &self,
        uuid: &str,
        request: &UpdateProfile,
    ) -> Result<Profile, Error> {
        let operation = Operation::new("update profile", Some(uuid.to_owned()));
        check_uuid(&operation, uuid)?;
        if request.is_empty() {
            return Err(Error::InvalidArgument {
                operation,
                message: "the update sets no field".into(),
            });
        }
        let call = Call {
            method: Method::POST,
            endpoint: "POST /Profile/{uuid}/",
            segments: &["Profile", uuid],
            query: Vec::new(),
            body: Some(json_body(request)),
            idempotency: Idempotency::Idempotent,
            operation: operation.clone(),
        };
        let reply = self.execute(call).await?;
        match profile_in(&operation, &reply)? {
            Some(profile) => Ok(profile),
            // Plivo documents the updated object in the answer; read it back if it is missing.
            None => self.get_profile(uuid).await,
        }
    }

    /// Deletes a business profile. A profile that is already gone is reported as [`Error::NotFound`].
    pub async fn delete_profile(&self, uuid: &str) -> Result<(), Error> {
        let operation = Operation::new("delete profile", Some(uuid.to_owned()));
        check_uuid(&operation, uuid)?;
        let call = Call {
            method: Method::DELETE,
            endpoint: "DELETE /Profile/{uuid}/",
            segments: &["Profile", uuid],
            query: Vec::new(),
            body: None,
            idempotency: Idempotency::Idempotent,
            operation,
        };
        self.execute(call).await.map(drop)
    }

    /// Reads one phone number of the account; `number` is digits only or E.164 with `+`.
    pub async fn get_number(&self, number: &str) -> Result<Number, Error> {
        let operation = Operation::new("get number", Some(number.to_owned()));
        let digits = number_digits(&operation, number)?;
        let call = Call {
            method: Method::GET,
            endpoint: "GET /Number/{number}/",
            segments: &["Number", digits],
            query: Vec::new(),
            body: None,
            idempotency: Idempotency::Idempotent,
            operation: operation.clone(),
        };
        let reply = self.execute(call).await?;
        let mut found: Number = decode(&operation, &reply)?;
        if found.number.is_empty() {
            found.number = digits.to_owned();
        }
        Ok(found)
    }

    /// Reads one page of the account's phone numbers.
    pub async fn list_numbers(&self, query: &ListNumbers) -> Result<Page<Number>, Error> {
        let operation = Operation::new("list numbers", None);
        check_limit(&operation, query.limit)?;
        let call = Call {
            method: Method::GET,
            endpoint: "GET /Number/",
            segments: &["Number"],
            query: query.query_pairs(),
            body: None,
            idempotency: Idempotency::Idempotent,
            operation: operation.clone(),
        };
        let reply = self.execute(call).await?;
        Ok(decode::<ListBody<Number>>(&operation, &reply)?.into())
    }

    /// Reads all phone numbers matching `query`, page by page from `query.offset`.
    pub async fn list_all_numbers(&self, query: &ListNumbers) -> Result<Vec<Number>, Error> {
        let mut query = query.clone();
        let mut numbers = Vec::new();
        loop {
            let page = self.list_numbers(&query).await?;
            let more = page.has_more(query.offset);
            query.offset = next_offset(query.offset, page.items.len(), "list numbers")?;
            numbers.extend(page.items);
            if !more {
                return Ok(numbers);
            }
        }
    }

    /// Changes a phone number (e.g. switches Caller Reputation); Plivo answers 202 without the new
    /// state, so read the number back with [`Account::get_number`].
    pub async fn update_number(&self, number: &str, request: &UpdateNumber) -> Result<(), Error> {
        let action = if request.profile_uuid().is_some() {
            "enable caller reputation on number"
        } else {
            "disable caller reputation on number"
        };
        let operation = Operation::new(action, Some(number.to_owned()));
        let digits = number_digits(&operation, number)?;
        let call = Call {
            method: Method::POST,
            endpoint: "POST /Number/{number}/",
            segments: &["Number", digits],
            query: Vec::new(),
            body: Some(json_body(request)),
            // Sending the same target state twice leaves the number in that state.
            idempotency: Idempotency::Idempotent,
            operation,
        };
        self.execute(call).await.map(drop)
    }
}

fn json_body<T: serde::Serialize>(request: &T) -> Vec<u8> {
    // Request types are plain structs of strings, so serialising them cannot fail.
    serde_json::to_vec(request).expect("request types serialise to JSON")
}

/// Reads `{"profile": {…}}`, or a flat profile object from servers that do not wrap it.
fn profile_in(operation: &Operation, reply: &Reply) -> Result<Option<Profile>, Error> {
    if let Some(profile) = decode::<ProfileBody>(operation, reply)?.profile {
        return Ok(Some(profile));
    }
    let flat: Profile = decode(operation, reply)?;
    Ok((!flat.profile_uuid.is_empty()).then_some(flat))
}

fn missing(operation: &Operation, reply: &Reply, field: &str) -> Error {
    Error::Decode {
        operation: operation.clone(),
        status: reply.status.as_u16(),
        message: format!("the answer has no `{field}`"),
    }
}

fn next_offset(offset: u32, received: usize, action: &'static str) -> Result<u32, Error> {
    let next = offset.saturating_add(received as u32);
    if next > MAX_LISTED_ITEMS {
        return Err(Error::Decode {
            operation: Operation::new(action, None),
            status: 200,
            message: format!("the listing did not end after {MAX_LISTED_ITEMS} items"),
        });
    }
    Ok(next)
}

fn check_limit(operation: &Operation, limit: u32) -> Result<(), Error> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        operation: operation.clone(),
        message: format!("page limit {limit} is outside 1 to {MAX_PAGE_SIZE}"),
    })
}

/// Rejects UUIDs that would change the path: empty, or with characters other than `[A-Za-z0-9_-]`.
fn check_uuid(operation: &Operation, uuid: &str) -> Result<(), Error> {
    let valid = !uuid.is_empty()
        && uuid
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        operation: operation.clone(),
        message: format!("{uuid:?} is not a profile UUID"),
    })
}

/// Returns the digits Plivo expects in paths: `+14155550100` and `14155550100` both give
/// `14155550100`; anything else is rejected.
fn number_digits<'a>(operation: &Operation, number: &'a str) -> Result<&'a str, Error> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let valid =
        (1..=15).contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit());
    if valid {
        return Ok(digits);
    }
    Err(Error::InvalidArgument {
        operation: operation.clone(),
        message: format!(
            "{number:?} is not a phone number; expected E.164 such as +14155550100 or its digits"
        ),
    })
}
