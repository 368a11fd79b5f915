//! Tower layer that decides Lease expiry by this replica's own observation.
//!
//! `kube-lease-manager` 0.13 treats another holder's Lease as expired once
//! `renewTime + leaseDurationSeconds` lies before the local wall clock. A
//! holder whose clock runs behind therefore looks expired while it still
//! renews, and a standby would clear its Lease and lead next to it.
//!
//! [`LeaseObservations`] records, on the monotonic clock, when this replica
//! first saw each version of the Lease, from the election client's responses
//! and the standby's watch. [`TakeoverGuard`] sits on the election client. A PATCH that
//! sets `holderIdentity` while another identity holds the Lease (the
//! library's forced release of an expired Lease) waits until that version
//! has stayed unchanged for its lease duration, as client-go's leader
//! election does. It is then sent with the observed `resourceVersion` as
//! precondition, so a renewal that landed meanwhile turns it into a 409
//! Conflict, which the library retries after reading the Lease again.
//!
//! A holder whose clock runs ahead records a `renewTime` in the future, and
//! the library sleeps until that time before it reads the Lease again. So
//! [`LeaseObservations::unchanged_for_duration`] also reports when another
//! holder's version has expired by this replica's clock, and the standby
//! clears that holder itself (see `stale_holder`).
//!
//! A PATCH that already carries a `resourceVersion` precondition passes
//! unchanged, because its sender has chosen the version it replaces.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, Request, Response, header::CONTENT_LENGTH};
use http_body_util::BodyExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::{Body, DynBody};
use tokio::{sync::watch, time::Instant};
use tower::{BoxError, Layer, Service, ServiceExt};

use super::kube_fence::{boxed, lease_path};

/// Layer of [`TakeoverGuard`].
#[derive(Clone, Debug)]
pub struct TakeoverGuardLayer {
    path: String,
    identity: String,
    observations: LeaseObservations,
}

impl TakeoverGuardLayer {
    /// Guards takeovers of Lease `namespace/name` by `identity`, recording
    /// the versions it reads into `observations`.
    pub fn new(
        namespace: &str,
        name: &str,
        identity: &str,
        observations: LeaseObservations,
    ) -> Self {
        Self {
            path: lease_path(namespace, name),
            identity: identity.to_string(),
            observations,
        }
    }
}

impl<S> Layer<S> for TakeoverGuardLayer {
    type Service = TakeoverGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TakeoverGuard {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            path: self.path.clone().into(),
            identity: self.identity.clone().into(),
            observations: self.observations.clone(),
        }
    }
}

/// Version of the Lease as this replica first saw it.
#[derive(Clone, Debug)]
struct Observed {
    resource_version: String,
    holder: Option<String>,
    duration: Duration,
    since: Instant,
}

/// Service that delays takeovers of a Lease another identity still renews;
/// see the module docs.
pub struct TakeoverGuard<S> {
    /// Shared so that a delayed request can be sent later; only the
    /// readiness check and the call hold the lock, not the response.
    inner: Arc<tokio::sync::Mutex<S>>,
    path: Arc<str>,
    identity: Arc<str>,
    observations: LeaseObservations,
}

impl<S> Clone for TakeoverGuard<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            path: self.path.clone(),
            identity: self.identity.clone(),
            observations: self.observations.clone(),
        }
    }
}

impl<S> Service<Request<Body>> for TakeoverGuard<S>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is checked under the lock when the request is sent.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let on_lease = request.uri().path() == &*this.path;
            let request = if on_lease && request.method() == Method::PATCH {
                this.hold_takeover(request).await?
            } else {
                request
            };

            let response = {
                let mut inner = this.inner.lock().await;
                inner.ready().await?.call(request)
            }
            .await?;
            if !on_lease || !response.status().is_success() {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            if let Ok(lease) = serde_json::from_slice::<Lease>(&bytes) {
                this.observations.observe(&lease);
            }
            Ok(Response::from_parts(parts, boxed(bytes)))
        })
    }
}

/// Record of when this replica first saw each version of its Lease; cheap to clone,
/// all clones share one record. Fed by the election client's responses and
/// by the standby's watch of the Lease, so a new version counts from the
/// moment it arrived.
#[derive(Clone, Debug)]
pub struct LeaseObservations {
    latest: Arc<watch::Sender<Option<Observed>>>,
}

impl Default for LeaseObservations {
    fn default() -> Self {
        Self {
            latest: Arc::new(watch::Sender::new(None)),
        }
    }
}

/// Version of the Lease that another identity left unchanged for its lease
/// duration, as returned by [`LeaseObservations::unchanged_for_duration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleVersion {
    pub resource_version: String,
    pub holder: String,
}

