//! Counts apiserver writes by watching: every new `resourceVersion` of a BusinessProfile,
//! CallerReputationNumber or Event in the benchmark namespace is one write. The watch also shows
//! when each number became `Ready=True` with reason `Active`.
//!
//! A watch sees every version unless it falls so far behind that the apiserver returns 410 Gone
//! and the watcher lists again. The versions in between are then lost. [`Tally::relists`] counts
//! those restarts, so a report can say when its write counts are a lower bound.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Instant,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client,
    api::DynamicObject,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

use super::workload::Kind;

/// The part of an object one write changed, judged by comparing the new version with the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// The first version: a create.
    Create,
    /// `metadata.finalizers` changed.
    Finalizer,
    /// `status` changed.
    Status,
    /// Anything else: labels, annotations, spec, or a write that changed nothing visible.
    Other,
}

/// One observed write.
#[derive(Clone, Debug)]
pub struct Write {
    pub at: Instant,
    /// `None` for an Event.
    pub kind: Option<Kind>,
    pub change: Change,
    /// For an object, the reason of its `Ready` condition after the write; for an Event, its
    /// reason. Empty when there is none.
    pub reason: String,
}

struct Version {
    resource_version: String,
    finalizers: Value,
    status: Value,
}

/// Everything the watches observed so far.
#[derive(Default)]
pub struct Tally {
    versions: HashMap<(Kind, String), Version>,
    event_versions: HashMap<String, String>,
    pub writes: Vec<Write>,
    ready: HashSet<String>,
    /// Time the `Ready` set last reached its current size.
    pub last_ready_change: Option<Instant>,
    /// Watch restarts after the first list of each watch.
    pub relists: u32,
}

impl Tally {
    /// Numbers whose `Ready` condition is now True with reason `Active`.
    pub fn ready_numbers(&self) -> usize {
        self.ready.len()
    }

    /// Writes observed in `[from, to)`, optionally of one kind; `None` counts Events only.
    pub fn count(
        &self,
        from: Instant,
        to: Instant,
        kind: Option<Kind>,
        change: Option<Change>,
    ) -> usize {
        self.writes
            .iter()
            .filter(|write| write.at >= from && write.at < to)
            .filter(|write| write.kind == kind)
            .filter(|write| change.is_none_or(|change| write.change == change))
            .count()
    }

    /// Writes of `change` observed in `[from, to)` to objects of `kind` (`None` for Events), by
    /// reason.
    pub fn reasons(
        &self,
        from: Instant,
        to: Instant,
        kind: Option<Kind>,
        change: Option<Change>,
    ) -> BTreeMap<String, usize> {
        let mut reasons = BTreeMap::new();
        for write in self
            .writes
            .iter()
            .filter(|write| write.at >= from && write.at < to)
            .filter(|write| write.kind == kind)
            .filter(|write| change.is_none_or(|change| write.change == change))
        {
            *reasons.entry(write.reason.clone()).or_default() += 1;
        }
        reasons
    }

    /// First write at or after `from`, of any kind.
    pub fn first_write_since(&self, from: Instant) -> Option<Instant> {
        self.writes
            .iter()
            .map(|write| write.at)
            .filter(|at| *at >= from)
            .min()
    }

    /// Records one observed version of an object; `listed` versions are the state before the
    /// watch started and are not writes.
    fn observe(&mut self, kind: Kind, object: &DynamicObject, listed: bool) {
        let Some(name) = object.metadata.name.clone() else {
            return;
        };
        let Some(resource_version) = object.metadata.resource_version.clone() else {
            return;
        };
        let finalizers = serde_json::to_value(&object.metadata.finalizers).unwrap_or(Value::Null);
        let status = object.data.get("status").cloned().unwrap_or(Value::Null);
        let reason = ready_reason(&status).to_owned();
        if kind == Kind::CallerReputationNumber {
            self.track_ready(&name, &status);
        }

        let key = (kind, name);
        let change = match self.versions.get(&key) {
            Some(previous) if previous.resource_version == resource_version => return,
            Some(previous) if previous.finalizers != finalizers => Change::Finalizer,
            Some(previous) if previous.status != status => Change::Status,
            Some(_) => Change::Other,
            None => Change::Create,
        };
        self.versions.insert(
            key,
            Version {
                resource_version,
                finalizers,
                status,
            },
        );
        if !listed {
            self.writes.push(Write {
                at: Instant::now(),
                kind: Some(kind),
                change,
                reason,
            });
        }
    }

