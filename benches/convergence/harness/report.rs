//! The printed report: one Markdown table with a column per size and the targets beside the
//! figures, then a verdict on each target.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use super::{
    SizeReport,
    plivo::{ENDPOINTS, OTHER},
};

/// Number of CallerReputationNumbers at which the convergence target applies.
const CONVERGENCE_TARGET_SIZE: usize = 1_000;
/// Convergence time the operator may take, as a multiple of the floor.
const CONVERGENCE_TARGET_RATIO: f64 = 1.3;
/// Plivo requests to number endpoints per number on the happy path until ACTIVE.
const REQUESTS_PER_NUMBER_TARGET: f64 = 3.0;
/// Number of CallerReputationNumbers at which the memory and cold-start targets apply.
const LARGE_SIZE: usize = 10_000;
/// Peak RSS of the operator with [`LARGE_SIZE`] numbers.
const RSS_TARGET_MIB: f64 = 100.0;
/// Time from start to the first reconcile with [`LARGE_SIZE`] existing objects.
const COLD_START_TARGET: Duration = Duration::from_secs(10);

/// One line of the table.
pub struct Row {
    pub label: String,
    pub target: &'static str,
    value: Box<dyn Fn(&SizeReport) -> String>,
}

fn row(label: &str, target: &'static str, value: impl Fn(&SizeReport) -> String + 'static) -> Row {
    Row {
        label: label.to_owned(),
        target,
        value: Box::new(value),
    }
}

