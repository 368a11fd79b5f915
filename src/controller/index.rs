//! Lookups over CallerReputationNumbers that need no pass over the cache:
//! the resources that claim a phone number, and the BusinessProfile a number
//! counts towards.
//!
//! [`NumberIndex`] follows the same watch events as the number cache and keeps
//! a few fields per number, so a lookup costs time proportional to the size of
//! its result and an event costs time proportional to what it changed.
//!
//! The index also sends two kinds of reconcile requests. A profile that gains
//! or loses a number is reconciled, because that is the only change to a
//! number that a profile's reconcile depends on. When a phone number loses a
//! claimant, its other claimants are reconciled, so that a resource waiting
//! with `NumberConflict` takes over at once.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Mutex,
};

use futures::channel::mpsc;
use kube::{
    ResourceExt,
    runtime::{reflector::ObjectRef, watcher},
};

use crate::api::{BusinessProfile, CallerReputationNumber, ProfileSource};

/// The fields the index keeps of one number.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    namespace: String,
    name: String,
    /// The phone number in digits, when `spec.number` parses.
    digits: Option<String>,
    /// The BusinessProfile named by `spec.profileRef`.
    profile: Option<String>,
    deleting: bool,
}

impl Entry {
    fn of(number: &CallerReputationNumber) -> Self {
        Self {
            namespace: number.namespace().unwrap_or_default(),
            name: number.name_any(),
            digits: number.spec.phone_number().ok().map(|p| p.digits()),
            profile: match number.spec.profile_source() {
                Some(ProfileSource::Reference(name)) => Some(name.to_string()),
                _ => None,
            },
            deleting: number.metadata.deletion_timestamp.is_some(),
        }
    }

    fn profile_ref(&self) -> Option<ObjectRef<BusinessProfile>> {
        let name = self.profile.as_deref()?;
        Some(ObjectRef::new(name).within(&self.namespace))
    }
}

/// The numbers of one watched namespace scope, indexed by phone number.
pub struct NumberIndex {
    inner: Mutex<Inner>,
    profile_changes: mpsc::UnboundedSender<ObjectRef<BusinessProfile>>,
    released_claims: mpsc::UnboundedSender<ObjectRef<CallerReputationNumber>>,
}

/// The streams of reconcile requests a [`NumberIndex`] sends; each ends with the index.
pub struct IndexChanges {
    /// BusinessProfiles whose set of numbers changed.
    pub profiles: mpsc::UnboundedReceiver<ObjectRef<BusinessProfile>>,
    /// Numbers that claim a phone number another resource stopped claiming.
    pub claimants: mpsc::UnboundedReceiver<ObjectRef<CallerReputationNumber>>,
}

#[derive(Default)]
struct Inner {
    by_uid: HashMap<String, Entry>,
    /// Namespace and name of the numbers that name each phone number.
    claims: HashMap<String, BTreeSet<(String, String)>>,
    /// UIDs seen since the watch restarted its listing; the others were
    /// deleted while it was down.
    relisted: Option<HashSet<String>>,
}

impl NumberIndex {
    /// Creates an index and the streams of reconcile requests it sends.
    pub fn new() -> (Self, IndexChanges) {
        let (profile_changes, profiles) = mpsc::unbounded();
        let (released_claims, claimants) = mpsc::unbounded();
        let index = Self {
            inner: Mutex::default(),
            profile_changes,
            released_claims,
        };
        (
            index,
            IndexChanges {
                profiles,
                claimants,
            },
        )
    }

