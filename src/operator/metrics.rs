//! Prometheus metrics of the operator, served at `/metrics`.
//!
//! [`Metrics`] owns the registry and every metric family. The controllers
//! report through [`ControllerMetrics`], the Plivo client through its request
//! observer, and the leader election sets the leader gauge. Labels carry only
//! closed sets of values (kind, result, endpoint, HTTP status, reputation
//! status): no account id, phone number or token ever becomes a label.

use std::{
    collections::BTreeSet,
    sync::{Mutex, atomic::AtomicI64},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::{controller::ControllerMetrics, plivo::RequestObserver};

/// Content type of [`Metrics::render`]: the OpenMetrics text format, which
/// Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlivoRequestLabels {
    endpoint: &'static str,
    /// The HTTP status code, or `error` when no response arrived.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// Reconciles take milliseconds to tens of seconds: 5 ms doubling to ~41 s.
fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Plivo responds in tens of milliseconds, and retries stretch a request
/// towards the timeout: 10 ms doubling to ~41 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// The process's metric registry and families.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    plivo_requests: Family<PlivoRequestLabels, Counter>,
    plivo_request_duration: Family<EndpointLabels, Histogram>,
    rate_limiter_wait: Histogram,
    callbacks: Family<ResultLabels, Counter>,
    numbers: Family<StatusLabels, Gauge<i64, AtomicI64>>,
    /// Statuses set by the last [`ControllerMetrics::set_numbers_by_status`]
    /// call, so a status that vanishes from the counts drops to zero.
    reported_statuses: Mutex<BTreeSet<String>>,
    leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the registry with every family registered and empty.
    pub fn new() -> Self {
        let mut registry = Registry::default();

        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "caller_reputation_reconciles",
            "Finished reconciles by resource kind and result",
            reconciles.clone(),
        );
        let reconcile_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(reconcile_buckets as fn() -> _);
        registry.register_with_unit(
            "caller_reputation_reconcile_duration",
            "Duration of one reconcile by resource kind",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let plivo_requests = Family::<PlivoRequestLabels, Counter>::default();
        registry.register(
            "caller_reputation_plivo_requests",
            "Plivo API requests by endpoint and HTTP status (error when no response arrived)",
            plivo_requests.clone(),
        );
        let plivo_request_duration =
            Family::<EndpointLabels, Histogram>::new_with_constructor(request_buckets as fn() -> _);
        registry.register_with_unit(
            "caller_reputation_plivo_request_duration",
            "Duration of one Plivo API request by endpoint",
            Unit::Seconds,
            plivo_request_duration.clone(),
        );
        let rate_limiter_wait = request_buckets();
        registry.register_with_unit(
            "caller_reputation_rate_limiter_wait",
            "Time a Plivo request waited for the per-account rate limiter",
            Unit::Seconds,
            rate_limiter_wait.clone(),
        );
        let callbacks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "caller_reputation_callbacks",
            "Status callbacks received by result (accepted, or why they were rejected)",
            callbacks.clone(),
        );
        let numbers = Family::<StatusLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "caller_reputation_numbers",
            "CallerReputationNumbers by caller reputation status",
            numbers.clone(),
        );
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "caller_reputation_leader",
            "1 while this replica runs the controllers, else 0",
            leader.clone(),
        );

        Self {
            registry,
            reconciles,
            reconcile_duration,
            plivo_requests,
            plivo_request_duration,
            rate_limiter_wait,
            callbacks,
            numbers,
            reported_statuses: Mutex::new(BTreeSet::new()),
            leader,
        }
    }

    /// Renders every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug
        // in a label type, so it is logged rather than served half-written.
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "Failed to encode metrics");
            text.clear();
        }
        text
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records one finished Plivo request; `status` is `None` when the
    /// request failed without an HTTP response (timeout, connection error).
    pub fn plivo_request_finished(
        &self,
        endpoint: &'static str,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        let status = status.map_or_else(|| "error".to_string(), |code| code.to_string());
        self.plivo_requests
            .get_or_create(&PlivoRequestLabels { endpoint, status })
            .inc();
        self.plivo_request_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one status callback by `result`: `accepted` or the reason it
    /// was rejected.
    pub fn callback_received(&self, result: &'static str) {
        self.callbacks.get_or_create(&ResultLabels { result }).inc();
    }

    /// Records how long one request waited for the rate limiter. The account
    /// is not a label, to keep cardinality fixed however many accounts exist.
    pub fn rate_limit_waited(&self, waited: Duration) {
        self.rate_limiter_wait.observe(waited.as_secs_f64());
    }
}

impl RequestObserver for Metrics {
    fn request_finished(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
        self.plivo_request_finished(endpoint, status, elapsed);
    }

    fn rate_limit_waited(&self, _account: &str, waited: Duration) {
        Metrics::rate_limit_waited(self, waited);
    }
}

