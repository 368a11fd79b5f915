//! The sandbox's data: profiles, rented numbers, their Caller Reputation
//! state and transition counters, plus the rules that change them.
//!
//! Operations here are synchronous and do no I/O. Those that change a
//! number's status return [`Effects`] (callbacks to send, carrier decisions to
//! schedule), which the server carries out after releasing the lock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{NumberType, SeedNumber};

/// Everything the sandbox stores, and what `--state-file` contains.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Profiles by `profile_uuid`.
    pub profiles: BTreeMap<String, Profile>,
    /// Rented numbers by digits-only number.
    pub numbers: BTreeMap<String, Number>,
    /// Transition counters by digits-only number; kept after a number is unrented.
    pub counters: BTreeMap<String, NumberCounters>,
    /// Increases with every change; orders profile updates against failures.
    pub revision: u64,
}

/// A business profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub profile_uuid: String,
    pub account: String,
    /// Request fields as stored; omitted optional fields are absent.
    pub fields: Map<String, Value>,
    /// ISO-8601 with microseconds and `Z`.
    pub created_at: String,
    /// [`State::revision`] of the last create or update.
    pub revision: u64,
}

/// A rented number and its Caller Reputation registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Number {
    pub account: String,
    pub number: String,
    pub number_type: NumberType,
    /// ISO 3166 alpha-2.
    pub country: String,
    pub added_on: String,
    /// Plain settings of Update Number (`alias`, `app_id`, `cnam_lookup`, …).
    pub settings: BTreeMap<String, String>,
    pub profile_uuid: Option<String>,
    pub status: Option<CrStatus>,
    pub callback_url: Option<String>,
    pub callback_method: CallbackMethod,
    /// [`State::revision`] when the status last changed.
    pub status_revision: u64,
    /// Identifies the current `PENDING` period, so a decision scheduled for an
    /// older period is ignored.
    pub pending_generation: u64,
    /// Unix time in milliseconds when the carriers decide, while `PENDING`.
    pub decide_at_ms: Option<i64>,
}

/// Plivo's `caller_reputation_status` values other than `null`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CrStatus {
    Pending,
    Active,
    Failed,
    NotEnrolled,
}

impl CrStatus {
    /// Returns the wire value, such as `NOT_ENROLLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Active => "ACTIVE",
            Self::Failed => "FAILED",
            Self::NotEnrolled => "NOT_ENROLLED",
        }
    }
}

/// HTTP method of status callbacks.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum CallbackMethod {
    Get,
    #[default]
    Post,
}

/// How often each thing happened to one number.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NumberCounters {
    /// Transitions into `PENDING`.
    pub pending: u64,
    /// Transitions into `ACTIVE`.
    pub active: u64,
    /// Transitions into `FAILED`.
    pub failed: u64,
    /// Transitions into `NOT_ENROLLED`.
    pub not_enrolled: u64,
    /// Transitions back to `null`.
    pub cleared: u64,
    /// Update Number requests with `caller_reputation=enabled` that were accepted.
    pub enable_requests: u64,
    /// Accepted enables that changed nothing (same profile, already
    /// `PENDING`/`ACTIVE`, or `FAILED` with the profile unchanged since).
    pub unchanged_enables: u64,
    /// Update Number requests with `caller_reputation=disabled`.
    pub disable_requests: u64,
    /// Update Number requests of any kind that were accepted.
    pub updates: u64,
}

/// A status callback to send.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackJob {
    pub account: String,
    pub url: String,
    pub method: CallbackMethod,
    pub number: String,
    pub profile_uuid: Option<String>,
    pub status: Option<CrStatus>,
}

/// A carrier decision to run after a delay.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionJob {
    pub number: String,
    pub generation: u64,
    pub decide_at_ms: i64,
}

/// Side effects of an operation.
#[derive(Debug, Default)]
pub struct Effects {
    pub callbacks: Vec<CallbackJob>,
    pub decisions: Vec<DecisionJob>,
}