    /// Applies one event of the number watch.
    pub fn observe(&self, event: &watcher::Event<CallerReputationNumber>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut changes = Vec::new();
        match event {
            watcher::Event::Apply(number) | watcher::Event::InitApply(number) => {
                let uid = number.uid().unwrap_or_default();
                if let Some(seen) = inner.relisted.as_mut() {
                    seen.insert(uid.clone());
                }
                changes.push(inner.set(uid, Some(Entry::of(number))));
            }
            watcher::Event::Delete(number) => {
                changes.push(inner.set(number.uid().unwrap_or_default(), None));
            }
            watcher::Event::Init => inner.relisted = Some(HashSet::new()),
            watcher::Event::InitDone => {
                let seen = inner.relisted.take().unwrap_or_default();
                let deleted: Vec<String> = inner
                    .by_uid
                    .keys()
                    .filter(|uid| !seen.contains(*uid))
                    .cloned()
                    .collect();
                for uid in deleted {
                    changes.push(inner.set(uid, None));
                }
            }
        }
        let mut waiting = Vec::new();
        for (old, new) in &changes {
            waiting.extend(inner.claimants_after_release(old.as_ref(), new.as_ref()));
        }
        drop(inner);
        for (old, new) in changes {
            self.notify_profiles(old.as_ref(), new.as_ref());
        }
        for (namespace, name) in waiting {
            let number = ObjectRef::new(&name).within(&namespace);
            let _ = self.released_claims.unbounded_send(number);
        }
    }

    /// Returns namespace and name of every number in this scope whose `spec.number` is `digits`.
    pub fn claimants(&self, digits: &str) -> Vec<(String, String)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .claims
            .get(digits)
            .map(|claims| claims.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Tells the profile controller about profiles that gained or lost a
    /// number, or whose number started deleting: their count and their
    /// deletion depend on it. Status changes of a number concern no profile.
    fn notify_profiles(&self, old: Option<&Entry>, new: Option<&Entry>) {
        let link = |entry: Option<&Entry>| entry.map(|e| (e.profile_ref(), e.deleting));
        if link(old) == link(new) {
            return;
        }
        let old_profile = old.and_then(Entry::profile_ref);
        let new_profile = new.and_then(Entry::profile_ref);
        if old_profile != new_profile
            && let Some(profile) = old_profile
        {
            let _ = self.profile_changes.unbounded_send(profile);
        }
        if let Some(profile) = new_profile {
            let _ = self.profile_changes.unbounded_send(profile);
        }
    }
}

impl Inner {
    /// Returns the remaining claimants of the phone number `old` claimed, when the change to
    /// `new` gave that claim up.
    fn claimants_after_release(
        &self,
        old: Option<&Entry>,
        new: Option<&Entry>,
    ) -> Vec<(String, String)> {
        let Some(digits) = old.and_then(|entry| entry.digits.as_ref()) else {
            return Vec::new();
        };
        if new.and_then(|entry| entry.digits.as_ref()) == Some(digits) {
            return Vec::new();
        }
        self.claims
            .get(digits)
            .map(|claims| claims.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces the entry of `uid`; returns the old and the new entry.
    fn set(&mut self, uid: String, entry: Option<Entry>) -> (Option<Entry>, Option<Entry>) {
        let old = match &entry {
            Some(entry) => self.by_uid.insert(uid, entry.clone()),
            None => self.by_uid.remove(&uid),
        };
        if let Some(Entry {
            digits: Some(digits),
            namespace,
            name,
            ..
        }) = &old
            && let Some(claims) = self.claims.get_mut(digits)
        {
            claims.remove(&(namespace.clone(), name.clone()));
            if claims.is_empty() {
                self.claims.remove(digits);
            }
        }
        if let Some(Entry {
            digits: Some(digits),
            namespace,
            name,
            ..
        }) = &entry
        {
            self.claims
                .entry(digits.clone())
                .or_default()
                .insert((namespace.clone(), name.clone()));
        }
        (old, entry)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn number(name: &str, uid: &str, phone: &str, profile: &str) -> CallerReputationNumber {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "callerreputation.io/v1alpha1",
            "kind": "CallerReputationNumber",
            "metadata": {"name": name, "namespace": "team", "uid": uid},
            "spec": {"number": phone, "profileRef": {"name": profile}}
        }))
        .unwrap()
    }

