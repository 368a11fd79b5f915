//! Who runs the controllers: every replica when leader election is off,
//! else only the holder of a `coordination.k8s.io/v1` Lease.
//!
//! The Lease is managed by `kube-lease-manager`. The holder renews it
//! `grace` (a third of the duration) before it expires. A standby waits for
//! expiry, clears the stale holder and takes the Lease. So after the leader
//! dies without releasing, a standby takes over about one lease duration
//! after the leader's last renewal, plus up to one second of jitter.
//!
//! The library's standby does not notice a release before the old expiry,
//! so a standby also watches the Lease. When another holder releases it, the
//! standby rejoins the election at once and takes the Lease within a round
//! trip, which keeps rolling updates free of a leaderless gap.
//!
//! The library judges expiry by the holder's `renewTime`, which a holder
//! with a clock ahead sets in the future. A standby therefore also clears a
//! holder whose Lease it saw unchanged for one lease duration and a second
//! (see [`stale_holder`](super::stale_holder)), then rejoins the same way.
//!
//! Rules this module enforces:
//! - A standby runs no controllers.
//! - When the Lease is lost, or its renewal fails, the controllers are
//!   aborted at once. A failed renewal leaves at most `grace` until another
//!   replica may take the Lease, too little to drain safely.
//! - On shutdown the leader drains its controllers while it keeps renewing,
//!   then releases the Lease.
//! - The controllers' writes pass a [`Fence`] that each renewal keeps open
//!   for [`fence_validity`]; stepping down closes it. A leader that was
//!   paused past its Lease therefore sends nothing when it resumes, even
//!   before this loop notices the loss.

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};

use super::inherited_lease::{Renewal, renew_inherited};
use super::stale_holder::clear_stale_holder;
use super::takeover::LeaseObservations;
use super::{
    config::LeaderElectionSettings,
    metrics::Metrics,
    readiness::{Readiness, Role},
    shutdown::ShutdownSignal,
    term::{Drained, Launcher, Term},
};
use crate::fence::Fence;

/// How long releasing the Lease may take at shutdown before the process exits
/// without it; the Lease then expires on its own.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// First and longest pause before rebuilding the lease manager after an API error.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Failure that stopped the controllers without a shutdown request.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// `controller::run` returned before a stop was requested.
    #[error("controllers stopped without a shutdown request")]
    ControllersExited,
}

/// Inputs of a controllers run, besides the Kubernetes client.
#[derive(Clone)]
pub struct Controllers {
    pub launcher: Launcher,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    /// How long in-flight reconciles may run after shutdown is requested.
    pub shutdown_timeout: Duration,
    /// Fence of the controllers' clients, closed whenever this replica stops leading.
    pub fence: Fence,
}

impl Controllers {
    fn start(&self) -> Term {
        self.readiness.set_role(Role::Leader);
        self.metrics.set_leader(true);
        Term::start(&self.launcher)
    }

    fn stepped_down(&self, role: Role) {
        self.fence.close();
        self.readiness.set_ready(false);
        self.readiness.set_role(role);
        self.metrics.set_leader(false);
    }

    fn log_drained(&self, drained: Drained) {
        match drained {
            Drained::Finished => tracing::info!("Controllers stopped"),
            Drained::TimedOut => tracing::warn!(
                timeout_s = self.shutdown_timeout.as_secs_f64(),
                "Reconciles still running after the shutdown timeout; aborted them"
            ),
            Drained::Interrupted => {
                tracing::warn!("Lease lost while draining; aborted the controllers")
            }
        }
    }
}

/// Runs the controllers without leader election until `shutdown`.
///
/// # Errors
/// Returns [`LeaderError::ControllersExited`] when the controllers return on
/// their own.
pub async fn run_unelected(
    controllers: &Controllers,
    mut shutdown: ShutdownSignal,
) -> Result<(), LeaderError> {
    tracing::info!("Leader election is off; starting the controllers");
    let mut term = controllers.start();

    tokio::select! {
        _ = shutdown.wait() => {}
        _ = term.exited() => {
            controllers.stepped_down(Role::ShuttingDown);
            return Err(LeaderError::ControllersExited);
        }
    }

    controllers.readiness.set_role(Role::ShuttingDown);
    let drained = term
        .drain(controllers.shutdown_timeout, futures::future::pending())
        .await;
    controllers.log_drained(drained);
    controllers.stepped_down(Role::ShuttingDown);
    Ok(())
}

