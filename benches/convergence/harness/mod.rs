//! The convergence benchmark. For one size it creates BusinessProfiles and
//! CallerReputationNumbers in a fresh namespace of a real apiserver and runs
//! `caller-reputation-operator run` against an in-process Plivo sandbox. It measures the time to
//! Ready, Plivo requests, apiserver writes, the steady state, memory, CPU and the cold start,
//! next to the floor computed in the same run.
//!
//! The benchmark target (`benches/convergence/main.rs`) and the smoke test
//! (`tests/bench_smoke.rs`) both include this module, so the smoke test runs exactly this code.

pub mod operator;
pub mod plivo;
pub mod report;
pub mod workload;
pub mod writes;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use caller_reputation_operator::{
    api::CallerReputationNumber,
    sandbox::{RunningSandbox, Sandbox, SandboxConfig},
};
use kube::{Api, Client, api::ListParams};

use self::{
    operator::{Launch, Operator, OperatorError, Usage},
    plivo::PlivoTally,
    workload::{AUTH_ID, AUTH_TOKEN, Kind, Workload},
    writes::{Change, Watches},
};

/// Plivo's limit per account: requests in any window of [`PLIVO_WINDOW`].
pub const PLIVO_LIMIT: u32 = 300;
/// The window of [`PLIVO_LIMIT`].
pub const PLIVO_WINDOW: Duration = Duration::from_secs(5);
/// Default resync period of the operator, the basis of the hourly read figures.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// How long the cold start may take to show its first reconcile.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
/// Interval between two looks at the watches and the sandbox while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Settings of one benchmark run.
#[derive(Clone, Debug)]
pub struct Options {
    /// BusinessProfiles the numbers are spread over.
    pub profiles: usize,
    /// Length of the steady-state window after convergence.
    pub steady_window: Duration,
    /// `--concurrency` of the operator, and the concurrency of the bare client of the floor.
    pub operator_concurrency: usize,
    /// Requests in flight while the benchmark creates objects.
    pub client_concurrency: usize,
    /// `--pending-recheck-min` of the operator; its default when `None`.
    pub pending_recheck_min: Option<String>,
    /// `--log-level` of the operator.
    pub log_level: String,
    /// How long convergence may take before the size is reported as not converged.
    pub converge_timeout: Duration,
    /// How long no number may change readiness before the size is reported as not converged.
    pub stall: Duration,
    /// Whether to measure the cold start (a second set of objects, created before the operator).
    pub cold_start: bool,
    /// The `caller-reputation-operator` binary.
    pub binary: PathBuf,
    /// Directory for the operator logs.
    pub log_dir: PathBuf,
}

/// Errors that end the measurement of one size.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the apiserver rejected a request")]
    Kube(#[from] kube::Error),
    #[error("the Plivo sandbox failed to start")]
    Sandbox(#[from] caller_reputation_operator::sandbox::Error),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("failed to create the log directory {0}")]
    LogDir(String, #[source] std::io::Error),
}

/// Apiserver writes to the objects of one kind, by what they changed.
#[derive(Clone, Copy, Debug, Default)]
pub struct KindWrites {
    pub finalizer: usize,
    pub status: usize,
    pub other: usize,
}

impl KindWrites {
    pub fn total(&self) -> usize {
        self.finalizer + self.status + self.other
    }
}

/// Apiserver writes in one phase, not counting the benchmark's own creates.
#[derive(Clone, Debug, Default)]
pub struct PhaseWrites {
    pub profiles: KindWrites,
    pub numbers: KindWrites,
    /// Events created or updated (an Event series is one Event updated again).
    pub events: usize,
    /// Status writes to numbers by the Ready reason they set.
    pub number_status_reasons: BTreeMap<String, usize>,
    /// Status writes to profiles by the Ready reason they set.
    pub profile_status_reasons: BTreeMap<String, usize>,
    /// Event writes by Event reason.
    pub event_reasons: BTreeMap<String, usize>,
}

impl PhaseWrites {
    /// Writes to BusinessProfiles and CallerReputationNumbers.
    pub fn objects(&self) -> usize {
        self.profiles.total() + self.numbers.total()
    }
}

/// The floor of one size: what the workload needs at least, measured or computed in the same run.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    /// Profile creates, number enables and one read per number to confirm.
    pub plivo_calls: usize,
    /// `plivo_calls` divided by the account's rate (300 per 5 s).
    pub plivo: Duration,
    /// Time a plain client took to create every object and write one status to each.
    pub apiserver: Duration,
}

impl Floor {
    pub fn time(&self) -> Duration {
        self.plivo.max(self.apiserver)
    }
}

/// The cold start: the operator started with the objects already there.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    /// First write to an object or first Plivo request after the process started.
    pub first_reconcile: Option<Duration>,
    /// `/readyz` answered 200 (controllers started, caches synced).
    pub ready: Option<Duration>,
    pub usage: Usage,
}

