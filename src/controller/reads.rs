//! Reading numbers from Plivo: one GET for a single number, or one listing of
//! the account (20 numbers a request) shared by every reconcile that needs a
//! number of that account within a few seconds, when that is cheaper.
//!
//! A listing is taken only when the account has enough managed numbers for it
//! to pay off, and only again if the previous listing served at least as many
//! reads as it cost requests. A listing stops after its first page when the
//! account's pages would spend more than a third of the account's rate over
//! the listing's lifetime: the listing would be stale before it could serve
//! as many reads as it cost. An entry is used once, so a number read from a
//! listing is read by GET the next time, and writes never read stale data:
//! every enable or disable is followed by a GET of that number.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::plivo::{Account, Error, ListNumbers, MAX_PAGE_SIZE, Number};

/// How long a listing may serve reads.
const LISTING_MAX_AGE: Duration = Duration::from_secs(15);

/// Reads of Plivo numbers, shared by all reconciles.
pub struct NumberReads {
    /// Maximum pages of an account that is listed in full.
    max_pages: usize,
    accounts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Listing>>>>>,
}

impl Default for NumberReads {
    /// Reads at Plivo's documented rate, 300 requests per 5 seconds.
    fn default() -> Self {
        Self::new(300, Duration::from_secs(5))
    }
}

struct Listing {
    taken_at: Instant,
    /// Requests the listing cost.
    pages: usize,
    /// Reads it served so far.
    served: usize,
    /// Whether it stopped early because the account has too many pages.
    cut_short: bool,
    numbers: HashMap<String, Number>,
}

impl NumberReads {
    /// Creates the reads of accounts limited to `requests_per_window` requests per `window`.
    pub fn new(requests_per_window: u32, window: Duration) -> Self {
        let per_lifetime = f64::from(requests_per_window) * LISTING_MAX_AGE.as_secs_f64()
            / window.as_secs_f64().max(f64::EPSILON);
        Self {
            max_pages: (per_lifetime / 3.0) as usize,
            accounts: Mutex::default(),
        }
    }

    /// Reads one number. `managed` is how many numbers the operator manages in
    /// this account; it decides whether a listing can be cheaper than GETs.
    pub async fn read(
        &self,
        account: &Account,
        digits: &str,
        managed: usize,
    ) -> Result<Number, Error> {
        let page = MAX_PAGE_SIZE as usize;
        if managed < 2 * page || managed.div_ceil(page) > self.max_pages {
            return account.get_number(digits).await;
        }
        let slot = {
            let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            accounts
                .entry(account.auth_id().to_string())
                .or_default()
                .clone()
        };
        let mut listing = slot.lock().await;

        let fresh = listing
            .as_ref()
            .is_some_and(|l| l.taken_at.elapsed() < LISTING_MAX_AGE);
        if !fresh {
            let paid_off = listing
                .as_ref()
                .is_none_or(|l| l.served >= l.pages && !l.cut_short);
            if !paid_off {
                // The last listing cost more than it saved, or the account is too
                // large to list in time; wait it out with GETs.
                if listing
                    .as_ref()
                    .is_some_and(|l| l.taken_at.elapsed() < LISTING_MAX_AGE * 20)
                {
                    drop(listing);
                    return account.get_number(digits).await;
                }
            }
            *listing = Some(take_listing(account, self.max_pages).await?);
        }

        let entry = listing.as_mut().and_then(|l| {
            let found = l.numbers.remove(digits);
            if found.is_some() {
                l.served += 1;
            }
            found
        });
        drop(listing);
        match entry {
            Some(number) => Ok(number),
            None => account.get_number(digits).await,
        }
    }
}