/// Lists every row of the table, in order.
pub fn rows() -> Vec<Row> {
    let mut rows = vec![
        row("Numbers / BusinessProfiles", "", |r| {
            format!("{} / {}", r.numbers, r.profiles)
        }),
        row("Benchmark creates all objects in (s)", "", |r| {
            seconds(r.created)
        }),
        row(
            "Time until every number is Ready=True, reason Active (s)",
            "",
            |r| match r.converged {
                Some(time) => seconds(time),
                None => format!(
                    "not converged: {} Ready, the last at {}",
                    r.ready_numbers,
                    r.last_ready_change.map_or("-".into(), seconds)
                ),
            },
        ),
        row(
            "Floor: Plivo calls (profile creates + N enables + N reads)",
            "",
            |r| r.floor.plivo_calls.to_string(),
        ),
        row("Floor: Plivo calls at 300 per 5 s (s)", "", |r| {
            seconds(r.floor.plivo)
        }),
        row(
            "Floor: bare client creates N+10 objects + 1 status write each (s)",
            "",
            |r| seconds(r.floor.apiserver),
        ),
        row("Floor = max of the two (s)", "", |r| {
            seconds(r.floor.time())
        }),
        row("Convergence / floor", "≤ 1.3× at N=1,000", |r| {
            r.floor_ratio()
                .map_or("n/a".into(), |ratio| format!("{ratio:.2}×"))
        }),
        row("Plivo 429 responses until converged", "0", |r| {
            r.plivo_converge.too_many_requests.to_string()
        }),
        row(
            "Plivo requests to number endpoints per number until Active",
            "≤ 3",
            |r| per(number_requests(r), r.numbers),
        ),
        row(
            "Plivo requests, all endpoints, until Active: total (per number)",
            "",
            |r| count_per(r.plivo_converge.total, r.numbers),
        ),
    ];
    for endpoint in ENDPOINTS.into_iter().chain([OTHER]) {
        rows.push(row(
            &format!("  {endpoint}: total (per number)"),
            "",
            move |r| count_per(r.plivo_converge.endpoint(endpoint), r.numbers),
        ));
    }
    rows.extend([
        row("Enables Plivo accepted that changed nothing", "0", |r| {
            r.unchanged_enables.to_string()
        }),
        row(
            "Apiserver writes per number after its create: all (finalizer/status/other)",
            "",
            |r| {
                let writes = r.writes_converge.numbers;
                format!(
                    "{} ({}/{}/{})",
                    per(writes.total(), r.numbers),
                    per(writes.finalizer, r.numbers),
                    per(writes.status, r.numbers),
                    per(writes.other, r.numbers)
                )
            },
        ),
        row(
            "Apiserver writes per BusinessProfile after its create: all (finalizer/status/other)",
            "",
            |r| {
                let writes = r.writes_converge.profiles;
                format!(
                    "{} ({}/{}/{})",
                    per(writes.total(), r.profiles),
                    per(writes.finalizer, r.profiles),
                    per(writes.status, r.profiles),
                    per(writes.other, r.profiles)
                )
            },
        ),
        row(
            "  Number status writes by the Ready reason they set",
            "",
            |r| reasons(&r.writes_converge.number_status_reasons),
        ),
        row(
            "  BusinessProfile status writes by the Ready reason they set",
            "",
            |r| reasons(&r.writes_converge.profile_status_reasons),
        ),
        row(
            "Event writes until converged: total (per number)",
            "",
            |r| count_per(r.writes_converge.events, r.numbers),
        ),
        row("  Event writes by reason", "", |r| {
            reasons(&r.writes_converge.event_reasons)
        }),
        row("Steady-state window (s)", "", |r| seconds(r.steady_window)),
        row("Steady state: Plivo writes", "0", |r| {
            r.plivo_steady.writes.to_string()
        }),
        row(
            "Steady state: apiserver writes to both kinds + Event writes",
            "0",
            |r| format!("{} + {}", r.writes_steady.objects(), r.writes_steady.events),
        ),
        row(
            "  Steady-state writes by reason (status writes, then Events)",
            "",
            |r| {
                let writes = &r.writes_steady;
                let mut all = writes.number_status_reasons.clone();
                for (reason, count) in writes
                    .profile_status_reasons
                    .iter()
                    .chain(&writes.event_reasons)
                {
                    *all.entry(reason.clone()).or_default() += count;
                }
                reasons(&all)
            },
        ),
        row(
            "Steady state: Plivo reads per number per hour, extrapolated from the window",
            "",
            |r| {
                let hours = r.steady_window.as_secs_f64() / 3600.0;
                format!(
                    "{:.2}",
                    r.plivo_steady.reads as f64 / r.numbers.max(1) as f64 / hours
                )
            },
        ),
        row(
            "Plivo checks per number in the next hour, from status.nextCheckTime",
            "",
            |r| format!("{:.2}", r.scheduled_checks_per_hour),
        ),
        row(
            "Operator peak RSS, VmHWM (MiB)",
            "≤ 100 at N=10,000",
            |r| mib(r.usage.peak_rss_bytes),
        ),
        row(
            "Operator CPU until the end of the steady window (s)",
            "",
            |r| format!("{:.1}", r.usage.cpu_seconds),
        ),
        row(
            "Cold start: first reconcile with N existing objects (s)",
            "≤ 10 at N=10,000",
            |r| {
                r.cold_start.map_or("not run".into(), |cold| {
                    cold.first_reconcile.map_or("none seen".into(), seconds)
                })
            },
        ),
        row("Cold start: /readyz returns 200 (s)", "", |r| {
            r.cold_start.map_or("not run".into(), |cold| {
                cold.ready.map_or("never".into(), seconds)
            })
        }),
        row("Cold start: operator peak RSS (MiB)", "", |r| {
            r.cold_start
                .map_or("not run".into(), |cold| mib(cold.usage.peak_rss_bytes))
        }),
        row(
            "Watch relists (when above 0, write counts are a lower bound)",
            "0",
            |r| r.relists.to_string(),
        ),
    ]);
    rows
}

/// Renders the table and the verdict on each target.
pub fn render(reports: &[SizeReport]) -> String {
    let mut text = String::new();
    let _ = write!(text, "| Measure |");
    for report in reports {
        let _ = write!(text, " N={} |", report.numbers);
    }
    let _ = writeln!(text, " Target |");
    let _ = write!(text, "|---|");
    for _ in reports {
        let _ = write!(text, "---:|");
    }
    let _ = writeln!(text, "---|");
    for row in rows() {
        let _ = write!(text, "| {} |", row.label);
        for report in reports {
            let _ = write!(text, " {} |", (row.value)(report));
        }
        let _ = writeln!(text, " {} |", row.target);
    }
    let _ = writeln!(text);
    for verdict in verdicts(reports) {
        let _ = writeln!(text, "- {verdict}");
    }
    text
}

