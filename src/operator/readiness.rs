//! The state behind `/readyz`: which role this replica plays and whether its
//! controllers have synced their caches.
//!
//! A standby replica reports ready while it takes part in the election. It
//! serves no traffic that needs the controllers (callbacks only trigger
//! reconciles, which a standby ignores), and a Deployment rollout would stall
//! if standbys stayed unready. The leader reports ready once the controllers
//! call [`Readiness::set_ready`] with `true`.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

/// The part this replica plays in the leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Configuration and clients are being set up; not ready.
    Starting,
    /// Taking part in the election without holding the Lease.
    Standby,
    /// Running the controllers (the Lease holder, or the only replica when
    /// leader election is off).
    Leader,
    /// Draining after SIGTERM or SIGINT; not ready.
    ShuttingDown,
}

/// Shared readiness flag; cheap to read from the HTTP handlers.
#[derive(Debug)]
pub struct Readiness {
    role: Mutex<Role>,
    controllers_ready: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            role: Mutex::new(Role::Starting),
            controllers_ready: AtomicBool::new(false),
        }
    }
}

impl Readiness {
    /// Records whether the controllers run with synced caches. The operator
    /// clears it whenever the controllers stop.
    pub fn set_ready(&self, ready: bool) {
        self.controllers_ready.store(ready, Ordering::Release);
    }

    /// Records the replica's role.
    pub fn set_role(&self, role: Role) {
        *self
            .role
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = role;
    }

    /// Returns the replica's current role.
    pub fn role(&self) -> Role {
        *self
            .role
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns whether `/readyz` responds with 200.
    pub fn is_ready(&self) -> bool {
        match self.role() {
            Role::Standby => true,
            Role::Leader => self.controllers_ready.load(Ordering::Acquire),
            Role::Starting | Role::ShuttingDown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_replica_is_not_ready() {
        let readiness = Readiness::default();
        readiness.set_ready(true);

        assert!(!readiness.is_ready());
    }

    #[test]
    fn standby_is_ready_without_controllers() {
        let readiness = Readiness::default();
        readiness.set_role(Role::Standby);

        assert!(readiness.is_ready());
    }

    #[test]
    fn leader_waits_for_synced_controllers() {
        let readiness = Readiness::default();
        readiness.set_role(Role::Leader);
        assert!(!readiness.is_ready());

        readiness.set_ready(true);
        assert!(readiness.is_ready());
    }

    #[test]
    fn shutting_down_is_not_ready() {
        let readiness = Readiness::default();
        readiness.set_ready(true);
        readiness.set_role(Role::ShuttingDown);

        assert!(!readiness.is_ready());
    }
}
