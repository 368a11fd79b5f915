//! Convergence benchmark of the operator at scale; see BENCHMARKS.md for what it measures.
//!
//! `cargo bench --bench convergence -- --sizes 100,1000` starts a local control plane (or uses
//! the current kubeconfig with `USE_EXISTING_CLUSTER=1`), then measures each size in turn and
//! prints one Markdown table.

#[path = "../../tests/support/mod.rs"]
mod support;

mod harness;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

/// Measures how fast `caller-reputation-operator run` brings N CallerReputationNumbers to
/// Ready against a local apiserver and the Plivo sandbox (300 requests per 5 s).
#[derive(Parser, Debug)]
struct Args {
    /// Comma-separated numbers of CallerReputationNumbers to measure, one size after another.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    sizes: Vec<usize>,

    /// BusinessProfiles the numbers are spread over (all in one Plivo account).
    #[arg(long, default_value_t = 10)]
    profiles: usize,

    /// Window after convergence in which nothing changes, such as 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    steady_window: Duration,

    /// `--concurrency` of the operator; also the concurrency of the floor's plain client.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,

    /// Create requests in flight while the benchmark creates the objects.
    #[arg(long, default_value_t = 16)]
    client_concurrency: usize,

    /// `--pending-recheck-min` passed to the operator [default: the operator's default].
    #[arg(long)]
    pending_recheck_min: Option<String>,

    /// `--log-level` passed to the operator.
    #[arg(long, default_value = "info")]
    operator_log_level: String,

    /// Time each size may take to converge before it is reported as not converged, such as 20m.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    converge_timeout: Duration,

    /// Time without any number changing readiness after which a size is reported as not
    /// converged, such as 3m; keep it above --pending-recheck-min.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    stall: Duration,

    /// Skip the cold start (a second set of objects created before the operator starts).
    #[arg(long)]
    no_cold_start: bool,

    /// Directory for the operator logs.
    #[arg(long, default_value = concat!(env!("CARGO_TARGET_TMPDIR"), "/convergence"))]
    log_dir: PathBuf,

    // `cargo bench` passes --bench to every benchmark binary; `cargo test --all-targets` does
    // not, and then the benchmark does not run.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.bench {
        eprintln!("the convergence benchmark runs only under cargo bench (it takes minutes)");
        return ExitCode::SUCCESS;
    }
    if args.sizes.contains(&0) || args.profiles == 0 {
        eprintln!("--sizes and --profiles must be positive");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    caller_reputation_operator::plivo::install_crypto_provider();
    let options = harness::Options {
        profiles: args.profiles,
        steady_window: args.steady_window,
        operator_concurrency: args.concurrency,
        client_concurrency: args.client_concurrency,
        pending_recheck_min: args.pending_recheck_min,
        log_level: args.operator_log_level,
        converge_timeout: args.converge_timeout,
        stall: args.stall,
        cold_start: !args.no_cold_start,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_caller-reputation-operator")),
        log_dir: args.log_dir,
    };
    let cluster = support::cluster().await;
    let client = cluster.client();
    support::install_crds(&client).await;

    let mut reports = Vec::new();
    let mut failed = false;
    for size in &args.sizes {
        match harness::run_size(&client, &cluster.kubeconfig, &options, *size).await {
            Ok(report) => {
                reports.push(report);
                // Print the table so far, so an interrupted run still leaves its figures.
                eprintln!("{}", harness::report::render(&reports));
            }
            Err(error) => {
                eprintln!("N={size} failed: {}", error_chain(&error));
                failed = true;
                break;
            }
        }
    }
    println!("{}", harness::report::render(&reports));
    println!(
        "Operator: --concurrency {}, --plivo-requests-per-window 300, --resync-period 1h, \
         --pending-recheck-min {}; benchmark client concurrency {}; operator logs in {}",
        options.operator_concurrency,
        options.pending_recheck_min.as_deref().unwrap_or("default"),
        options.client_concurrency,
        options.log_dir.display()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