/// Judges each target: met, not met, or not run, with the figure it was judged on.
pub fn verdicts(reports: &[SizeReport]) -> Vec<String> {
    let at = |size: usize| reports.iter().find(|report| report.numbers == size);
    let mut lines = Vec::new();

    lines.push(match at(CONVERGENCE_TARGET_SIZE) {
        Some(report) => match report.floor_ratio() {
            Some(ratio) => format!(
                "Convergence within {CONVERGENCE_TARGET_RATIO}× the floor at N=1,000: {} ({ratio:.2}×)",
                met(ratio <= CONVERGENCE_TARGET_RATIO)
            ),
            None => "Convergence within 1.3× the floor at N=1,000: NOT MET (did not converge)".into(),
        },
        None => "Convergence within 1.3× the floor at N=1,000: not run".into(),
    });
    let throttled: usize = reports
        .iter()
        .map(|r| r.plivo_converge.too_many_requests + r.plivo_steady.too_many_requests)
        .sum();
    lines.push(format!(
        "0 × 429 from Plivo: {} ({throttled})",
        met(throttled == 0)
    ));
    let worst = reports
        .iter()
        .map(|r| number_requests(r) as f64 / r.numbers.max(1) as f64)
        .fold(0.0, f64::max);
    lines.push(format!(
        "≤ {REQUESTS_PER_NUMBER_TARGET} Plivo requests per number until ACTIVE: {} (at most {worst:.2})",
        met(worst <= REQUESTS_PER_NUMBER_TARGET)
    ));
    let plivo_writes: usize = reports.iter().map(|r| r.plivo_steady.writes).sum();
    let api_writes: usize = reports
        .iter()
        .map(|r| r.writes_steady.objects() + r.writes_steady.events)
        .sum();
    lines.push(format!(
        "0 Plivo writes and 0 apiserver writes in steady state: {} ({plivo_writes} Plivo, {api_writes} apiserver)",
        met(plivo_writes == 0 && api_writes == 0)
    ));
    lines.push(match at(LARGE_SIZE) {
        Some(report) => {
            let peak = report
                .cold_start
                .map_or(report.usage.peak_rss_bytes, |cold| {
                    cold.usage.peak_rss_bytes.max(report.usage.peak_rss_bytes)
                });
            let peak_mib = peak as f64 / (1024.0 * 1024.0);
            format!(
                "RSS ≤ {RSS_TARGET_MIB} MiB with 10,000 numbers: {} ({peak_mib:.1} MiB)",
                met(peak_mib <= RSS_TARGET_MIB)
            )
        }
        None => "RSS ≤ 100 MiB with 10,000 numbers: not run".into(),
    });
    lines.push(match at(LARGE_SIZE).and_then(|report| report.cold_start) {
        Some(cold) => match cold.first_reconcile {
            Some(time) => format!(
                "First reconcile ≤ 10 s after start with 10,000 existing objects: {} ({})",
                met(time <= COLD_START_TARGET),
                seconds(time)
            ),
            None => "First reconcile ≤ 10 s after start with 10,000 existing objects: NOT MET (none seen)".into(),
        },
        None => "First reconcile ≤ 10 s after start with 10,000 existing objects: not run".into(),
    });
    lines
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

/// Requests to the Number endpoints (reads and updates of single numbers, and number lists).
fn number_requests(report: &SizeReport) -> usize {
    ENDPOINTS
        .into_iter()
        .filter(|endpoint| endpoint.contains("/Number/"))
        .map(|endpoint| report.plivo_converge.endpoint(endpoint))
        .sum()
}

fn seconds(time: Duration) -> String {
    format!("{:.1}", time.as_secs_f64())
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn per(count: usize, of: usize) -> String {
    format!("{:.2}", count as f64 / of.max(1) as f64)
}

fn count_per(count: usize, of: usize) -> String {
    format!("{count} ({})", per(count, of))
}

/// `Reason count, …` in the order of the reasons; `none` when empty.
fn reasons(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(reason, count)| {
            let reason = if reason.is_empty() { "(none)" } else { reason };
            format!("{reason} {count}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
