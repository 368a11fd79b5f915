//! Shutdown signalling: SIGTERM and SIGINT become one shared, cloneable
//! [`ShutdownSignal`] that every long-running part of the process awaits.

use tokio::sync::watch;

/// Completes for every clone once shutdown is requested.
#[derive(Clone, Debug)]
pub struct ShutdownSignal(watch::Receiver<bool>);

/// Requests shutdown; dropping it without calling [`ShutdownTrigger::trigger`]
/// also completes every [`ShutdownSignal`], so no waiter is left hanging.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Creates a linked trigger and signal.
pub fn channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger(sender), ShutdownSignal(receiver))
}

impl ShutdownTrigger {
    /// Requests shutdown; later calls do nothing.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Waits until shutdown is requested.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which counts as a request.
        let _ = self.0.wait_for(|requested| *requested).await;
    }

    /// Returns whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// Waits for SIGTERM or SIGINT and returns the signal's name.
///
/// # Errors
/// Returns the error of installing the signal handlers.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        _ = interrupt.recv() => Ok("SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let (trigger, signal) = channel();
        let mut first = signal.clone();
        let mut second = signal;

        trigger.trigger();

        first.wait().await;
        second.wait().await;
        assert!(first.is_requested());
    }

    #[tokio::test]
    async fn dropped_trigger_releases_waiters() {
        let (trigger, mut signal) = channel();

        drop(trigger);

        signal.wait().await;
        assert!(!signal.is_requested());
    }
}
