//! Typed client of Plivo's Profile and Number APIs, used by the controllers.
//!
//! [`PlivoClient`] holds one HTTP connection pool and a client-side rate limiter per Auth ID (300
//! requests per sliding 5 s by default, Plivo's documented limit). [`PlivoClient::account`] returns an
//! [`Account`] handle whose methods map one-to-one to Plivo endpoints. Every failure is one [`Error`]
//! variant that says whether a retry can help; the client already repeats idempotent calls on 429,
//! 5xx and transport errors with jittered exponential backoff. The Auth Token never appears in
//! `Debug` output, error text or logs. [`signature`] checks the signatures of Plivo's status callbacks.
//!
//! ```no_run
//! # async fn example() -> Result<(), caller_reputation_operator::plivo::Error> {
//! use caller_reputation_operator::plivo::{ClientConfig, Credentials, PlivoClient, UpdateNumber};
//!
//! let client = PlivoClient::new(ClientConfig::default())?;
//! let account = client.account(Credentials::new("MAXXXXXXXXXXXXXXXXXX", "token"));
//! account
//!     .update_number("+14155550100", &UpdateNumber::enable_caller_reputation("f3a1…", None))
//!     .await?;
//! let number = account.get_number("14155550100").await?;
//! println!("{:?}", number.caller_reputation_status);
//! # Ok(())
//! # }
//! ```

mod client;
mod endpoints;
mod error;
mod lenient;
mod limiter;
mod number;
mod observer;
mod page;
mod profile;
mod retry;
pub mod signature;

#[cfg(test)]
mod tests;

pub use client::{Account, ClientConfig, Credentials, PlivoClient, install_crypto_provider};
pub use error::{Error, MAX_MESSAGE_BYTES, Operation};
pub use number::{
    CallbackMethod, CallerReputationStatus, ListNumbers, Number, NumberType, UpdateNumber,
};
pub use observer::{NoopObserver, RequestObserver};
pub use page::{MAX_PAGE_SIZE, Meta, Page};
pub use profile::{Address, AuthorizedContact, CreateProfile, Profile, UpdateProfile};
