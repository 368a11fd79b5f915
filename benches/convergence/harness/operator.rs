//! The operator under measurement: `caller-reputation-operator run` as a child process, its
//! readiness, and its memory and CPU as Linux reports them in `/proc`.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use super::workload::SECRET;

/// How long the operator may take to report ready on `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the operator may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of one operator process.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub kubeconfig: &'a Path,
    pub namespace: &'a str,
    pub plivo_base_url: String,
    pub concurrency: usize,
    /// `--pending-recheck-min`, or the operator's default when `None`.
    pub pending_recheck_min: Option<&'a str>,
    pub log_level: &'a str,
    pub log_file: PathBuf,
}

/// A running operator process; it is killed when dropped.
pub struct Operator {
    child: Child,
    pid: u32,
    listen: SocketAddr,
    /// Time the process was spawned.
    pub started: Instant,
    pub log_file: PathBuf,
    http: reqwest::Client,
}

/// Peak memory and CPU time of a process so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// `VmHWM` of `/proc/PID/status`: the peak resident set size.
    pub peak_rss_bytes: u64,
    /// `utime + stime` of `/proc/PID/stat`.
    pub cpu_seconds: f64,
}

/// Errors starting, probing or stopping the operator process.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("failed to start {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operator exited unexpectedly ({status}); see {log}")]
    Exited { status: String, log: String },
    #[error("the operator was not ready on /readyz within {0:?}")]
    NotReady(Duration),
    #[error("failed to read {path}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no readable {field}")]
    ProcFormat { path: String, field: &'static str },
    #[error("failed to pick a free port")]
    Port(#[source] std::io::Error),
}

impl Operator {
    /// Starts `caller-reputation-operator run` with logs going to `launch.log_file`.
    pub fn spawn(launch: &Launch<'_>) -> Result<Self, OperatorError> {
        let listen = free_port().map_err(OperatorError::Port)?;
        let log =
            std::fs::File::create(&launch.log_file).map_err(|source| OperatorError::Proc {
                path: launch.log_file.display().to_string(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| OperatorError::Proc {
            path: launch.log_file.display().to_string(),
            source,
        })?;
        let mut command = Command::new(launch.binary);
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(launch.kubeconfig)
            .arg("--namespaces")
            .arg(launch.namespace)
            .arg("--plivo-base-url")
            .arg(&launch.plivo_base_url)
            .arg("--default-credentials-secret")
            .arg(format!("{}/{SECRET}", launch.namespace))
            .arg("--plivo-requests-per-window")
            .arg("300")
            .arg("--resync-period")
            .arg("1h")
            .arg("--concurrency")
            .arg(launch.concurrency.to_string())
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--log-format")
            .arg("json")
            .arg("--log-level")
            .arg(launch.log_level);
        if let Some(min) = launch.pending_recheck_min {
            command.arg("--pending-recheck-min").arg(min);
        }
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command.spawn().map_err(|source| OperatorError::Spawn {
            binary: launch.binary.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        Ok(Self {
            child,
            pid,
            listen,
            started,
            log_file: launch.log_file.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Waits until `/readyz` returns 200 and returns the time since the process started.
    pub async fn wait_ready(&mut self) -> Result<Duration, OperatorError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.is_ready().await? {
                return Ok(self.started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(OperatorError::NotReady(READY_TIMEOUT))
    }

    /// Probes `/readyz` once.
    ///
    /// # Errors
    /// When the process has exited.
    pub async fn is_ready(&mut self) -> Result<bool, OperatorError> {
        self.check_running()?;
        let ready = self
            .http
            .get(format!("http://{}/readyz", self.listen))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        Ok(ready)
    }

    /// Fails when the process has exited.
    pub fn check_running(&mut self) -> Result<(), OperatorError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(OperatorError::Exited {
                status: status.to_string(),
                log: self.log_file.display().to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Reads the peak RSS and the CPU time used so far.
    pub fn usage(&self) -> Result<Usage, OperatorError> {
        let status_path = format!("/proc/{}/status", self.pid);
        let status = read(&status_path)?;
        let peak_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(OperatorError::ProcFormat {
                path: status_path,
                field: "VmHWM",
            })?;

        let stat_path = format!("/proc/{}/stat", self.pid);
        let stat = read(&stat_path)?;
        // Fields after the command name, which is in parentheses and may contain spaces:
        // utime and stime are fields 14 and 15 of the whole line, so 12 and 13 after ")".
        let ticks: Option<u64> = stat.rsplit_once(')').and_then(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        });
        let ticks = ticks.ok_or(OperatorError::ProcFormat {
            path: stat_path,
            field: "utime and stime",
        })?;
        Ok(Usage {
            peak_rss_bytes: peak_kib * 1024,
            cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        })
    }

    /// Sends SIGTERM and waits for the exit; kills the process when it does not exit in time.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn read(path: &str) -> Result<String, OperatorError> {
    std::fs::read_to_string(path).map_err(|source| OperatorError::Proc {
        path: path.to_owned(),
        source,
    })
}

/// `CLK_TCK` from `getconf`, the unit of `utime` and `stime`; 100 when `getconf` is missing,
/// which is the value on every mainstream Linux architecture.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A loopback port that was free a moment ago.
fn free_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.local_addr()
}
