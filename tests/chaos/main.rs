//! Chaos tests: the operator as a real process against the shared control plane and an
//! in-process Plivo sandbox, with faults injected at chosen moments (SIGKILL mid-write, deletes
//! while it is down, a frozen leader, oversized error bodies, forged callbacks).
//!
//! Each test prints one `chaos:` line with the counts it checked; `RELIABILITY.md` lists them.

#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../controllers/harness.rs"]
mod harness;

mod process;
mod rig;

mod bad_input;
mod bounded_text;
mod cleanup;
mod fairness;
mod kill;
mod one_writer;
mod quiet;
mod recovery;
mod secrets;
