//! The operator as a child process: started with `caller-reputation-operator run`, its stdout
//! and stderr collected line by line, its `/metrics` scraped, and signals sent to it by process
//! id (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).
//!
//! Every process checks at [`OperatorProcess::finish`] that no Auth Token of the suite appears
//! in anything it printed.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use crate::support;

const BINARY: &str = env!("CARGO_BIN_EXE_caller-reputation-operator");

/// Log message that carries the bound HTTP address.
const SERVING: &str = "Serving /healthz, /readyz, /metrics and callbacks";

/// A running (or killed) operator process.
pub struct OperatorProcess {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    address: Option<SocketAddr>,
}

/// Flags every chaos operator gets: one namespace, the sandbox, JSON logs and short timers.
pub fn base_flags(namespace: &str, plivo: &url::Url, secret: &str) -> Vec<String> {
    [
        "--namespaces",
        namespace,
        "--plivo-base-url",
        plivo.as_str(),
        "--default-credentials-secret",
        &format!("{namespace}/{secret}"),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--resync-period",
        "1h",
        "--pending-recheck-min",
        "500ms",
        "--pending-recheck-max",
        "2s",
        "--shutdown-timeout",
        "3s",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

impl OperatorProcess {
    /// Starts `run` against `kubeconfig` with `flags`, with no `CRO_*` variable inherited.
    pub fn start(name: &str, kubeconfig: &Path, flags: &[String]) -> Self {
        let mut command = Command::new(BINARY);
        command.arg("run").arg("--kubeconfig").arg(kubeconfig);
        command.args(flags);
        for (variable, _) in std::env::vars() {
            if variable.starts_with("CRO_") || variable == "POD_NAME" {
                command.env_remove(variable);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the operator binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("piped stdout"), lines.clone());
        collect(child.stderr.take().expect("piped stderr"), lines.clone());
        Self {
            name: name.to_string(),
            child,
            lines,
            address: None,
        }
    }

    /// Waits for the HTTP address from the start-up log line.
    pub async fn address(&mut self) -> SocketAddr {
        if let Some(address) = self.address {
            return address;
        }
        let lines = self.lines.clone();
        let address = support::eventually(
            &format!("{} to log its HTTP address", self.name),
            Duration::from_secs(30),
            || {
                let lines = lines.clone();
                async move {
                    lines.lock().unwrap().iter().find_map(|line| {
                        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
                        (entry["message"] == SERVING)
                            .then(|| entry["address"].as_str()?.parse().ok())
                            .flatten()
                    })
                }
            },
        )
        .await;
        self.address = Some(address);
        address
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (such as `KILL`, `STOP`, `CONT`, `TERM`) to this process only.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The output so far, one entry per line of stdout or stderr.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Stops the process (if still running) and asserts that none of `secrets` is in its output.
    /// Returns the number of output lines checked.
    pub fn finish(mut self, secrets: &[&str]) -> usize {
        if !self.exited() {
            self.signal("CONT");
            self.kill9();
        }
        // The reader threads finish once the pipes close; wait for them so no line is missed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.lines) > 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let lines = self.output();
        for secret in secrets {
            let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
            assert!(
                leaked.is_empty(),
                "{} printed an Auth Token in {} line(s), first: {}",
                self.name,
                leaked.len(),
                leaked[0]
            );
        }
        lines.len()
    }

    /// The `/metrics` text, or `None` while the process does not answer.
    pub fn metrics(&self) -> Option<String> {
        let (status, body) = http_get(self.address?, "/metrics").ok()?;
        (status == 200).then_some(body)
    }

    /// HTTP status of `/readyz`.
    pub fn readyz(&self) -> Option<u16> {
        http_get(self.address?, "/readyz").ok().map(|(s, _)| s)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if thread::panicking() {
            // The failing test's evidence: what this operator said, in full in a file and its
            // last non-debug lines on stderr.
            let lines = self.output();
            let path = std::env::temp_dir().join(format!("chaos-{}-{}.log", self.name, self.pid()));
            let _ = std::fs::write(&path, lines.join("\n"));
            let notable: Vec<&String> = lines
                .iter()
                .filter(|l| !l.contains(r#""level":"DEBUG""#) && !l.contains(r#""level":"TRACE""#))
                .collect();
            let tail = &notable[notable.len().saturating_sub(40)..];
            let _ = writeln!(
                std::io::stderr(),
                "--- {} ({} lines in {}), last non-debug lines ---",
                self.name,
                lines.len(),
                path.display()
            );
            for line in tail {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
        drop(lines);
    });
}

/// Sum of the samples of metric `name` in a Prometheus text exposition.
pub fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Sends a plain HTTP/1.1 request and returns the status code and body.
pub fn http_request(
    address: SocketAddr,
    request_head: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request_head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
        &[],
    )
}