/// Lists the account's numbers, or only the first page when the account has more than `max_pages`.
async fn take_listing(account: &Account, max_pages: usize) -> Result<Listing, Error> {
    let taken_at = Instant::now();
    let mut query = ListNumbers::default();
    let mut numbers = HashMap::new();
    let mut pages = 0;
    loop {
        let page = account.list_numbers(&query).await?;
        pages += 1;
        let more = page.has_more(query.offset) && !page.items.is_empty();
        let account_pages = page
            .meta
            .total_count
            .map_or(0, |total| total.div_ceil(u64::from(MAX_PAGE_SIZE)));
        let cut_short = more && account_pages > max_pages as u64;
        query.offset = query.offset.saturating_add(page.items.len() as u32);
        numbers.extend(
            page.items
                .into_iter()
                .map(|number| (number.number.clone(), number)),
        );
        if !more || cut_short {
            return Ok(Listing {
                taken_at,
                pages,
                served: 0,
                cut_short,
                numbers,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        plivo::{ClientConfig, Credentials, PlivoClient},
        sandbox::{Sandbox, SandboxConfig, SeedNumber},
    };

    async fn sandbox_with(count: usize) -> (crate::sandbox::RunningSandbox, Account, Vec<String>) {
        let numbers: Vec<String> = (0..count)
            .map(|i| format!("1415555{:04}", 1000 + i))
            .collect();
        let seeds = numbers
            .iter()
            .map(|number| {
                serde_json::from_value::<SeedNumber>(serde_json::json!({
                    "account": "MAREADSTEST000000001", "number": number, "type": "local"
                }))
                .unwrap()
            })
            .collect();
        let sandbox = Sandbox::start(SandboxConfig {
            accounts: vec![("MAREADSTEST000000001".into(), "reads-token".into())],
            numbers: seeds,
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let client = PlivoClient::new(ClientConfig {
            base_url: sandbox.base_url(),
            ..ClientConfig::default()
        })
        .unwrap();
        let account = client.account(Credentials::new("MAREADSTEST000000001", "reads-token"));
        (sandbox, account, numbers)
    }

    fn count(sandbox: &crate::sandbox::RunningSandbox, endpoint_suffix: &str) -> usize {
        sandbox
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.endpoint.ends_with(endpoint_suffix))
            .count()
    }

    #[tokio::test]
    async fn many_numbers_are_read_from_one_listing() {
        let (sandbox, account, numbers) = sandbox_with(45).await;
        let reads = NumberReads::default();
        for number in &numbers {
            let read = reads.read(&account, number, numbers.len()).await.unwrap();
            assert_eq!(&read.number, number);
        }
        assert_eq!(count(&sandbox, "/Number/"), 3, "45 numbers in pages of 20");
        assert_eq!(count(&sandbox, "/Number/{number}/"), 0, "no single GET");
        sandbox.shutdown().await;
    }

    #[tokio::test]
    async fn number_read_twice_is_fetched_again() {
        let (sandbox, account, numbers) = sandbox_with(45).await;
        let reads = NumberReads::default();
        reads
            .read(&account, &numbers[0], numbers.len())
            .await
            .unwrap();
        reads
            .read(&account, &numbers[0], numbers.len())
            .await
            .unwrap();
        assert_eq!(
            count(&sandbox, "/Number/{number}/"),
            1,
            "the second read is a GET"
        );
        sandbox.shutdown().await;
    }

    #[tokio::test]
    async fn large_account_is_read_one_by_one() {
        let (sandbox, account, numbers) = sandbox_with(45).await;
        // 6 requests per 15 s allow a listing of 2 pages; 45 numbers need 3.
        let reads = NumberReads::new(2, Duration::from_secs(5));
        reads.read(&account, &numbers[0], 61).await.unwrap();
        assert_eq!(count(&sandbox, "/Number/"), 0, "61 numbers need 4 pages");

        for number in &numbers[1..] {
            reads.read(&account, number, 40).await.unwrap();
        }
        assert_eq!(
            count(&sandbox, "/Number/"),
            1,
            "the listing stops after the page that reports 45 numbers"
        );
        assert_eq!(
            count(&sandbox, "/Number/{number}/"),
            1 + 25,
            "the 25 numbers past the first page are read one by one"
        );
        sandbox.shutdown().await;
    }

    #[tokio::test]
    async fn few_numbers_are_read_one_by_one() {
        let (sandbox, account, numbers) = sandbox_with(3).await;
        let reads = NumberReads::default();
        for number in &numbers {
            reads.read(&account, number, numbers.len()).await.unwrap();
        }
        assert_eq!(count(&sandbox, "/Number/"), 0);
        assert_eq!(count(&sandbox, "/Number/{number}/"), 3);
        sandbox.shutdown().await;
    }
}
