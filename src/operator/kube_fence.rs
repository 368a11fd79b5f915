//! Tower layers that tie Kubernetes API traffic to the leadership [`Fence`].
//!
//! - [`ConfirmRenewals`] sits on the election client. It times every PATCH
//!   of the Lease and, when the apiserver returns the Lease with this
//!   replica as holder, confirms the fence from the instant the PATCH was
//!   sent. `kube-lease-manager` 0.13 renews inside `LeaseManager::changed`
//!   without reporting each renewal, so its HTTP traffic is the only place
//!   to observe them.
//! - [`GuardWrites`] sits on the controllers' client and rejects every
//!   request other than GET, HEAD and OPTIONS while the fence is closed:
//!   status and finalizer patches, Events and any other write.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::{Body, DynBody};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use crate::fence::Fence;

/// Layer of [`ConfirmRenewals`].
#[derive(Clone, Debug)]
pub struct ConfirmRenewalsLayer {
    fence: Fence,
    /// API path of the Lease, e.g. `/apis/coordination.k8s.io/v1/namespaces/ops/leases/cro`.
    path: String,
    identity: String,
}

impl ConfirmRenewalsLayer {
    /// Confirms `fence` on each accepted PATCH of Lease `namespace/name` that
    /// leaves `identity` as holder.
    pub fn new(fence: Fence, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            fence,
            path: lease_path(namespace, name),
            identity: identity.to_string(),
        }
    }
}

impl<S> Layer<S> for ConfirmRenewalsLayer {
    type Service = ConfirmRenewals<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConfirmRenewals {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service that confirms the fence from accepted Lease writes; see the module docs.
#[derive(Clone, Debug)]
pub struct ConfirmRenewals<S> {
    inner: S,
    layer: ConfirmRenewalsLayer,
}

impl<S> Service<Request<Body>> for ConfirmRenewals<S>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let lease_write =
            request.method() == Method::PATCH && request.uri().path() == self.layer.path;
        // Taken before the request leaves, so the deadline never outlasts the
        // expiry other replicas compute from this write.
        let sent = Instant::now();
        let response = self.inner.call(request);
        if !lease_write {
            return Box::pin(response);
        }

        let fence = self.layer.fence.clone();
        let identity = self.layer.identity.clone();
        Box::pin(async move {
            let response = response.await?;
            if !response.status().is_success() {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            if holder(&bytes).as_deref() == Some(identity.as_str()) {
                fence.confirm(sent);
            }
            Ok(Response::from_parts(parts, boxed(bytes)))
        })
    }
}

/// Returns the API path of Lease `namespace/name`.
pub(super) fn lease_path(namespace: &str, name: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
}

/// Holder of the Lease in a PATCH response; `None` when unheld or unreadable.
fn holder(body: &[u8]) -> Option<String> {
    let lease: Lease = serde_json::from_slice(body).ok()?;
    lease.spec?.holder_identity
}

pub(super) fn boxed(bytes: Bytes) -> Box<DynBody> {
    Box::new(Full::new(bytes).map_err(|never| match never {}))
}

/// Layer of [`GuardWrites`].
#[derive(Clone, Debug)]
pub struct GuardWritesLayer {
    fence: Fence,
}

impl GuardWritesLayer {
    /// Rejects writes while `fence` is closed.
    pub fn new(fence: Fence) -> Self {
        Self { fence }
    }
}

impl<S> Layer<S> for GuardWritesLayer {
    type Service = GuardWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardWrites {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// Service that fails writes with [`NotLeader`](crate::fence::NotLeader) while the fence is closed.
#[derive(Clone, Debug)]
pub struct GuardWrites<S> {
    inner: S,
    fence: Fence,
}

impl<S> Service<Request<Body>> for GuardWrites<S>
where
    S: Service<Request<Body>, Error = BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if !read && let Err(not_leader) = self.fence.check() {
            return Box::pin(std::future::ready(Err(BoxError::from(not_leader))));
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;
    use crate::fence::NotLeader;

    const VALIDITY: Duration = Duration::from_secs(2);
    const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/cro";

    /// Returns `body` for every request and counts the requests it received.
    fn server(
        body: &'static str,
        calls: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Box<DynBody>>,
        Error = BoxError,
        Future = impl Send + 'static,
    > + Clone {
        tower::service_fn(move |_request: Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, BoxError>(Response::new(boxed(Bytes::from_static(body.as_bytes())))) }
        })
    }

    fn request(method: Method, path: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(Vec::new()))
            .unwrap()
    }