impl LeaseObservations {
    /// Records `lease` as a new version unless it is the one already seen.
    pub fn observe(&self, lease: &Lease) {
        let Some(resource_version) = lease.metadata.resource_version.clone() else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.latest.send_if_modified(|latest| {
            if latest
                .as_ref()
                .is_some_and(|seen| seen.resource_version == resource_version)
            {
                return false;
            }
            *latest = Some(Observed {
                resource_version,
                holder: spec.holder_identity.filter(|holder| !holder.is_empty()),
                duration: Duration::from_secs(
                    spec.lease_duration_seconds
                        .unwrap_or(0)
                        .max(0)
                        .unsigned_abs()
                        .into(),
                ),
                since: Instant::now(),
            });
            true
        });
    }

    fn latest(&self) -> Option<Observed> {
        self.latest.borrow().clone()
    }

    /// Waits until the latest version is held by an identity other than
    /// `identity` and has stayed unchanged, on this replica's monotonic
    /// clock, for its lease duration plus `margin`. A new version restarts
    /// the wait; the Lease's `renewTime` plays no part.
    pub async fn unchanged_for_duration(&self, identity: &str, margin: Duration) -> StaleVersion {
        let mut updates = self.latest.subscribe();
        loop {
            let held_by_other = updates.borrow_and_update().clone().and_then(|seen| {
                let holder = seen.holder.clone().filter(|holder| holder != identity)?;
                Some((seen, holder))
            });
            let Some((seen, holder)) = held_by_other else {
                // `self` keeps the sender alive, so this only returns on a new version.
                let _ = updates.changed().await;
                continue;
            };
            tokio::select! {
                biased;
                _ = updates.changed() => continue,
                _ = tokio::time::sleep_until(seen.since + seen.duration + margin) => {
                    return StaleVersion {
                        resource_version: seen.resource_version,
                        holder,
                    };
                }
            }
        }
    }
}

impl<S> TakeoverGuard<S> {
    /// Delays a PATCH that takes the Lease from another holder until the
    /// observed version has expired, and adds its resourceVersion as precondition.
    async fn hold_takeover(&self, request: Request<Body>) -> Result<Request<Body>, BoxError> {
        let (mut parts, body) = request.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let Ok(mut patch) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(Request::from_parts(parts, Body::from(bytes.to_vec())));
        };
        let sets_holder = patch
            .get("spec")
            .is_some_and(|spec| spec.get("holderIdentity").is_some());
        let has_precondition = patch
            .get("metadata")
            .is_some_and(|metadata| metadata.get("resourceVersion").is_some());
        if has_precondition {
            return Ok(Request::from_parts(parts, Body::from(bytes.to_vec())));
        }
        let Some(observed) = self.observations.latest().filter(|seen| {
            sets_holder && seen.holder.as_deref().is_some_and(|h| h != &*self.identity)
        }) else {
            return Ok(Request::from_parts(parts, Body::from(bytes.to_vec())));
        };

