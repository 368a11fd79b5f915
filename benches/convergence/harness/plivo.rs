//! Plivo requests of one phase, read from the sandbox's request log.

use std::collections::BTreeMap;

use caller_reputation_operator::sandbox::RequestRecord;

/// Plivo endpoints the report lists one by one, as `METHOD path` after `/v1/Account/{auth_id}`;
/// requests to any other endpoint are counted under [`OTHER`].
pub const ENDPOINTS: [&str; 6] = [
    "GET /Number/{number}/",
    "POST /Number/{number}/",
    "GET /Number/",
    "POST /Profile/",
    "GET /Profile/{profile_uuid}/",
    "GET /Profile/",
];

/// Label of the requests to endpoints outside [`ENDPOINTS`].
pub const OTHER: &str = "other";

/// Requests of one phase.
#[derive(Clone, Debug, Default)]
pub struct PlivoTally {
    pub total: usize,
    /// Requests other than GET: profile creates and updates, number updates, deletes.
    pub writes: usize,
    pub reads: usize,
    /// Requests answered 429 Too Many Requests.
    pub too_many_requests: usize,
    /// Requests per entry of [`ENDPOINTS`] and [`OTHER`].
    pub by_endpoint: BTreeMap<&'static str, usize>,
}

impl PlivoTally {
    /// Counts the `requests` with a sequence number in `(after, up_to]`.
    pub fn of(requests: &[RequestRecord], after: u64, up_to: u64) -> Self {
        let mut tally = Self::default();
        for request in requests
            .iter()
            .filter(|request| request.seq > after && request.seq <= up_to)
        {
            tally.total += 1;
            if request.method == "GET" {
                tally.reads += 1;
            } else {
                tally.writes += 1;
            }
            if request.status == 429 {
                tally.too_many_requests += 1;
            }
            *tally
                .by_endpoint
                .entry(endpoint_label(&request.endpoint))
                .or_default() += 1;
        }
        tally
    }

    pub fn endpoint(&self, label: &str) -> usize {
        self.by_endpoint.get(label).copied().unwrap_or(0)
    }
}

/// Maps the sandbox's endpoint template (`POST /v1/Account/{auth_id}/Number/{number}/`) to its
/// entry in [`ENDPOINTS`].
fn endpoint_label(template: &str) -> &'static str {
    let short = template.replacen("/v1/Account/{auth_id}", "", 1);
    ENDPOINTS
        .into_iter()
        .find(|label| *label == short)
        .unwrap_or(OTHER)
}

/// Sequence number of the newest request in `requests`, 0 when there is none.
pub fn last_seq(requests: &[RequestRecord]) -> u64 {
    requests.last().map_or(0, |request| request.seq)
}
