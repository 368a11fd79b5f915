//! Tests of the Argo CD health checks in `examples/argocd/health-checks.yaml`.
//!
//! The Lua scripts are taken from that file as shipped and run by `lua5.1`, the dialect of
//! Argo CD's interpreter, once per status sample. There is a sample for every condition reason
//! in `Reason::ALL`, with the conditions the controllers write for it, plus samples of stale
//! generations and of the paused annotation.

// Only the lookup half of the tools module is used here.
#[allow(dead_code)]
#[path = "chart/tools.rs"]
mod tools;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use caller_reputation_operator::api::conditions::Reason;
use serde_json::{Value, json};

const KINDS: [&str; 2] = ["BusinessProfile", "CallerReputationNumber"];

/// Reasons the controllers report with `Ready=True`: the desired state is in effect.
const READY_REASONS: [Reason; 6] = [
    Reason::Created,
    Reason::Adopted,
    Reason::Updated,
    Reason::Active,
    Reason::Disabled,
    Reason::Reconciled,
];

/// One object to feed to the health check and the health Argo CD must show for it.
struct Sample {
    name: String,
    object: Value,
    health: &'static str,
}

fn condition(type_: &str, status: bool, reason: &str, generation: i64) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": format!("{reason} at generation {generation}"),
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    })
}

fn object(kind: &str, generation: i64, annotations: Value, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "sample", "namespace": "voice", "generation": generation, "annotations": annotations},
        "spec": {},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// Builds the conditions the controllers write for `reason` at `generation`.
fn conditions_for(reason: Reason, generation: i64) -> Vec<Value> {
    let ready = READY_REASONS.contains(&reason);
    let mut conditions = vec![
        condition("Ready", ready, reason.as_str(), generation),
        condition(
            "Synced",
            ready,
            if ready { "Reconciled" } else { reason.as_str() },
            generation,
        ),
    ];
    if reason.is_stalling() {
        conditions.push(condition("Stalled", true, reason.as_str(), generation));
    }
    conditions
}

fn samples(kind: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for reason in Reason::ALL {
        let paused = reason == Reason::Paused;
        let annotations = if paused {
            json!({"callerreputation.io/paused": "true"})
        } else {
            json!({})
        };
        let status = json!({"observedGeneration": 2, "conditions": conditions_for(reason, 2)});
        let health = if paused {
            "Suspended"
        } else if reason.is_stalling() || reason == Reason::CredentialsMissing {
            "Degraded"
        } else if READY_REASONS.contains(&reason) {
            "Healthy"
        } else {
            "Progressing"
        };
        samples.push(Sample {
            name: format!("reason {reason}"),
            object: object(kind, 2, annotations, Some(status)),
            health,
        });
    }

    let ready_at = |generation: i64| json!({"observedGeneration": generation, "conditions": [condition("Ready", true, "Active", generation)]});
    samples.extend([
        Sample {
            name: "a new object the operator has not seen".into(),
            object: object(kind, 1, json!({}), None),
            health: "Progressing",
        },
        Sample {
            name: "Ready for an older generation".into(),
            object: object(kind, 3, json!({}), Some(ready_at(2))),
            health: "Progressing",
        },
        Sample {
            name: "Stalled for an older generation, so the fix is not looked at yet".into(),
            object: object(
                kind,
                3,
                json!({}),
                Some(json!({"observedGeneration": 2, "conditions": conditions_for(Reason::Failed, 2)})),
            ),
            health: "Progressing",
        },
        Sample {
            name: "credentials missing while the operator waits, without Stalled".into(),
            object: object(
                kind,
                1,
                json!({}),
                Some(json!({"observedGeneration": 1, "conditions": [
                    condition("Ready", false, "CredentialsMissing", 1),
                    condition("Synced", false, "CredentialsMissing", 1),
                ]})),
            ),
            health: "Degraded",
        },
        Sample {
            name: "paused annotation set to false".into(),
            object: object(kind, 2, json!({"callerreputation.io/paused": "false"}), Some(ready_at(2))),
            health: "Healthy",
        },
        Sample {
            name: "paused while Ready".into(),
            object: object(kind, 2, json!({"callerreputation.io/paused": "true"}), Some(ready_at(2))),
            health: "Suspended",
        },
        Sample {
            name: "status without conditions".into(),
            object: object(kind, 1, json!({}), Some(json!({"observedGeneration": 1}))),
            health: "Progressing",
        },
    ]);
    samples
}

