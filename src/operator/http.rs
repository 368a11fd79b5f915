//! The operator's single HTTP port: probes, metrics and Plivo callbacks.
//!
//! - `GET /healthz`: 200 while the process serves requests.
//! - `GET /readyz`: 200 when [`Readiness::is_ready`]; 503 otherwise.
//! - `GET /metrics`: Prometheus metrics in the OpenMetrics text format.
//! - `GET`/`POST /callbacks/caller-reputation`: see [`super::callback`].

use std::{future::Future, io, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use super::{
    callback::{self, CallbackState},
    metrics::{self, Metrics},
    readiness::Readiness,
};

#[derive(Clone)]
struct ProbeState {
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
}

/// Builds the router of every endpoint; the callback state carries the
/// readiness and metrics shared with the probes.
pub fn router(callbacks: CallbackState) -> Router {
    let probes = ProbeState {
        readiness: callbacks.readiness.clone(),
        metrics: callbacks.metrics.clone(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(probes)
        .merge(callback::routes(callbacks))
}

/// Binds the listening socket, so a taken port fails before anything starts.
///
/// # Errors
/// Returns the bind error (address in use, permission denied).
pub async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
///
/// # Errors
/// Returns the I/O error that stopped the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(probes): State<ProbeState>) -> impl IntoResponse {
    if probes.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn render_metrics(State(probes): State<ProbeState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        probes.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use futures::future::BoxFuture;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        controller::{CallbackSink, CallbackTarget},
        operator::readiness::Role,
    };

    struct NoTargets;

    impl CallbackSink for NoTargets {
        fn targets(&self, _number_digits: &str) -> BoxFuture<'_, Vec<CallbackTarget>> {
            Box::pin(async { Vec::new() })
        }

        fn trigger(&self, _namespace: &str, _name: &str) {}
    }

    fn test_router(readiness: Arc<Readiness>) -> Router {
        router(CallbackState {
            sink: Arc::new(NoTargets),
            public_base_url: None,
            readiness,
            metrics: Arc::new(Metrics::new()),
        })
    }

    async fn get_status(router: Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .body(Body::empty())
            .expect("request builds");
        let response = router.oneshot(request).await.expect("router responds");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body reads");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn healthz_responds_while_starting() {
        let (status, _) = get_status(test_router(Arc::default()), "/healthz").await;

        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_follows_readiness() {
        let readiness = Arc::new(Readiness::default());
        let router = test_router(readiness.clone());

        let (starting, _) = get_status(router.clone(), "/readyz").await;
        readiness.set_role(Role::Leader);
        let (leader_unsynced, _) = get_status(router.clone(), "/readyz").await;
        readiness.set_ready(true);
        let (leader_synced, _) = get_status(router.clone(), "/readyz").await;
        readiness.set_role(Role::Standby);
        let (standby, _) = get_status(router, "/readyz").await;

        assert_eq!(starting, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(leader_unsynced, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(leader_synced, StatusCode::OK);
        assert_eq!(standby, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_openmetrics() {
        let request = Request::get("/metrics")
            .body(Body::empty())
            .expect("request builds");
        let response = test_router(Arc::default())
            .oneshot(request)
            .await
            .expect("router responds");

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(metrics::CONTENT_TYPE.as_bytes())
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body reads");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("# TYPE caller_reputation_leader gauge"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
