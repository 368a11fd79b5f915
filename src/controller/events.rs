//! Publishes Kubernetes Events (`events.k8s.io/v1`) about the custom resources.
//!
//! An Event published again within [`SERIES_WINDOW`] with the same type,
//! reason, action and note about the same object becomes a count on the
//! first one (its `series`), not a new object. kube-runtime's `Recorder` does
//! the same, but it keeps every whole Event it published in the last minutes
//! and scans them all on each publish. With two or three Events per number,
//! that costs memory and CPU in proportion to the numbers changing. Here only
//! the name, count and time of a recent Event are kept, keyed by a hash, and
//! expired entries are swept once a minute.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};

/// How long a published Event can still become a series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// How often expired entries are dropped.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// Publishes Events and folds repeats into series.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

struct Recent {
    published: HashMap<u64, Published>,
    swept_at: Timestamp,
}

/// The fields of an earlier Event that a series needs.
struct Published {
    name: String,
    count: i32,
    at: Timestamp,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::new(Recent {
                published: HashMap::new(),
                swept_at: Timestamp::now(),
            }),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or a count on a recent identical one.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key_of(event, regarding);
        let earlier = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.sweep(now);
            recent
                .published
                .get(&key)
                .filter(|p| p.at + SERIES_WINDOW > now)
                .map(|p| (p.name.clone(), p.count))
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api = Api::<K8sEvent>::namespaced(self.client.clone(), namespace);
        let published = match earlier {
            Some((name, count)) => {
                let series = K8sEvent {
                    series: Some(EventSeries {
                        count: count + 1,
                        last_observed_time: MicroTime(now),
                    }),
                    ..Default::default()
                };
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                Published {
                    name,
                    count: count + 1,
                    at: now,
                }
            }
            None => {
                let created = api
                    .create(
                        &PostParams::default(),
                        &self.new_event(event, regarding, now),
                    )
                    .await?;
                Published {
                    name: created.metadata.name.unwrap_or_default(),
                    count: 1,
                    at: now,
                }
            }
        };
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.published.insert(key, published);
        Ok(())
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let object = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(match event.type_ {
                EventType::Normal => "Normal".to_string(),
                EventType::Warning => "Warning".to_string(),
            }),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..Default::default()
        }
    }
}

impl Recent {
    fn sweep(&mut self, now: Timestamp) {
        if self.swept_at + SWEEP_EVERY > now {
            return;
        }
        self.published.retain(|_, p| p.at + SERIES_WINDOW > now);
        self.swept_at = now;
    }
}

/// Hashes what makes two Events the same: the object, type, reason, action and note.
fn key_of(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    (
        &regarding.uid,
        &regarding.namespace,
        &regarding.name,
        &regarding.kind,
        event.type_ == EventType::Warning,
        &event.reason,
        &event.action,
        &event.note,
    )
        .hash(&mut hasher);
    if let Some(related) = &event.secondary {
        (&related.uid, &related.kind, &related.name).hash(&mut hasher);
    }
    hasher.finish()
}