/// Everything measured for one size.
#[derive(Clone, Debug)]
pub struct SizeReport {
    pub numbers: usize,
    pub profiles: usize,
    pub floor: Floor,
    /// Time the benchmark took to create the objects (the operator was already running).
    pub created: Duration,
    /// From the first create to the last number `Ready=True` with reason `Active`.
    pub converged: Option<Duration>,
    /// Numbers Ready when convergence was detected or the wait ended.
    pub ready_numbers: usize,
    /// From the first create to the last change of a number's readiness.
    pub last_ready_change: Option<Duration>,
    pub plivo_converge: PlivoTally,
    pub writes_converge: PhaseWrites,
    pub steady_window: Duration,
    pub plivo_steady: PlivoTally,
    pub writes_steady: PhaseWrites,
    /// Numbers whose `status.nextCheckTime` falls within the next hour, per number.
    pub scheduled_checks_per_hour: f64,
    /// Enables Plivo accepted that changed nothing (sandbox counter `unchanged_enables`).
    pub unchanged_enables: u64,
    /// Watch restarts; when above 0 the write counts are a lower bound.
    pub relists: u32,
    /// Peak RSS and CPU of the operator at the end of the steady window.
    pub usage: Usage,
    pub cold_start: Option<ColdStart>,
}

impl SizeReport {
    /// Convergence time as a multiple of the floor.
    pub fn floor_ratio(&self) -> Option<f64> {
        let converged = self.converged?;
        Some(converged.as_secs_f64() / self.floor.time().as_secs_f64())
    }
}

/// Measures one size: the floor, then convergence and the steady state, then the cold start.
///
/// # Errors
/// When the apiserver rejects a request, the sandbox or the operator fails to start, or the
/// operator exits. A run that does not converge in time is a report, not an error.
pub async fn run_size(
    client: &Client,
    kubeconfig: &Path,
    options: &Options,
    numbers: usize,
) -> Result<SizeReport, BenchError> {
    std::fs::create_dir_all(&options.log_dir)
        .map_err(|error| BenchError::LogDir(options.log_dir.display().to_string(), error))?;
    let workload = Workload {
        profiles: options.profiles,
        numbers,
    };

    progress(
        numbers,
        "floor: creating the objects and one status each with a plain client",
    );
    let floor = measure_floor(client, options, &workload).await?;

    progress(numbers, "starting the sandbox and the operator");
    let namespace = crate::support::namespace(&format!("bench-{numbers}")).await;
    workload::create_secret(client, &namespace.name).await?;
    let sandbox = start_sandbox(&workload).await?;
    let mut operator = Operator::spawn(&launch(
        kubeconfig,
        options,
        &namespace.name,
        &sandbox,
        "converge",
        numbers,
    ))?;
    operator.wait_ready().await?;
    let watches = Watches::start(client, &namespace.name).await;

    progress(numbers, "creating the objects");
    let started = Instant::now();
    let created = workload::create_all(
        client,
        &namespace.name,
        workload.manifests(),
        options.client_concurrency,
    )
    .await?;
    progress(
        numbers,
        &format!("created in {created:.1?}; waiting for every number to be Ready"),
    );
    let convergence = wait_converged(&watches, &mut operator, numbers, started, options).await?;
    let ready_numbers = watches.read(|tally| tally.ready_numbers());
    let converge_end = Instant::now();
    let requests = sandbox.requests();
    let converge_seq = plivo::last_seq(&requests);
    let plivo_converge = PlivoTally::of(&requests, 0, converge_seq);
    let writes_converge = phase_writes(&watches, started, converge_end);

    progress(
        numbers,
        &format!("steady state: watching for {:?}", options.steady_window),
    );
    let steady_start = Instant::now();
    tokio::time::sleep(options.steady_window).await;
    operator.check_running()?;
    let steady_end = Instant::now();
    let requests = sandbox.requests();
    let plivo_steady = PlivoTally::of(&requests, converge_seq, plivo::last_seq(&requests));
    let writes_steady = phase_writes(&watches, steady_start, steady_end);
    let usage = operator.usage()?;
    let relists = watches.read(|tally| tally.relists);
    let scheduled_checks_per_hour = scheduled_checks(client, &namespace.name, numbers).await?;
    let unchanged_enables = sandbox
        .state()
        .counters
        .values()
        .map(|counters| counters.unchanged_enables)
        .sum();
    operator.stop().await;
    drop(watches);
    sandbox.shutdown().await;

    let cold_start = if options.cold_start {
        progress(
            numbers,
            "cold start: creating the objects with the operator stopped",
        );
        Some(measure_cold_start(client, kubeconfig, options, &workload).await?)
    } else {
        None
    };

    Ok(SizeReport {
        numbers,
        profiles: options.profiles,
        floor,
        created,
        converged: convergence.converged.map(|at| at.duration_since(started)),
        last_ready_change: convergence.last_change.map(|at| at.duration_since(started)),
        ready_numbers,
        plivo_converge,
        writes_converge,
        steady_window: steady_end.duration_since(steady_start),
        plivo_steady,
        writes_steady,
        scheduled_checks_per_hour,
        unchanged_enables,
        relists,
        usage,
        cold_start,
    })
}