/// Rejection reasons of Plivo API requests, each rendered as a Plivo-shaped error.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    #[error("Invalid request parameter(s) - {0}")]
    InvalidParameter(String),
    #[error("A profile with EIN {ein} already exists in this account: {existing}")]
    EinConflict { ein: String, existing: String },
    #[error("Profile not found.")]
    ProfileNotFound,
    #[error("not found")]
    NumberNotFound,
    #[error("invalid_profile_uuid")]
    InvalidProfileUuid,
    #[error("number_not_eligible")]
    NumberNotEligible,
}

impl ApiError {
    /// Returns the HTTP status Plivo responds with.
    pub fn status(&self) -> u16 {
        match self {
            Self::ProfileNotFound | Self::NumberNotFound => 404,
            Self::InvalidParameter(_)
            | Self::EinConflict { .. }
            | Self::InvalidProfileUuid
            | Self::NumberNotEligible => 400,
        }
    }
}

/// Rules that decide whether the simulated carriers accept a profile.
#[derive(Clone, Debug, Default)]
pub struct DecisionRules {
    pub fail_eins: Vec<String>,
    pub fail_without_website: bool,
}

impl DecisionRules {
    /// Returns the status the carriers give a number registered with `profile`.
    pub fn decide(&self, profile: Option<&Profile>) -> CrStatus {
        let Some(profile) = profile else {
            return CrStatus::Failed;
        };
        let ein = profile.fields.get("ein").and_then(Value::as_str);
        let website = profile.fields.get("website").and_then(Value::as_str);
        let ein_listed = ein.is_some_and(|ein| self.fail_eins.iter().any(|fail| fail == ein));
        let website_missing = website.is_none_or(|site| site.trim().is_empty());
        if ein_listed || (self.fail_without_website && website_missing) {
            CrStatus::Failed
        } else {
            CrStatus::Active
        }
    }
}

/// Strips a leading `+` so that E.164 and digits-only spellings name the same number.
pub fn digits_only(number: &str) -> String {
    number.trim().trim_start_matches('+').to_string()
}

