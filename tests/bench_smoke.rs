//! A small run of the convergence benchmark (`benches/convergence`), so that the benchmark
//! keeps working: 50 numbers over 10 profiles, the operator as a process (the debug build),
//! a short steady window. It checks the outcome and that the report has every row, never timing.

mod support;

#[path = "../benches/convergence/harness/mod.rs"]
mod harness;

use std::{path::PathBuf, time::Duration};

const NUMBERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_of_fifty_numbers_converges() {
    caller_reputation_operator::plivo::install_crypto_provider();
    let cluster = support::cluster().await;
    let client = cluster.client();
    support::install_crds(&client).await;
    let options = harness::Options {
        profiles: 10,
        steady_window: Duration::from_secs(3),
        operator_concurrency: 16,
        client_concurrency: 8,
        pending_recheck_min: None,
        log_level: "info".into(),
        converge_timeout: Duration::from_secs(30),
        stall: Duration::from_secs(30),
        cold_start: true,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_caller-reputation-operator")),
        log_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke"),
    };

    let report = harness::run_size(&client, &cluster.kubeconfig, &options, NUMBERS)
        .await
        .expect("the benchmark runs");
    let text = harness::report::render(std::slice::from_ref(&report));
    println!("{text}");

    assert!(
        report.converged.is_some(),
        "only {} of {NUMBERS} numbers became Ready:\n{text}",
        report.ready_numbers
    );
    assert_eq!(report.plivo_converge.too_many_requests, 0, "429s:\n{text}");
    assert_eq!(report.plivo_steady.too_many_requests, 0, "429s:\n{text}");
    assert!(
        report
            .cold_start
            .is_some_and(|cold| cold.first_reconcile.is_some()),
        "the cold start saw no reconcile:\n{text}"
    );
    for row in harness::report::rows() {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("| {} |", row.label)));
        assert!(line.is_some(), "row {:?} is missing:\n{text}", row.label);
    }
    assert_eq!(
        harness::report::verdicts(std::slice::from_ref(&report)).len(),
        6,
        "one verdict per target:\n{text}"
    );
}