impl ControllerMetrics for Metrics {
    fn reconcile_finished(&self, kind: &'static str, result: &'static str, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    fn set_numbers_by_status(&self, counts: &[(String, i64)]) {
        let mut reported = self
            .reported_statuses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current: BTreeSet<String> = counts.iter().map(|(status, _)| status.clone()).collect();

        for gone in reported.difference(&current) {
            self.numbers
                .get_or_create(&StatusLabels {
                    status: gone.clone(),
                })
                .set(0);
        }
        for (status, count) in counts {
            self.numbers
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*count);
        }
        reported.extend(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the OpenMetrics text exposition line by line: every line is a
    /// `# HELP`/`# TYPE`/`# UNIT` comment, the final `# EOF`, or a sample
    /// `name{label="value",...} number`. Returns the samples.
    fn parse_exposition(text: &str) -> Vec<(String, String, f64)> {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.last(),
            Some(&"# EOF"),
            "exposition must end with # EOF"
        );

        let mut samples = Vec::new();
        for line in &lines[..lines.len() - 1] {
            if let Some(comment) = line.strip_prefix("# ") {
                let keyword = comment.split(' ').next().unwrap_or_default();
                assert!(
                    ["HELP", "TYPE", "UNIT"].contains(&keyword),
                    "unexpected comment: {line}"
                );
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value.parse().expect("sample value is a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest.strip_suffix('}').expect("label set closes");
                    for pair in labels.split(',') {
                        let (key, quoted) = pair.split_once('=').expect("label is key=value");
                        assert!(is_metric_name(key), "label name {key:?} in {line}");
                        assert!(
                            quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                            "label value is quoted in {line}"
                        );
                    }
                    (name, labels)
                }
                None => (series, ""),
            };
            assert!(is_metric_name(name), "metric name {name:?} in {line}");
            samples.push((name.to_string(), labels.to_string(), value));
        }
        samples
    }

    const NUMBER_GET: &str = "GET /Number/{number}/";

    fn is_metric_name(name: &str) -> bool {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn sample(samples: &[(String, String, f64)], name: &str, labels: &str) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, value)| *value)
    }

    #[test]
    fn metrics_render_as_openmetrics_text() {
        let metrics = Metrics::new();
        metrics.reconcile_finished(
            "CallerReputationNumber",
            "success",
            Duration::from_millis(20),
        );
        metrics.reconcile_finished("CallerReputationNumber", "error", Duration::from_millis(30));
        let observer: &dyn RequestObserver = &metrics;
        observer.request_finished(NUMBER_GET, Some(200), Duration::from_millis(40));
        observer.request_finished(NUMBER_GET, None, Duration::from_secs(10));
        observer.rate_limit_waited("MAXXXXXXXXXXXXXXXXXX", Duration::from_millis(250));
        metrics.set_numbers_by_status(&[("ACTIVE".to_string(), 3), ("PENDING".to_string(), 1)]);
        metrics.set_leader(true);

        let samples = parse_exposition(&metrics.render());

        let reconciles = "caller_reputation_reconciles_total";
        assert_eq!(
            sample(
                &samples,
                reconciles,
                r#"kind="CallerReputationNumber",result="success""#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                reconciles,
                r#"kind="CallerReputationNumber",result="error""#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                "caller_reputation_reconcile_duration_seconds_count",
                r#"kind="CallerReputationNumber""#
            ),
            Some(2.0)
        );
        let requests = "caller_reputation_plivo_requests_total";
        assert_eq!(
            sample(
                &samples,
                requests,
                r#"endpoint="GET /Number/{number}/",status="200""#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                requests,
                r#"endpoint="GET /Number/{number}/",status="error""#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                "caller_reputation_plivo_request_duration_seconds_count",
                r#"endpoint="GET /Number/{number}/""#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &samples,
                "caller_reputation_rate_limiter_wait_seconds_sum",
                ""
            ),
            Some(0.25)
        );
        assert_eq!(
            sample(&samples, "caller_reputation_numbers", r#"status="ACTIVE""#),
            Some(3.0)
        );
        assert_eq!(sample(&samples, "caller_reputation_leader", ""), Some(1.0));
        assert!(
            !samples
                .iter()
                .any(|(_, labels, _)| labels.contains("MAXXXX")),
            "the account id is not a label"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::new();
        metrics.reconcile_finished("BusinessProfile", "success", Duration::from_millis(1));
        metrics.reconcile_finished("BusinessProfile", "success", Duration::from_secs(100));

        let samples = parse_exposition(&metrics.render());
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(name, _, _)| name == "caller_reputation_reconcile_duration_seconds_bucket")
            .map(|(_, _, value)| *value)
            .collect();

        assert_eq!(
            buckets.first(),
            Some(&1.0),
            "1 ms lands in the first bucket"
        );
        assert_eq!(buckets.last(), Some(&2.0), "+Inf holds both observations");
        assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn vanished_number_status_drops_to_zero() {
        let metrics = Metrics::new();
        metrics.set_numbers_by_status(&[("PENDING".to_string(), 2)]);
        metrics.set_numbers_by_status(&[("ACTIVE".to_string(), 2)]);

        let samples = parse_exposition(&metrics.render());

        assert_eq!(
            sample(&samples, "caller_reputation_numbers", r#"status="PENDING""#),
            Some(0.0)
        );
        assert_eq!(
            sample(&samples, "caller_reputation_numbers", r#"status="ACTIVE""#),
            Some(2.0)
        );
    }

    #[test]
    fn leader_gauge_follows_state() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        metrics.set_leader(false);

        let samples = parse_exposition(&metrics.render());

        assert_eq!(sample(&samples, "caller_reputation_leader", ""), Some(0.0));
    }
}
