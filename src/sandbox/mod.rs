//! Local Plivo sandbox: a server of Plivo's Profile and Account Phone Number
//! APIs with the Caller Reputation flow, for tests and for trying the operator
//! without a Plivo account.
//!
//! It serves the paths, methods, status codes and body shapes of
//! `https://api.plivo.com/v1/Account/{auth_id}/…` (Profile create/get/list/
//! update/delete; Number list/get/update/unrent) with HTTP Basic
//! authentication, and enforces the Caller Reputation rules:
//!
//! - one profile per EIN per account (a second create answers 400 naming the EIN);
//! - only US `local` and `tollfree` numbers may enable Caller Reputation
//!   (others get 400 `number_not_eligible`); an unknown profile or one of
//!   another account gets 400 `invalid_profile_uuid`;
//! - `caller_reputation_status` goes `null` → `PENDING` on enable, then
//!   `ACTIVE` or `FAILED` after the activation delay; enabling with another
//!   profile starts `PENDING` again; enabling again with the same profile
//!   changes nothing while `PENDING` or `ACTIVE`, and resubmits a `FAILED`
//!   number; disabling returns to `null` and clears `profile_uuid`; deleting a
//!   profile disables its numbers. Profiles whose EIN is in the fail list, or
//!   that have no website when so configured, fail;
//! - a signed status callback on every status change (see [`callbacks`]);
//! - 300 requests per account in any 5-second window (429 `too many requests`).
//!
//! Paths without the trailing slash get 404 `not found`: Plivo's behaviour
//! there is unknown, and a client that drops the slash should fail in tests.
//!
//! # Admin endpoints
//!
//! JSON, no credentials, under `/_sandbox/`:
//!
//! | Method and path | Body | Effect |
//! |---|---|---|
//! | `GET /_sandbox/health` | | `{"status":"ok"}` |
//! | `GET /_sandbox/state` | | accounts, profiles and numbers (with `account` and callback settings), counters, faults |
//! | `GET /_sandbox/counters` | | per number: `pending`, `active`, `failed`, `not_enrolled`, `cleared`, `enable_requests`, `unchanged_enables`, `disable_requests`, `updates` |
//! | `GET /_sandbox/requests?since=SEQ&account=ID` | | `{"requests":[{seq,account,method,path,query,status,time,endpoint,fault?}],"last_seq"}` |
//! | `DELETE /_sandbox/requests` | | empties the request log |
//! | `GET /_sandbox/callbacks` | | every callback attempt: number, url, status sent, attempt, response status or error |
//! | `POST /_sandbox/reset` | | seed numbers only, no profiles, empty logs, start-up faults |
//! | `POST /_sandbox/numbers` | `{"account","number","type","country"}` or a list | rents numbers (201); a rented number changed to an ineligible type or country reads `NOT_ENROLLED` |
//! | `DELETE /_sandbox/numbers/{number}` | | unrents a number |
//! | `POST /_sandbox/numbers/{number}/decision` | `{"status":"ACTIVE"}` (or `FAILED`, `NOT_ENROLLED`, `PENDING`) | sets the status now, ending any pending decision |
//! | `POST /_sandbox/numbers/{number}/disable` | | Caller Reputation off (`null`, no profile) |
//! | `POST /_sandbox/numbers/{number}/profile` | `{"profile_uuid"}` | links another profile of the account, `PENDING` again |
//! | `DELETE /_sandbox/profiles/{uuid}` | | deletes a profile of any account |
//! | `GET /_sandbox/faults`, `GET /_sandbox/faults/{account}` | | fault settings |
//! | `PUT /_sandbox/faults/{account}` | [`FaultConfig`] | replaces one account's faults |
//! | `DELETE /_sandbox/faults/{account}` | | no faults for the account |
//!
//! Library use: [`Sandbox::start`] with a [`SandboxConfig`] returns a
//! [`RunningSandbox`]; the command line is [`SandboxArgs`].

mod admin;
mod api;
pub mod callbacks;
mod cli;
mod config;
pub mod faults;
mod guard;
mod numbers;
mod profiles;
mod rate_limit;
pub mod request_log;
mod server;
pub mod state;

pub use cli::{SandboxArgs, main};
pub use config::{NumberType, SandboxConfig, SeedNumber, TlsConfig};
pub use faults::{CommitThenFail, FaultConfig};
pub use request_log::RequestRecord;
pub use server::{Error, RunningSandbox, Sandbox};