    const HELD_BY_REPLICA_0: &str =
        r#"{"metadata":{"name":"cro"},"spec":{"holderIdentity":"replica-0"}}"#;
    const HELD_BY_REPLICA_1: &str =
        r#"{"metadata":{"name":"cro"},"spec":{"holderIdentity":"replica-1"}}"#;

    type Client = tower::util::BoxCloneService<Request<Body>, Response<Box<DynBody>>, BoxError>;

    /// Returns a closed fence and the election client of `replica-0`, whose
    /// server returns `lease` for every request.
    fn election_client(lease: &'static str) -> (Fence, Client) {
        let fence = Fence::elected(VALIDITY);
        let layer = ConfirmRenewalsLayer::new(fence.clone(), "ops", "cro", "replica-0");
        let client = layer.layer(server(lease, Arc::new(AtomicUsize::new(0))));
        (fence, tower::util::BoxCloneService::new(client))
    }

    #[tokio::test(start_paused = true)]
    async fn guard_rejects_writes_without_sending() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fence = Fence::elected(VALIDITY);
        let guard = GuardWritesLayer::new(fence).layer(server("{}", calls.clone()));

        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let error = guard
                .clone()
                .oneshot(request(method.clone(), "/api/v1/namespaces/ops/events"))
                .await
                .err()
                .expect("a closed fence rejects the write");
            assert!(error.is::<NotLeader>(), "{method}: {error}");
        }

        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing reached the server"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn guard_lets_reads_and_open_fence_through() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fence = Fence::elected(VALIDITY);
        let guard = GuardWritesLayer::new(fence.clone()).layer(server("{}", calls.clone()));

        guard
            .clone()
            .oneshot(request(Method::GET, "/api/v1/namespaces/ops/secrets/plivo"))
            .await
            .expect("reads pass a closed fence");
        fence.confirm(Instant::now());
        guard
            .oneshot(request(Method::PATCH, "/api/v1/namespaces/ops/events/e"))
            .await
            .expect("writes pass an open fence");

        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_as_holder_confirms_from_send() {
        let (fence, client) = election_client(HELD_BY_REPLICA_0);

        let response = client
            .oneshot(request(Method::PATCH, LEASE_PATH))
            .await
            .expect("renewal succeeds");
        let body = response.into_body().collect().await.unwrap().to_bytes();

        assert_eq!(body, HELD_BY_REPLICA_0.as_bytes(), "body is passed on");
        assert_eq!(fence.check(), Ok(()));
        tokio::time::advance(VALIDITY).await;
        assert!(fence.check().is_err(), "one renewal opens the fence once");
    }

    #[tokio::test(start_paused = true)]
    async fn write_leaving_another_holder_does_not_confirm() {
        let (fence, client) = election_client(HELD_BY_REPLICA_1);

        client
            .oneshot(request(Method::PATCH, LEASE_PATH))
            .await
            .expect("patch succeeds");

        assert!(fence.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_other_objects_do_not_confirm() {
        let (fence, client) = election_client(HELD_BY_REPLICA_0);

        client
            .clone()
            .oneshot(request(Method::GET, LEASE_PATH))
            .await
            .unwrap();
        client
            .oneshot(request(
                Method::PATCH,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/other",
            ))
            .await
            .unwrap();

        assert!(fence.check().is_err());
    }
}