/// The Caller Reputation part of an Update Number request.
#[derive(Debug, Default)]
pub struct NumberUpdate {
    /// `caller_reputation`: `Some(true)` for `enabled`, `Some(false)` for `disabled`.
    pub caller_reputation: Option<bool>,
    pub profile_uuid: Option<String>,
    pub callback_url: Option<String>,
    pub callback_method: Option<CallbackMethod>,
    /// Other string settings (`alias`, `app_id`, `cnam`, …), stored as given.
    pub settings: BTreeMap<String, String>,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Adds a rented number, or changes type and country of a number the same
    /// account already rents. A registered number that stops being eligible
    /// moves to `NOT_ENROLLED`.
    ///
    /// # Errors
    /// Fails when another account rents the number or it has no digits.
    pub fn add_number(
        &mut self,
        seed: &SeedNumber,
        today: &str,
        effects: &mut Effects,
    ) -> Result<(), String> {
        let number = digits_only(&seed.number);
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "number {:?} must be digits with country code, optionally with a leading +",
                seed.number
            ));
        }
        if let Some(existing) = self.numbers.get_mut(&number) {
            if existing.account != seed.account {
                return Err(format!(
                    "number {number} is already rented by another account"
                ));
            }
            existing.number_type = seed.number_type;
            existing.country = seed.country.to_ascii_uppercase();
            let lost_eligibility = !is_eligible(existing)
                && existing
                    .status
                    .is_some_and(|status| status != CrStatus::NotEnrolled);
            self.bump();
            if lost_eligibility {
                self.force_status(&number, CrStatus::NotEnrolled, effects);
            }
            return Ok(());
        }
        self.numbers.insert(
            number.clone(),
            Number {
                account: seed.account.clone(),
                number,
                number_type: seed.number_type,
                country: seed.country.to_ascii_uppercase(),
                added_on: today.to_string(),
                settings: BTreeMap::new(),
                profile_uuid: None,
                status: None,
                callback_url: None,
                callback_method: CallbackMethod::Post,
                status_revision: 0,
                pending_generation: 0,
                decide_at_ms: None,
            },
        );
        self.bump();
        Ok(())
    }

    /// Returns the profile with `uuid` if `account` owns it.
    pub fn profile(&self, account: &str, uuid: &str) -> Option<&Profile> {
        self.profiles
            .get(uuid)
            .filter(|profile| profile.account == account)
    }

    /// Returns the number if `account` rents it.
    pub fn number(&self, account: &str, number: &str) -> Option<&Number> {
        self.numbers
            .get(&digits_only(number))
            .filter(|found| found.account == account)
    }

    /// Creates a profile from a validated body.
    ///
    /// # Errors
    /// [`ApiError::EinConflict`] when the account already has a profile with the same EIN.
    pub fn create_profile(
        &mut self,
        account: &str,
        fields: Map<String, Value>,
        profile_uuid: String,
        created_at: String,
    ) -> Result<String, ApiError> {
        self.check_ein_free(account, fields.get("ein"), None)?;
        let revision = self.bump();
        self.profiles.insert(
            profile_uuid.clone(),
            Profile {
                profile_uuid: profile_uuid.clone(),
                account: account.to_string(),
                fields,
                created_at,
                revision,
            },
        );
        Ok(profile_uuid)
    }

    /// Applies the updatable fields of `changes` to a profile.
    ///
    /// # Errors
    /// [`ApiError::ProfileNotFound`], or [`ApiError::EinConflict`] when the new
    /// EIN belongs to another profile of the account.
    pub fn update_profile(
        &mut self,
        account: &str,
        uuid: &str,
        changes: Map<String, Value>,
    ) -> Result<&Profile, ApiError> {
        if self.profile(account, uuid).is_none() {
            return Err(ApiError::ProfileNotFound);
        }
        self.check_ein_free(account, changes.get("ein"), Some(uuid))?;
        let revision = self.bump();
        let profile = self
            .profiles
            .get_mut(uuid)
            .ok_or(ApiError::ProfileNotFound)?;
        for (key, value) in changes {
            profile.fields.insert(key, value);
        }
        profile.revision = revision;
        Ok(profile)
    }

    fn check_ein_free(
        &self,
        account: &str,
        ein: Option<&Value>,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(ein) = ein.and_then(Value::as_str).filter(|ein| !ein.is_empty()) else {
            return Ok(());
        };
        let existing = self.profiles.values().find(|profile| {
            profile.account == account
                && Some(profile.profile_uuid.as_str()) != except
                && profile.fields.get("ein").and_then(Value::as_str) == Some(ein)
        });
        match existing {
            Some(profile) => Err(ApiError::EinConflict {
                ein: ein.to_string(),
                existing: profile.profile_uuid.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Deletes a profile and clears Caller Reputation on the numbers that use it.
    ///
    /// # Errors
    /// [`ApiError::ProfileNotFound`].
    pub fn delete_profile(&mut self, account: &str, uuid: &str) -> Result<Effects, ApiError> {
        if self.profile(account, uuid).is_none() {
            return Err(ApiError::ProfileNotFound);
        }
        self.profiles.remove(uuid);
        self.bump();
        let linked: Vec<String> = self
            .numbers
            .values()
            .filter(|number| number.profile_uuid.as_deref() == Some(uuid))
            .map(|number| number.number.clone())
            .collect();
        let mut effects = Effects::default();
        for number in linked {
            self.clear(&number, &mut effects);
        }
        Ok(effects)
    }

    /// Applies an Update Number request.
    ///
    /// # Errors
    /// [`ApiError::NumberNotFound`], [`ApiError::NumberNotEligible`] or
    /// [`ApiError::InvalidProfileUuid`]; nothing changes on error.
    pub fn update_number(
        &mut self,
        account: &str,
        number: &str,
        update: NumberUpdate,
        delay_ms: i64,
        now_ms: i64,
    ) -> Result<Effects, ApiError> {
        let key = digits_only(number);
        let current = self.number(account, &key).ok_or(ApiError::NumberNotFound)?;
        if update.caller_reputation == Some(true) {
            if !is_eligible(current) {
                return Err(ApiError::NumberNotEligible);
            }
            let uuid = update.profile_uuid.as_deref().unwrap_or_default();
            if self.profile(account, uuid).is_none() {
                return Err(ApiError::InvalidProfileUuid);
            }
        }

        let mut effects = Effects::default();
        self.bump();
        let counters = self.counters.entry(key.clone()).or_default();
        counters.updates += 1;
        let entry = self.numbers.get_mut(&key).ok_or(ApiError::NumberNotFound)?;
        entry.settings.extend(update.settings);
        if let Some(url) = update.callback_url {
            entry.callback_url = Some(url).filter(|url| !url.is_empty());
        }
        if let Some(method) = update.callback_method {
            entry.callback_method = method;
        }

        match update.caller_reputation {
            Some(true) => {
                let uuid = update.profile_uuid.unwrap_or_default();
                counters.enable_requests += 1;
                if self.enable_changes_nothing(&key, &uuid) {
                    self.counters.entry(key).or_default().unchanged_enables += 1;
                } else {
                    self.start_pending(&key, &uuid, delay_ms, now_ms, &mut effects);
                }
            }
            Some(false) => {
                counters.disable_requests += 1;
                self.clear(&key, &mut effects);
            }
            None => {}
        }
        Ok(effects)
    }

    /// Returns whether an enable with `uuid` leaves the number as it is: the
    /// same profile while `PENDING` or `ACTIVE`. An enable of a `FAILED`
    /// number resubmits it to the carriers, as Plivo's guide says to retry.
    fn enable_changes_nothing(&self, number: &str, uuid: &str) -> bool {
        let Some(entry) = self.numbers.get(number) else {
            return false;
        };
        if entry.profile_uuid.as_deref() != Some(uuid) {
            return false;
        }
        match entry.status {
            Some(CrStatus::Pending | CrStatus::Active) => true,
            Some(CrStatus::Failed | CrStatus::NotEnrolled) | None => false,
        }
    }

    /// Links `uuid` and moves the number to `PENDING`; also what
    /// `POST /_sandbox/numbers/{number}/profile` does.
    pub fn start_pending(
        &mut self,
        number: &str,
        uuid: &str,
        delay_ms: i64,
        now_ms: i64,
        effects: &mut Effects,
    ) {
        let revision = self.bump();
        let Some(entry) = self.numbers.get_mut(number) else {
            return;
        };
        entry.profile_uuid = Some(uuid.to_string());
        entry.pending_generation += 1;
        let decide_at_ms = now_ms.saturating_add(delay_ms);
        entry.decide_at_ms = Some(decide_at_ms);
        effects.decisions.push(DecisionJob {
            number: number.to_string(),
            generation: entry.pending_generation,
            decide_at_ms,
        });
        set_status(entry, Some(CrStatus::Pending), revision, effects);
        self.counters.entry(number.to_string()).or_default().pending += 1;
    }

    /// Clears Caller Reputation: status `null`, no profile.
    pub fn clear(&mut self, number: &str, effects: &mut Effects) {
        let revision = self.bump();
        let Some(entry) = self.numbers.get_mut(number) else {
            return;
        };
        entry.profile_uuid = None;
        entry.decide_at_ms = None;
        entry.pending_generation += 1;
        if entry.status.is_some() {
            set_status(entry, None, revision, effects);
            self.counters.entry(number.to_string()).or_default().cleared += 1;
        }
    }

    /// Runs a scheduled carrier decision; does nothing when the number left
    /// that `PENDING` period.
    pub fn run_decision(&mut self, job: &DecisionJob, rules: &DecisionRules) -> Effects {
        let mut effects = Effects::default();
        let Some(entry) = self.numbers.get(&job.number) else {
            return effects;
        };
        if entry.status != Some(CrStatus::Pending) || entry.pending_generation != job.generation {
            return effects;
        }
        let profile = entry
            .profile_uuid
            .as_deref()
            .and_then(|uuid| self.profiles.get(uuid));
        let decision = rules.decide(profile);
        self.force_status(&job.number, decision, &mut effects);
        effects
    }

    /// Sets a status regardless of the current one, ending any `PENDING` period.
    /// Returns `false` when the number is not rented.
    pub fn force_status(&mut self, number: &str, status: CrStatus, effects: &mut Effects) -> bool {
        let revision = self.bump();
        let Some(entry) = self.numbers.get_mut(number) else {
            return false;
        };
        entry.pending_generation += 1;
        entry.decide_at_ms = None;
        if entry.status != Some(status) {
            set_status(entry, Some(status), revision, effects);
            let counters = self.counters.entry(number.to_string()).or_default();
            match status {
                CrStatus::Pending => counters.pending += 1,
                CrStatus::Active => counters.active += 1,
                CrStatus::Failed => counters.failed += 1,
                CrStatus::NotEnrolled => counters.not_enrolled += 1,
            }
        }
        true
    }

    /// Removes a rented number. Returns `false` when `account` does not rent it.
    pub fn unrent(&mut self, account: &str, number: &str) -> bool {
        let key = digits_only(number);
        if self.number(account, &key).is_none() {
            return false;
        }
        self.numbers.remove(&key);
        self.bump();
        true
    }

    /// Returns the scheduled decisions of every `PENDING` number, to re-arm
    /// them after loading a state file.
    pub fn pending_decisions(&self) -> Vec<DecisionJob> {
        self.numbers
            .values()
            .filter(|number| number.status == Some(CrStatus::Pending))
            .filter_map(|number| {
                Some(DecisionJob {
                    number: number.number.clone(),
                    generation: number.pending_generation,
                    decide_at_ms: number.decide_at_ms?,
                })
            })
            .collect()
    }
}

fn set_status(entry: &mut Number, status: Option<CrStatus>, revision: u64, effects: &mut Effects) {
    entry.status = status;
    entry.status_revision = revision;
    if let Some(url) = &entry.callback_url {
        effects.callbacks.push(CallbackJob {
            account: entry.account.clone(),
            url: url.clone(),
            method: entry.callback_method,
            number: entry.number.clone(),
            profile_uuid: entry.profile_uuid.clone(),
            status,
        });
    }
}

/// Only US local and toll-free numbers may enable Caller Reputation.
pub fn is_eligible(number: &Number) -> bool {
    number.country == "US" && matches!(number.number_type, NumberType::Local | NumberType::Tollfree)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "MAAAAAAAAAAAAAAAAAAA";

    fn state_with(number: &str, number_type: NumberType, country: &str) -> State {
        let mut state = State::default();
        let seed = SeedNumber {
            account: ACCOUNT.to_string(),
            number: number.to_string(),
            number_type,
            country: country.to_string(),
        };
        state
            .add_number(&seed, "2026-01-01", &mut Effects::default())
            .unwrap();
        state
    }

    fn profile(state: &mut State, uuid: &str, ein: &str) {
        let mut fields = Map::new();
        fields.insert("ein".to_string(), Value::from(ein));
        state
            .create_profile(ACCOUNT, fields, uuid.to_string(), "t".to_string())
            .unwrap();
    }

    fn enable(state: &mut State, uuid: &str) -> Result<Effects, ApiError> {
        let update = NumberUpdate {
            caller_reputation: Some(true),
            profile_uuid: Some(uuid.to_string()),
            ..NumberUpdate::default()
        };
        state.update_number(ACCOUNT, "+14155550100", update, 0, 0)
    }

    #[test]
    fn second_profile_with_same_ein_is_rejected() {
        let mut state = State::default();
        profile(&mut state, "p1", "123456789");
        let mut fields = Map::new();
        fields.insert("ein".to_string(), Value::from("123456789"));
        let result = state.create_profile(ACCOUNT, fields, "p2".to_string(), "t".to_string());
        assert!(matches!(result, Err(ApiError::EinConflict { .. })));
    }

    #[test]
    fn mobile_number_is_not_eligible() {
        let mut state = state_with("14155550100", NumberType::Mobile, "US");
        profile(&mut state, "p1", "1");
        assert_eq!(
            enable(&mut state, "p1").unwrap_err(),
            ApiError::NumberNotEligible
        );
    }

    #[test]
    fn canadian_local_number_is_not_eligible() {
        let mut state = state_with("14155550100", NumberType::Local, "CA");
        profile(&mut state, "p1", "1");
        assert_eq!(
            enable(&mut state, "p1").unwrap_err(),
            ApiError::NumberNotEligible
        );
    }

    #[test]
    fn enable_with_unknown_profile_is_rejected() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        assert_eq!(
            enable(&mut state, "nope").unwrap_err(),
            ApiError::InvalidProfileUuid
        );
    }

    #[test]
    fn enable_goes_pending_then_decision_activates() {
        let mut state = state_with("14155550100", NumberType::Tollfree, "US");
        profile(&mut state, "p1", "1");
        let effects = enable(&mut state, "p1").unwrap();
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Pending));
        let job = &effects.decisions[0];
        state.run_decision(job, &DecisionRules::default());
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Active));
    }

    #[test]
    fn repeated_enable_changes_nothing_but_is_counted() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        profile(&mut state, "p1", "1");
        enable(&mut state, "p1").unwrap();
        let effects = enable(&mut state, "p1").unwrap();
        assert!(effects.decisions.is_empty());
        let counters = &state.counters["14155550100"];
        assert_eq!(counters.pending, 1);
        assert_eq!(counters.unchanged_enables, 1);
    }

    #[test]
    fn failed_number_is_resubmitted_and_fails_again_until_fixed() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        profile(&mut state, "p1", "999");
        let rules = DecisionRules {
            fail_eins: vec!["999".to_string()],
            fail_without_website: false,
        };
        let effects = enable(&mut state, "p1").unwrap();
        state.run_decision(&effects.decisions[0], &rules);
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Failed));

        let effects = enable(&mut state, "p1").unwrap();
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Pending));
        state.run_decision(&effects.decisions[0], &rules);
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Failed));

        let mut changes = Map::new();
        changes.insert("website".to_string(), Value::from("https://x.example"));
        state.update_profile(ACCOUNT, "p1", changes).unwrap();
        enable(&mut state, "p1").unwrap();
        assert_eq!(state.numbers["14155550100"].status, Some(CrStatus::Pending));
    }

    #[test]
    fn stale_decision_is_ignored_after_profile_change() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        profile(&mut state, "p1", "1");
        profile(&mut state, "p2", "2");
        let first = enable(&mut state, "p1").unwrap();
        enable(&mut state, "p2").unwrap();
        state.run_decision(&first.decisions[0], &DecisionRules::default());
        let number = &state.numbers["14155550100"];
        assert_eq!(number.status, Some(CrStatus::Pending));
        assert_eq!(number.profile_uuid.as_deref(), Some("p2"));
    }

    #[test]
    fn number_that_becomes_mobile_reads_not_enrolled() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        profile(&mut state, "p1", "1");
        enable(&mut state, "p1").unwrap();
        let seed = SeedNumber {
            account: ACCOUNT.to_string(),
            number: "14155550100".to_string(),
            number_type: NumberType::Mobile,
            country: "US".to_string(),
        };
        state
            .add_number(&seed, "2026-01-01", &mut Effects::default())
            .unwrap();
        let number = &state.numbers["14155550100"];
        assert_eq!(number.status, Some(CrStatus::NotEnrolled));
    }

    #[test]
    fn disable_clears_status_and_profile() {
        let mut state = state_with("14155550100", NumberType::Local, "US");
        profile(&mut state, "p1", "1");
        enable(&mut state, "p1").unwrap();
        let update = NumberUpdate {
            caller_reputation: Some(false),
            ..NumberUpdate::default()
        };
        state
            .update_number(ACCOUNT, "14155550100", update, 0, 0)
            .unwrap();
        let number = &state.numbers["14155550100"];
        assert_eq!(number.status, None);
        assert_eq!(number.profile_uuid, None);
    }
}