    fn drain<K: kube::Resource>(receiver: &mut mpsc::UnboundedReceiver<ObjectRef<K>>) -> Vec<String>
    where
        K::DynamicType: Default,
    {
        let mut names = Vec::new();
        while let Ok(object) = receiver.try_recv() {
            names.push(object.name);
        }
        names
    }

    /// Numbers in namespace `team`: name, UID, phone number and profile.
    const A: (&str, &str, &str, &str) = ("a", "u1", "+14155550100", "acme");
    const B: (&str, &str, &str, &str) = ("b", "u2", "+14155550100", "acme");
    const B_MOVED: (&str, &str, &str, &str) = ("b", "u2", "+14155550101", "other");

    fn event(
        kind: fn(CallerReputationNumber) -> watcher::Event<CallerReputationNumber>,
        (name, uid, phone, profile): (&str, &str, &str, &str),
    ) -> watcher::Event<CallerReputationNumber> {
        kind(number(name, uid, phone, profile))
    }

    #[test]
    fn claimants_follow_changes_and_deletes() {
        let (index, _changes) = NumberIndex::new();
        index.observe(&event(watcher::Event::Apply, A));
        index.observe(&event(watcher::Event::Apply, B));
        assert_eq!(index.claimants("14155550100").len(), 2);

        index.observe(&event(watcher::Event::Apply, B_MOVED));
        assert_eq!(
            index.claimants("14155550100"),
            vec![("team".to_string(), "a".to_string())]
        );

        index.observe(&event(watcher::Event::Delete, A));
        assert!(index.claimants("14155550100").is_empty());
        assert_eq!(index.claimants("14155550101").len(), 1);
    }

    #[test]
    fn released_claim_wakes_the_other_claimants() {
        let (index, changes) = NumberIndex::new();
        let mut claimants = changes.claimants;
        index.observe(&event(watcher::Event::Apply, A));
        index.observe(&event(watcher::Event::Apply, B));
        assert!(drain(&mut claimants).is_empty(), "a new claim wakes nobody");

        index.observe(&event(watcher::Event::Delete, A));
        assert_eq!(drain(&mut claimants), vec!["b"]);

        index.observe(&event(watcher::Event::Apply, A));
        index.observe(&event(watcher::Event::Apply, B_MOVED));
        assert_eq!(
            drain(&mut claimants),
            vec!["a"],
            "b now claims another number"
        );
    }

    #[test]
    fn relist_drops_deleted_numbers() {
        let (index, changes) = NumberIndex::new();
        let mut changes = changes.profiles;
        index.observe(&event(watcher::Event::Apply, A));
        index.observe(&event(watcher::Event::Apply, B_MOVED));
        drain(&mut changes);

        index.observe(&watcher::Event::Init);
        index.observe(&event(watcher::Event::InitApply, A));
        index.observe(&watcher::Event::InitDone);
        assert!(index.claimants("14155550101").is_empty());
        assert_eq!(drain(&mut changes), vec!["other"], "the profile lost b");
    }

    #[test]
    fn only_membership_changes_reach_the_profile() {
        let (index, changes) = NumberIndex::new();
        let mut changes = changes.profiles;
        let mut a = number("a", "u1", "+14155550100", "acme");
        index.observe(&watcher::Event::Apply(a.clone()));
        assert_eq!(drain(&mut changes), vec!["acme"]);

        a.status = Some(Default::default());
        index.observe(&watcher::Event::Apply(a.clone()));
        assert!(drain(&mut changes).is_empty(), "a status write");

        a.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        index.observe(&watcher::Event::Apply(a.clone()));
        assert_eq!(drain(&mut changes), vec!["acme"], "deletion started");

        let moved = number("a", "u1", "+14155550100", "other");
        index.observe(&watcher::Event::Apply(moved.clone()));
        assert_eq!(drain(&mut changes), vec!["acme", "other"]);

        index.observe(&watcher::Event::Delete(moved));
        assert_eq!(drain(&mut changes), vec!["other"]);
        drop(index);
        assert!(
            futures::executor::block_on(changes.next()).is_none(),
            "the stream ends with the index"
        );
    }
}