        let expires = observed.since + observed.duration;
        if Instant::now() < expires {
            tracing::debug!(
                holder = observed.holder.as_deref().unwrap_or_default(),
                wait_ms = (expires - Instant::now()).as_millis() as u64,
                "Lease looks expired by its renewTime but changed recently; waiting before taking it"
            );
            tokio::time::sleep_until(expires).await;
        }
        patch["metadata"]["resourceVersion"] = observed.resource_version.into();
        parts.headers.remove(CONTENT_LENGTH);
        Ok(Request::from_parts(
            parts,
            Body::from(serde_json::to_vec(&patch)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use bytes::Bytes;

    use super::*;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/cro";
    const HELD_BY_OTHER: &str = r#"{"metadata":{"name":"cro","resourceVersion":"7"},"spec":{"holderIdentity":"replica-1","leaseDurationSeconds":3}}"#;
    const RENEWED_BY_OTHER: &str = r#"{"metadata":{"name":"cro","resourceVersion":"8"},"spec":{"holderIdentity":"replica-1","leaseDurationSeconds":3}}"#;
    const FORCED_RELEASE: &str = r#"{"spec":{"holderIdentity":null,"renewTime":null}}"#;

    /// A guard of `replica-0` in front of a server that returns `lease` for
    /// every request and keeps the PATCH bodies it received.
    struct Fixture {
        lease: Arc<Mutex<&'static str>>,
        patches: Arc<Mutex<Vec<serde_json::Value>>>,
        calls: Arc<AtomicUsize>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                lease: Arc::new(Mutex::new(HELD_BY_OTHER)),
                patches: Arc::default(),
                calls: Arc::default(),
            }
        }

        fn guard(
            &self,
        ) -> impl Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>
        {
            let lease = self.lease.clone();
            let patches = self.patches.clone();
            let calls = self.calls.clone();
            let server = tower::service_fn(move |request: Request<Body>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let patches = patches.clone();
                let body = *lease.lock().unwrap();
                async move {
                    if request.method() == Method::PATCH {
                        let sent = request.into_body().collect().await?.to_bytes();
                        patches
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&sent).unwrap());
                    }
                    Ok::<_, BoxError>(Response::new(boxed(Bytes::from_static(body.as_bytes()))))
                }
            });
            TakeoverGuardLayer::new("ops", "cro", "replica-0", LeaseObservations::default())
                .layer(server)
        }

        fn sent_patch(&self, index: usize) -> serde_json::Value {
            self.patches.lock().unwrap()[index].clone()
        }
    }

    fn request(method: Method, body: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(PATH)
            .body(Body::from(body.as_bytes().to_vec()))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn takeover_waits_for_unchanged_duration() {
        let fixture = Fixture::new();
        let mut guard = fixture.guard();
        guard.call(request(Method::GET, "")).await.unwrap();
        let seen_at = Instant::now();

        guard
            .call(request(Method::PATCH, FORCED_RELEASE))
            .await
            .unwrap();

        assert_eq!(seen_at.elapsed(), Duration::from_secs(3));
        let sent = fixture.sent_patch(0);
        assert_eq!(sent["metadata"]["resourceVersion"], "7");
        assert_eq!(sent["spec"]["holderIdentity"], serde_json::Value::Null);
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_seen_restarts_the_wait() {
        let fixture = Fixture::new();
        let mut guard = fixture.guard();
        guard.call(request(Method::GET, "")).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        *fixture.lease.lock().unwrap() = RENEWED_BY_OTHER;
        guard.call(request(Method::GET, "")).await.unwrap();
        let renewal_seen_at = Instant::now();

        guard
            .call(request(Method::PATCH, FORCED_RELEASE))
            .await
            .unwrap();

        assert_eq!(renewal_seen_at.elapsed(), Duration::from_secs(3));
        assert_eq!(fixture.sent_patch(0)["metadata"]["resourceVersion"], "8");
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_and_reads_pass_at_once() {
        let fixture = Fixture::new();
        let mut guard = fixture.guard();
        let started = Instant::now();

        guard.call(request(Method::GET, "")).await.unwrap();
        guard
            .call(request(Method::PATCH, r#"{"spec":{"renewTime":"x"}}"#))
            .await
            .unwrap();

        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(fixture.calls.load(Ordering::SeqCst), 2);
        assert!(
            fixture.sent_patch(0).get("metadata").is_none(),
            "a renewal is sent unchanged"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn takeover_of_an_unseen_lease_is_not_delayed() {
        let fixture = Fixture::new();
        let mut guard = fixture.guard();
        let started = Instant::now();

        guard
            .call(request(Method::PATCH, FORCED_RELEASE))
            .await
            .unwrap();

        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn patch_with_its_own_precondition_is_not_delayed() {
        let fixture = Fixture::new();
        let mut guard = fixture.guard();
        guard.call(request(Method::GET, "")).await.unwrap();
        let started = Instant::now();

        guard
            .call(request(
                Method::PATCH,
                r#"{"metadata":{"resourceVersion":"6"},"spec":{"holderIdentity":null}}"#,
            ))
            .await
            .unwrap();

        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(fixture.sent_patch(0)["metadata"]["resourceVersion"], "6");
    }

    fn lease(body: &str) -> Lease {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn version_is_stale_after_duration_and_margin() {
        let observations = LeaseObservations::default();
        observations.observe(&lease(HELD_BY_OTHER));
        let seen_at = Instant::now();

        let stale = observations
            .unchanged_for_duration("replica-0", Duration::from_secs(1))
            .await;

        assert_eq!(seen_at.elapsed(), Duration::from_secs(4));
        assert_eq!(stale.resource_version, "7");
        assert_eq!(stale.holder, "replica-1");
    }

    #[tokio::test(start_paused = true)]
    async fn new_version_restarts_the_stale_wait() {
        let observations = LeaseObservations::default();
        observations.observe(&lease(HELD_BY_OTHER));
        let renewal = tokio::spawn({
            let observations = observations.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                observations.observe(&lease(RENEWED_BY_OTHER));
            }
        });
        let started = Instant::now();

        let stale = observations
            .unchanged_for_duration("replica-0", Duration::from_secs(1))
            .await;

        renewal.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        assert_eq!(stale.resource_version, "8");
    }

    #[tokio::test(start_paused = true)]
    async fn own_or_free_lease_is_never_stale() {
        let observations = LeaseObservations::default();
        observations.observe(&lease(
            r#"{"metadata":{"name":"cro","resourceVersion":"9"},"spec":{"holderIdentity":"replica-0","leaseDurationSeconds":3}}"#,
        ));
        let own = observations.unchanged_for_duration("replica-0", Duration::ZERO);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), own)
                .await
                .is_err(),
            "a Lease this identity holds"
        );

        observations.observe(&lease(
            r#"{"metadata":{"name":"cro","resourceVersion":"10"},"spec":{"leaseDurationSeconds":3}}"#,
        ));
        let free = observations.unchanged_for_duration("replica-0", Duration::ZERO);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), free)
                .await
                .is_err(),
            "a Lease without holder"
        );
    }
}
