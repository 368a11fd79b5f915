//! Shutdown signalling: SIGTERM and SIGINT become one shared, cloneable
//! [`ShutdownSignal`] that every long-running part of the process awaits.

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::watch,
};

/// Shutdown request observed by every clone; [`ShutdownSignal::wait`] completes once it is made.
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

/// The process's SIGTERM and SIGINT handlers.
///
/// Installing them replaces the default action (immediate exit), so they are
/// installed before anything starts that needs a graceful stop.
pub struct TerminationSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl TerminationSignals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// Returns the error of registering a handler with the OS.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
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