/// Takes part in the election until `shutdown`, running the controllers
/// while this replica holds the Lease. Kubernetes API errors are logged and
/// retried with backoff; they never end the election.
///
/// # Errors
/// Returns [`LeaderError::ControllersExited`] when the controllers return on
/// their own while leading; the Lease is released first.
pub async fn run_elected(
    client: kube::Client,
    observations: &LeaseObservations,
    settings: &LeaderElectionSettings,
    controllers: &Controllers,
    mut shutdown: ShutdownSignal,
) -> Result<(), LeaderError> {
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    tracing::info!(
        namespace = %namespace,
        lease = %settings.lease_name,
        identity = %settings.identity,
        "Joining leader election"
    );
    let mut retry_delay = RETRY_MIN;

    loop {
        let built = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            built = build_manager(client.clone(), &namespace, settings) => built,
        };
        let manager = match built {
            Ok(manager) => manager,
            Err(error) => {
                tracing::error!(error = %error, namespace = %namespace, lease = %settings.lease_name, "Failed to set up the Lease; retrying");
                if pause_or_shutdown(&mut shutdown, &mut retry_delay).await {
                    return Ok(());
                }
                continue;
            }
        };
        controllers.readiness.set_role(Role::Standby);
        let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
        let rejoin = rejoin_needed(&leases, settings, observations);
        let own = OwnLease {
            leases: &leases,
            settings,
        };

        match take_part(&manager, own, rejoin, controllers, &mut shutdown).await {
            Participation::Shutdown { leading } => {
                if leading {
                    release(&manager).await;
                }
                return Ok(());
            }
            Participation::ControllersExited => {
                release(&manager).await;
                return Err(LeaderError::ControllersExited);
            }
            Participation::Rejoin(Rejoin::Released) => {
                tracing::info!(lease = %settings.lease_name, "Lease released by its holder; rejoining the election");
                retry_delay = RETRY_MIN;
            }
            Participation::Rejoin(Rejoin::StaleHolderCleared { holder }) => {
                tracing::warn!(lease = %settings.lease_name, holder = %holder, "Cleared a Lease holder that stopped renewing; rejoining the election");
                retry_delay = RETRY_MIN;
            }
            Participation::LeaseError(error) => {
                tracing::error!(error = %error, lease = %settings.lease_name, "Lease update failed; rejoining the election");
                if pause_or_shutdown(&mut shutdown, &mut retry_delay).await {
                    return Ok(());
                }
            }
        }
    }
}

async fn build_manager(
    client: kube::Client,
    namespace: &str,
    settings: &LeaderElectionSettings,
) -> Result<LeaseManager, LeaseManagerError> {
    let duration = settings.lease_duration.as_secs();
    LeaseManagerBuilder::new(client, settings.lease_name.clone())
        .with_namespace(namespace)
        .with_identity(settings.identity.clone())
        .with_duration(duration)
        .with_grace(grace_seconds(duration))
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await
}

/// Renewal margin: a third of the duration, at least one second. With the
/// default 15 s Lease the holder renews every 10 s.
fn grace_seconds(duration: u64) -> u64 {
    (duration / 3).max(1)
}

/// Returns how long one accepted acquire or renewal keeps the [`Fence`] open,
/// counted from when it was sent: the Lease duration minus half the grace.
///
/// The holder renews `grace` before expiry, so a renewal that completes
/// within half the grace keeps the fence open without a gap. The other half
/// is the safety margin: it must cover the time a Plivo request needs to
/// arrive after its fence check. A 15 s Lease gives 12.5 s, a 3 s Lease 2.5 s.
pub fn fence_validity(lease_duration: Duration) -> Duration {
    let grace = Duration::from_secs(grace_seconds(lease_duration.as_secs()));
    lease_duration.saturating_sub(grace / 2)
}

enum Participation {
    Shutdown {
        leading: bool,
    },
    ControllersExited,
    LeaseError(LeaseManagerError),
    /// The Lease became free while this replica stood by.
    Rejoin(Rejoin),
}

/// Reason the Lease became free while this replica stood by.
enum Rejoin {
    /// Another holder released the Lease.
    Released,
    /// This replica cleared another holder that had stopped renewing.
    StaleHolderCleared { holder: String },
}

