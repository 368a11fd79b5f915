//! The bridge from Plivo's status callbacks to the number controller.
//!
//! A verified callback only schedules a reconcile that re-reads the number at
//! Plivo; its body is never taken as the status.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock},
};

use futures::{Stream, future::BoxFuture};
use kube::{ResourceExt, runtime::reflector::ObjectRef};
use tokio::sync::broadcast;

use super::{CallbackSink, CallbackTarget, Context, credentials, number};
use crate::api::CallerReputationNumber;

/// Path of the operator's callback endpoint, appended to `--callback-base-url`.
pub const CALLBACK_PATH: &str = "/callbacks/caller-reputation";

/// Returns the URL to register at Plivo as `caller_reputation_callback_url`.
///
/// A path in `base` is kept (`https://host/operator` gives
/// `https://host/operator/callbacks/caller-reputation`), for proxies that
/// route by prefix. The callback endpoint verifies signatures against exactly
/// this text.
pub fn public_callback_url(base: &url::Url) -> url::Url {
    let mut url = base.clone();
    let path = format!("{}{CALLBACK_PATH}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// Routes callbacks to reconciles; created before the controllers so the
/// HTTP server can hold it from the start.
pub struct CallbackHub {
    sender: broadcast::Sender<ObjectRef<CallerReputationNumber>>,
    /// Numbers whose next reconcile must read Plivo even if a check is not due.
    forced: Mutex<HashSet<(String, String)>>,
    context: OnceLock<Arc<Context>>,
    /// Whether the running controllers have filled their caches.
    synced: tokio::sync::watch::Sender<bool>,
}

impl Default for CallbackHub {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            sender,
            forced: Mutex::default(),
            context: OnceLock::new(),
            synced: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl CallbackHub {
    pub(super) fn attach(&self, context: Arc<Context>) {
        let _ = self.context.set(context);
    }

    pub(super) fn set_synced(&self, synced: bool) {
        self.synced.send_replace(synced);
    }

    /// Waits until the running controllers have listed every watched resource once.
    pub async fn wait_synced(&self) {
        let mut receiver = self.synced.subscribe();
        let _ = receiver.wait_for(|synced| *synced).await;
    }

    /// Returns whether a callback asked for a fresh read of `namespace/name`, and clears the request.
    pub(super) fn take_forced(&self, namespace: &str, name: &str) -> bool {
        let mut forced = self.forced.lock().unwrap_or_else(|e| e.into_inner());
        forced.remove(&(namespace.to_string(), name.to_string()))
    }

    /// A stream of the numbers to reconcile because a callback arrived.
    pub(super) fn subscribe(
        &self,
    ) -> impl Stream<Item = ObjectRef<CallerReputationNumber>> + Send + 'static {
        let receiver = self.sender.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(target) => return Some((target, receiver)),
                    // Missed triggers are harmless: every number is re-checked on its own schedule.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }
}

impl CallbackSink for CallbackHub {
    fn targets(&self, number_digits: &str) -> BoxFuture<'_, Vec<CallbackTarget>> {
        let number_digits = number_digits.to_string();
        Box::pin(async move {
            let Some(ctx) = self.context.get() else {
                return Vec::new();
            };
            let mut targets = Vec::new();
            for resource in ctx.all_numbers() {
                let matches = resource
                    .spec
                    .phone_number()
                    .is_ok_and(|phone| phone.digits() == number_digits);
                if !matches {
                    continue;
                }
                let namespace = resource.namespace().unwrap_or_default();
                let reference = number::credentials_of(&resource, ctx);
                let Ok(resolved) = credentials::resolve(
                    &ctx.client,
                    &namespace,
                    reference.as_ref(),
                    ctx.settings.default_credentials.as_ref(),
                )
                .await
                else {
                    continue;
                };
                targets.push(CallbackTarget {
                    namespace,
                    name: resource.name_any(),
                    auth_tokens: vec![resolved.credentials.auth_token],
                });
            }
            targets
        })
    }

    fn trigger(&self, namespace: &str, name: &str) {
        {
            let mut forced = self.forced.lock().unwrap_or_else(|e| e.into_inner());
            forced.insert((namespace.to_string(), name.to_string()));
        }
        let _ = self.sender.send(ObjectRef::new(name).within(namespace));
    }
}
