//! One run of the controllers, from start to drain or abort.
//!
//! A [`Term`] owns the spawned `controller::run` task. Draining completes the
//! task's own shutdown future and waits, within a timeout, for in-flight
//! reconciles. Aborting drops the task at its next await point, because a
//! replica that lost the Lease must stop at once.

use std::{future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::{sync::oneshot, task::JoinHandle};

/// Starts the controllers: given the future that completes when they must
/// stop taking new work, returns the future that runs them to completion.
pub type Launcher = Arc<dyn Fn(BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Outcome of [`Term::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight reconcile finished.
    Finished,
    /// The timeout passed and the task was aborted.
    TimedOut,
    /// The caller's interrupt future completed first and the task was aborted.
    Interrupted,
}

/// The running controllers of one leadership term.
pub struct Term {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Term {
    /// Spawns the controllers.
    pub fn start(launcher: &Launcher) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let stop_requested: BoxFuture<'static, ()> = Box::pin(async move {
            // A dropped sender also means stop: the term is being torn down.
            let _ = stopped.await;
        });
        let task = tokio::spawn(launcher(stop_requested));
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Completes when the controllers return on their own, that is without a
    /// stop request, which the caller treats as a failure.
    pub async fn exited(&mut self) {
        let _ = (&mut self.task).await;
    }

    /// Stops the controllers at once.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Asks the controllers to stop and waits up to `timeout` for them, or
    /// until `interrupt` completes; aborts them when they do not finish.
    pub async fn drain(
        mut self,
        timeout: Duration,
        interrupt: impl Future<Output = ()>,
    ) -> Drained {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let outcome = tokio::select! {
            _ = &mut self.task => return Drained::Finished,
            _ = tokio::time::sleep(timeout) => Drained::TimedOut,
            _ = interrupt => Drained::Interrupted,
        };
        self.task.abort();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Controllers that stop `linger` after the stop request and record
    /// whether they got to finish.
    fn lingering_controllers(linger: Duration, finished: Arc<AtomicBool>) -> Launcher {
        Arc::new(move |stop: BoxFuture<'static, ()>| {
            let finished = finished.clone();
            Box::pin(async move {
                stop.await;
                tokio::time::sleep(linger).await;
                finished.store(true, Ordering::SeqCst);
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_in_flight_work() {
        let finished = Arc::new(AtomicBool::new(false));
        let term = Term::start(&lingering_controllers(
            Duration::from_secs(5),
            finished.clone(),
        ));

        let drained = term
            .drain(Duration::from_secs(30), futures::future::pending())
            .await;

        assert_eq!(drained, Drained::Finished);
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_aborts_after_timeout() {
        let finished = Arc::new(AtomicBool::new(false));
        let term = Term::start(&lingering_controllers(
            Duration::from_secs(60),
            finished.clone(),
        ));

        let drained = term
            .drain(Duration::from_secs(30), futures::future::pending())
            .await;

        assert_eq!(drained, Drained::TimedOut);
        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_stops_on_interrupt() {
        let finished = Arc::new(AtomicBool::new(false));
        let term = Term::start(&lingering_controllers(
            Duration::from_secs(60),
            finished.clone(),
        ));

        let drained = term
            .drain(
                Duration::from_secs(30),
                tokio::time::sleep(Duration::from_secs(1)),
            )
            .await;

        assert_eq!(drained, Drained::Interrupted);
        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn abort_stops_work_at_once() {
        let finished = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let launcher: Launcher = {
            let (finished, started) = (finished.clone(), started.clone());
            Arc::new(move |_stop| {
                let (finished, started) = (finished.clone(), started.clone());
                Box::pin(async move {
                    started.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    finished.store(true, Ordering::SeqCst);
                })
            })
        };
        let term = Term::start(&launcher);
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }

        term.abort();
        tokio::time::sleep(Duration::from_secs(5)).await;

        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn controllers_returning_early_are_noticed() {
        let launcher: Launcher = Arc::new(|_stop| Box::pin(async {}));
        let mut term = Term::start(&launcher);

        tokio::time::timeout(Duration::from_secs(1), term.exited())
            .await
            .expect("exit is observed");
    }
}