/// Completes when a standby should rebuild its lease manager: when another
/// holder releases the Lease, or once this replica has cleared a holder that
/// left the Lease unchanged for its duration. Either way the library's
/// current manager may sleep until the old `renewTime` expiry.
async fn rejoin_needed(
    leases: &Api<Lease>,
    settings: &LeaderElectionSettings,
    observations: &LeaseObservations,
) -> Rejoin {
    let name = &settings.lease_name;
    let identity = &settings.identity;
    tokio::select! {
        () = released_by_other(leases.clone(), name, identity, observations) => Rejoin::Released,
        holder = clear_stale_holder(leases, name, identity, observations) => {
            Rejoin::StaleHolderCleared { holder }
        }
    }
}

/// The Lease this replica competes for, read and written through the
/// election client.
struct OwnLease<'a> {
    leases: &'a Api<Lease>,
    settings: &'a LeaderElectionSettings,
}

impl OwnLease<'_> {
    /// Renews the Lease at once when it was acquired without a write of this
    /// process, so that the fence opens before the controllers start.
    async fn confirm_acquired(&self, fence: &Fence) {
        if fence.check().is_ok() {
            return;
        }
        let name = &self.settings.lease_name;
        match renew_inherited(self.leases, name, &self.settings.identity).await {
            Ok(Renewal::Renewed) => {
                tracing::info!(lease = %name, "Renewed the Lease this identity held before the restart")
            }
            Ok(Renewal::NotHolder) => {
                tracing::warn!(lease = %name, "Lease changed hands before its first renewal; writes wait for the next one")
            }
            Err(error) => {
                tracing::warn!(error = %error, lease = %name, "Failed to renew an inherited Lease; writes wait for the next renewal")
            }
        }
    }
}

/// Follows the Lease with one manager until shutdown, an API error, or
/// until `rejoin` completes while this replica is a standby.
async fn take_part(
    manager: &LeaseManager,
    own: OwnLease<'_>,
    rejoin: impl Future<Output = Rejoin>,
    controllers: &Controllers,
    shutdown: &mut ShutdownSignal,
) -> Participation {
    let mut term: Option<Term> = None;
    tokio::pin!(rejoin);

    loop {
        tokio::select! {
            _ = shutdown.wait() => {
                let leading = term.is_some();
                if let Some(term) = term.take() {
                    controllers.readiness.set_role(Role::ShuttingDown);
                    let drained = term
                        .drain(controllers.shutdown_timeout, lease_lost(manager))
                        .await;
                    controllers.log_drained(drained);
                }
                controllers.stepped_down(Role::ShuttingDown);
                return Participation::Shutdown { leading };
            }
            // Only a standby rebuilds its manager: the holder's own view is
            // current, and the watch cannot complete while it is not polled.
            rejoin = &mut rejoin, if term.is_none() => return Participation::Rejoin(rejoin),
            changed = manager.changed() => match changed {
                Ok(true) => {
                    tracing::info!("Acquired the Lease; starting the controllers");
                    own.confirm_acquired(&controllers.fence).await;
                    if let Some(stale) = term.replace(controllers.start()) {
                        stale.abort();
                    }
                }
                Ok(false) => {
                    tracing::warn!("Lost the Lease; stopping the controllers");
                    if let Some(term) = term.take() {
                        term.abort();
                    }
                    controllers.stepped_down(Role::Standby);
                }
                Err(error) => {
                    if let Some(term) = term.take() {
                        tracing::warn!("Cannot renew the Lease; stopping the controllers");
                        term.abort();
                    }
                    controllers.stepped_down(Role::Standby);
                    return Participation::LeaseError(error);
                }
            },
            _ = running(&mut term) => {
                tracing::error!("Controllers stopped without a shutdown request");
                controllers.stepped_down(Role::ShuttingDown);
                return Participation::ControllersExited;
            }
        }
    }
}