fn progress(numbers: usize, message: &str) {
    eprintln!("[N={numbers}] {message}");
}

fn launch<'a>(
    kubeconfig: &'a Path,
    options: &'a Options,
    namespace: &'a str,
    sandbox: &RunningSandbox,
    phase: &str,
    numbers: usize,
) -> Launch<'a> {
    Launch {
        binary: &options.binary,
        kubeconfig,
        namespace,
        plivo_base_url: sandbox.base_url().to_string(),
        concurrency: options.operator_concurrency,
        pending_recheck_min: options.pending_recheck_min.as_deref(),
        log_level: &options.log_level,
        log_file: options
            .log_dir
            .join(format!("operator-{numbers}-{phase}.log")),
    }
}

async fn start_sandbox(workload: &Workload) -> Result<RunningSandbox, BenchError> {
    let config = SandboxConfig {
        accounts: vec![(AUTH_ID.into(), AUTH_TOKEN.into())],
        numbers: workload.seeds(),
        activation_delay: Duration::ZERO,
        rate_limit: Some(PLIVO_LIMIT),
        ..SandboxConfig::default()
    };
    Ok(Sandbox::start(config).await?)
}

async fn measure_floor(
    client: &Client,
    options: &Options,
    workload: &Workload,
) -> Result<Floor, BenchError> {
    let namespace = crate::support::namespace(&format!("bench-floor-{}", workload.numbers)).await;
    let apiserver = workload::create_with_status(
        client,
        &namespace.name,
        workload.manifests(),
        options.operator_concurrency,
    )
    .await?;
    let plivo_calls = workload.profiles + 2 * workload.numbers;
    let per_second = f64::from(PLIVO_LIMIT) / PLIVO_WINDOW.as_secs_f64();
    Ok(Floor {
        plivo_calls,
        plivo: Duration::from_secs_f64(plivo_calls as f64 / per_second),
        apiserver,
    })
}

/// How waiting for convergence ended.
struct Convergence {
    /// When the last number became Ready; `None` when not every number did.
    converged: Option<Instant>,
    /// When the number of Ready numbers last changed.
    last_change: Option<Instant>,
}

