//! The log of Plivo API requests the sandbox served, read through
//! `GET /_sandbox/requests`.

use std::collections::VecDeque;

use serde::Serialize;

/// Entries kept; older ones are dropped first.
const CAPACITY: usize = 100_000;

/// One served request.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RequestRecord {
    /// Position in the log, starting at 1; use it as `since` to read only newer entries.
    pub seq: u64,
    /// Auth ID from the path, empty when the path names none.
    pub account: String,
    pub method: String,
    /// Request path without query.
    pub path: String,
    /// Query string, empty when absent.
    pub query: String,
    /// Status sent; 0 when the connection was dropped instead.
    pub status: u16,
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// `User-Agent` header, empty when absent; it identifies the client, e.g. the operator replica.
    pub user_agent: String,
    /// `METHOD template`, e.g. `POST /v1/Account/{auth_id}/Number/{number}/`;
    /// the raw path for unknown routes.
    pub endpoint: String,
    /// Fault applied, if any: `error`, `drop`, `commit_then_fail` or `rate_limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
}

/// Bounded, append-only request log.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<RequestRecord>,
    next_seq: u64,
}

impl RequestLog {
    /// Appends `record`, assigning its `seq`.
    pub fn push(&mut self, mut record: RequestRecord) {
        self.next_seq += 1;
        record.seq = self.next_seq;
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(record);
    }

    /// Returns entries with `seq > since`, optionally of one account.
    pub fn since(&self, since: u64, account: Option<&str>) -> Vec<RequestRecord> {
        self.entries
            .iter()
            .filter(|record| record.seq > since)
            .filter(|record| account.is_none_or(|account| record.account == account))
            .cloned()
            .collect()
    }

    /// Returns the `seq` of the newest entry, 0 when none was logged.
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Drops every entry; sequence numbers keep increasing.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