    fn observe_event(&mut self, event: &Event, listed: bool) {
        let (Some(name), Some(resource_version)) = (
            event.metadata.name.clone(),
            event.metadata.resource_version.clone(),
        ) else {
            return;
        };
        let change = match self.event_versions.insert(name, resource_version.clone()) {
            Some(previous) if previous == resource_version => return,
            Some(_) => Change::Other,
            None => Change::Create,
        };
        if !listed {
            self.writes.push(Write {
                at: Instant::now(),
                kind: None,
                change,
                reason: event.reason.clone().unwrap_or_default(),
            });
        }
    }

    fn track_ready(&mut self, name: &str, status: &Value) {
        let active = ready_condition(status)
            .is_some_and(|ready| ready["status"] == "True" && ready["reason"] == "Active");
        let changed = if active {
            self.ready.insert(name.to_owned())
        } else {
            self.ready.remove(name)
        };
        if changed {
            self.last_ready_change = Some(Instant::now());
        }
    }
}

/// The running watches of one namespace; dropping it stops them.
pub struct Watches {
    pub tally: Arc<Mutex<Tally>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Watches {
    /// Starts watching both kinds and Events in `namespace` and returns once every watch has
    /// finished its first list, so that no later write is missed.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = Vec::new();
        let mut listed = Vec::new();
        for kind in [Kind::BusinessProfile, Kind::CallerReputationNumber] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &kind.resource());
            let (done, done_rx) = oneshot::channel();
            listed.push(done_rx);
            tasks.push(tokio::spawn(watch(
                api,
                tally.clone(),
                done,
                move |tally, object, listed| tally.observe(kind, &object, listed),
            )));
        }
        let api: Api<Event> = Api::namespaced(client.clone(), namespace);
        let (done, done_rx) = oneshot::channel();
        listed.push(done_rx);
        tasks.push(tokio::spawn(watch(
            api,
            tally.clone(),
            done,
            |tally, event, listed| tally.observe_event(&event, listed),
        )));
        for done in listed {
            let _ = done.await;
        }
        Self { tally, tasks }
    }

    /// Runs `read` on the tally.
    pub fn read<T>(&self, read: impl FnOnce(&Tally) -> T) -> T {
        read(&lock(&self.tally))
    }
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Feeds one watch into the tally; `done` fires when the first list is complete.
async fn watch<K>(
    api: Api<K>,
    tally: Arc<Mutex<Tally>>,
    done: oneshot::Sender<()>,
    observe: impl Fn(&mut Tally, K, bool) + Send,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut done = Some(done);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) if done.is_none() => lock(&tally).relists += 1,
            Ok(watcher::Event::Init) | Ok(watcher::Event::Delete(_)) => {}
            // Objects of the first list are the state before the benchmark, not writes.
            Ok(watcher::Event::InitApply(object)) => {
                observe(&mut lock(&tally), object, done.is_some())
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(done) = done.take() {
                    let _ = done.send(());
                }
            }
            Ok(watcher::Event::Apply(object)) => observe(&mut lock(&tally), object, false),
            Err(error) => eprintln!("benchmark watch failed, retrying: {error}"),
        }
    }
}

fn ready_condition(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == "Ready")
}

fn ready_reason(status: &Value) -> &str {
    ready_condition(status)
        .and_then(|ready| ready["reason"].as_str())
        .unwrap_or_default()
}