/// Waits until every number is Ready, until `timeout` has passed since `started`, or until no
/// number has changed readiness for `stall`.
async fn wait_converged(
    watches: &Watches,
    operator: &mut Operator,
    numbers: usize,
    started: Instant,
    options: &Options,
) -> Result<Convergence, BenchError> {
    let mut last_progress = Instant::now();
    loop {
        let (ready, last_change) =
            watches.read(|tally| (tally.ready_numbers(), tally.last_ready_change));
        if ready >= numbers {
            return Ok(Convergence {
                converged: last_change,
                last_change,
            });
        }
        let quiet_since = last_change.unwrap_or(started);
        if started.elapsed() > options.converge_timeout || quiet_since.elapsed() > options.stall {
            progress(
                numbers,
                &format!(
                    "not converged after {:.0?}: {ready} Ready, none changed for {:.0?}",
                    started.elapsed(),
                    quiet_since.elapsed()
                ),
            );
            return Ok(Convergence {
                converged: None,
                last_change,
            });
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            progress(
                numbers,
                &format!("{ready} of {numbers} Ready after {:.0?}", started.elapsed()),
            );
            last_progress = Instant::now();
        }
        operator.check_running()?;
        tokio::time::sleep(POLL).await;
    }
}

fn phase_writes(watches: &Watches, from: Instant, to: Instant) -> PhaseWrites {
    watches.read(|tally| {
        let kind = |kind| KindWrites {
            finalizer: tally.count(from, to, Some(kind), Some(Change::Finalizer)),
            status: tally.count(from, to, Some(kind), Some(Change::Status)),
            other: tally.count(from, to, Some(kind), Some(Change::Other)),
        };
        PhaseWrites {
            profiles: kind(Kind::BusinessProfile),
            numbers: kind(Kind::CallerReputationNumber),
            events: tally.count(from, to, None, None),
            number_status_reasons: tally.reasons(
                from,
                to,
                Some(Kind::CallerReputationNumber),
                Some(Change::Status),
            ),
            profile_status_reasons: tally.reasons(
                from,
                to,
                Some(Kind::BusinessProfile),
                Some(Change::Status),
            ),
            event_reasons: tally.reasons(from, to, None, None),
        }
    })
}

/// Checks per number in the next hour that the statuses schedule (`status.nextCheckTime`).
async fn scheduled_checks(
    client: &Client,
    namespace: &str,
    numbers: usize,
) -> Result<f64, BenchError> {
    let api: Api<CallerReputationNumber> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await?;
    let horizon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(RESYNC.as_secs() as i64);
    let due = list
        .items
        .iter()
        .filter_map(|number| number.status.as_ref()?.next_check_time.as_ref())
        .filter(|next| next.0 <= horizon)
        .count();
    Ok(due as f64 / numbers.max(1) as f64)
}

async fn measure_cold_start(
    client: &Client,
    kubeconfig: &Path,
    options: &Options,
    workload: &Workload,
) -> Result<ColdStart, BenchError> {
    let namespace = crate::support::namespace(&format!("bench-cold-{}", workload.numbers)).await;
    workload::create_secret(client, &namespace.name).await?;
    let sandbox = start_sandbox(workload).await?;
    workload::create_all(
        client,
        &namespace.name,
        workload.manifests(),
        options.client_concurrency,
    )
    .await?;
    let watches = Watches::start(client, &namespace.name).await;

    let mut operator = Operator::spawn(&launch(
        kubeconfig,
        options,
        &namespace.name,
        &sandbox,
        "cold",
        workload.numbers,
    ))?;
    let started = operator.started;
    let mut first_reconcile = None;
    let mut ready = None;
    while (first_reconcile.is_none() || ready.is_none()) && started.elapsed() < STARTUP_TIMEOUT {
        if first_reconcile.is_none() {
            let first_write = watches.read(|tally| tally.first_write_since(started));
            let plivo = !sandbox.requests().is_empty();
            first_reconcile = match first_write {
                Some(at) => Some(at.duration_since(started)),
                None if plivo => Some(started.elapsed()),
                None => None,
            };
        }
        if ready.is_none() && operator.is_ready().await? {
            ready = Some(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    let usage = operator.usage()?;
    operator.stop().await;
    sandbox.shutdown().await;
    Ok(ColdStart {
        first_reconcile,
        ready,
        usage,
    })
}