/// Writes a JSON value as a Lua 5.1 table constructor, the shape Argo CD gives `obj`.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(value) => value.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => lua_string(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("[{}] = {}", lua_string(key), lua(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Writes a Lua string literal. Every byte outside printable ASCII becomes a decimal escape.
fn lua_string(text: &str) -> String {
    let mut literal = String::from("\"");
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                literal.push('\\');
                literal.push(byte as char);
            }
            0x20..=0x7e => literal.push(byte as char),
            _ => literal.push_str(&format!("\\{byte:03}")),
        }
    }
    literal.push('"');
    literal
}

/// Reads the `data` of `health-checks.yaml`: the health check script of each kind.
fn scripts() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/argocd/health-checks.yaml");
    let text = std::fs::read_to_string(&path).expect("read health-checks.yaml");
    let config: Value = serde_saphyr::from_str(&text).expect("health-checks.yaml is YAML");
    config["data"].clone()
}

/// Runs `script` on every sample in one lua5.1 process; returns `(status, message)` per sample.
fn run_health_check(lua51: &Path, script: &str, samples: &[Sample]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let script_path = dir.path().join("health.lua");
    std::fs::write(&script_path, script).expect("write the script");
    let mut program = String::from("local check = assert(loadfile(arg[1]))\nlocal samples = {\n");
    for sample in samples {
        program.push_str(&format!("  {},\n", lua(&sample.object)));
    }
    // As in Argo CD, the script reads the object from the global `obj` and returns a table.
    program.push_str(
        "}\nfor _, sample in ipairs(samples) do\n  obj = sample\n  local hs = check()\n  \
         io.write(tostring(hs.status), \"\\t\", tostring(hs.message), \"\\n\")\nend\n",
    );
    let harness_path = dir.path().join("harness.lua");
    std::fs::File::create(&harness_path)
        .and_then(|mut file| file.write_all(program.as_bytes()))
        .expect("write the harness");

    let output = Command::new(lua51)
        .arg(&harness_path)
        .arg(&script_path)
        .output()
        .expect("run lua5.1");
    assert!(
        output.status.success(),
        "lua5.1 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let (status, message) = line.split_once('\t').unwrap_or((line, ""));
            (status.to_string(), message.to_string())
        })
        .collect()
}

#[test]
fn health_checks_follow_the_conditions_of_both_kinds() {
    let Some(lua51) = tools::find("lua5.1") else {
        // Written to stderr directly because libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED health_checks_follow_the_conditions_of_both_kinds: lua5.1 is not installed \
             and hack/install-tools.sh could not install it (it needs apt-get and root)"
        );
        return;
    };
    let scripts = scripts();
    for kind in KINDS {
        let key = format!("resource.customizations.health.callerreputation.io_{kind}");
        let script = scripts[&key]
            .as_str()
            .unwrap_or_else(|| panic!("health-checks.yaml has no {key}"));
        let samples = samples(kind);

        let results = run_health_check(&lua51, script, &samples);

        assert_eq!(
            results.len(),
            samples.len(),
            "one result per sample: {results:?}"
        );
        for (sample, (status, message)) in samples.iter().zip(&results) {
            assert_eq!(
                status, sample.health,
                "{kind} with {}: got {status} ({message})",
                sample.name
            );
            assert!(
                !message.is_empty(),
                "{kind} with {}: no message",
                sample.name
            );
        }
    }
}

#[test]
fn lua_literals_keep_every_byte_of_a_string() {
    let Some(lua51) = tools::find("lua5.1") else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: lua5.1 is not installed");
        return;
    };
    let text = "quote \" backslash \\ tab \t newline \n é ✓";
    let program = format!("io.write({})", lua_string(text));
    let output = Command::new(lua51)
        .args(["-e", &program])
        .output()
        .expect("run lua5.1");
    assert_eq!(String::from_utf8_lossy(&output.stdout), text);
}