/// Completes when the Lease goes from held by another identity to unheld or
/// deleted; never completes otherwise. Watch errors are retried with the
/// watcher's default backoff, so an unreachable API server only delays it.
/// Each version it receives goes into `observations`, so that a takeover waits
/// one duration from when a renewal arrived, not from when the library read it.
async fn released_by_other(
    leases: Api<Lease>,
    name: &str,
    identity: &str,
    observations: &LeaseObservations,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(leases, config).default_backoff().boxed();
    let mut other_holder = false;

    while let Some(event) = events.next().await {
        let holder = match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                observations.observe(&lease);
                lease
                    .spec
                    .and_then(|spec| spec.holder_identity)
                    .filter(|holder| !holder.is_empty())
            }
            Ok(watcher::Event::Delete(_)) => None,
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(error) => {
                tracing::debug!(error = %error, "Lease watch failed; retrying");
                continue;
            }
        };
        if holder.is_none() && other_holder {
            return;
        }
        other_holder = holder.is_some_and(|holder| holder != identity);
    }
    futures::future::pending().await
}

/// Completes when the controllers of `term` return; never without a term.
async fn running(term: &mut Option<Term>) {
    match term {
        Some(term) => term.exited().await,
        None => futures::future::pending().await,
    }
}

/// Keeps renewing while draining; completes when the Lease is lost or can
/// no longer be renewed.
async fn lease_lost(manager: &LeaseManager) {
    loop {
        match manager.changed().await {
            Ok(true) => continue,
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(error = %error, "Cannot renew the Lease while draining");
                return;
            }
        }
    }
}

async fn release(manager: &LeaseManager) {
    match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
        Ok(Ok(())) => tracing::info!("Released the Lease"),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "Failed to release the Lease; it expires on its own")
        }
        Err(_) => tracing::warn!("Releasing the Lease timed out; it expires on its own"),
    }
}

/// Sleeps `delay` (then doubles it, up to [`RETRY_MAX`]) unless shutdown
/// comes first; returns whether shutdown was requested.
async fn pause_or_shutdown(shutdown: &mut ShutdownSignal, delay: &mut Duration) -> bool {
    let pause = *delay;
    *delay = (*delay * 2).min(RETRY_MAX);
    tokio::select! {
        _ = shutdown.wait() => true,
        _ = tokio::time::sleep(pause) => false,
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::operator::shutdown;

    fn controllers(launcher: Launcher) -> Controllers {
        Controllers {
            launcher,
            readiness: Arc::new(Readiness::default()),
            metrics: Arc::new(Metrics::new()),
            shutdown_timeout: Duration::from_secs(30),
            fence: Fence::unelected(),
        }
    }

    #[test]
    fn grace_is_a_third_of_the_duration() {
        assert_eq!(grace_seconds(15), 5);
        assert_eq!(grace_seconds(3), 1);
        assert_eq!(grace_seconds(4), 1);
    }

    #[test]
    fn fence_closes_before_a_standby_may_take_over() {
        assert_eq!(
            fence_validity(Duration::from_secs(15)),
            Duration::from_millis(12_500)
        );
        assert_eq!(
            fence_validity(Duration::from_secs(3)),
            Duration::from_millis(2_500)
        );
    }

    #[test]
    fn fence_outlasts_the_renewal_interval() {
        for seconds in [3, 4, 15, 60] {
            let duration = Duration::from_secs(seconds);
            let renews_after = duration - Duration::from_secs(grace_seconds(seconds));

            assert!(fence_validity(duration) > renews_after, "{seconds} s Lease");
            assert!(fence_validity(duration) < duration, "{seconds} s Lease");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unelected_replica_leads_until_shutdown() {
        let launcher: Launcher = Arc::new(|stop: BoxFuture<'static, ()>| Box::pin(stop));
        let controllers = controllers(launcher);
        let (trigger, signal) = shutdown::channel();
        let run = tokio::spawn({
            let controllers = controllers.clone();
            async move { run_unelected(&controllers, signal).await }
        });

        tokio::time::timeout(Duration::from_secs(5), async {
            while controllers.readiness.role() != Role::Leader {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("replica becomes leader");
        assert!(
            controllers
                .metrics
                .render()
                .contains("caller_reputation_leader 1")
        );

        trigger.trigger();
        let result = run.await.expect("run does not panic");

        assert!(result.is_ok());
        assert_eq!(controllers.readiness.role(), Role::ShuttingDown);
        assert!(
            controllers
                .metrics
                .render()
                .contains("caller_reputation_leader 0")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unelected_run_fails_when_controllers_exit() {
        let launcher: Launcher = Arc::new(|_stop| Box::pin(async {}));
        let (_trigger, signal) = shutdown::channel();

        let result = run_unelected(&controllers(launcher), signal).await;

        assert!(matches!(result, Err(LeaderError::ControllersExited)));
    }
}
