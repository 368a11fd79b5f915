//! Bad input: generated spec values at and beyond the validation rules (unicode digits,
//! separators and spaces in numbers and EINs, explicit nulls, empty and very long strings,
//! unknown fields), applied through the apiserver. Each is rejected with a message naming the
//! field, or reconciled to a clear condition; the operator never crashes and no finalizer
//! sticks.
//!
//! The cases come from a deterministic proptest runner, so every run checks the same 64 values.
//! They are applied as one batch because each reconcile takes a round trip.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::{Value, json};

use crate::{
    harness::{AUTH_TOKEN, profile_manifest, seed},
    rig::{Rig, WAIT, number},
};

const CASES: usize = 64;

/// One generated object.
#[derive(Clone, Debug)]
enum Case {
    Number {
        number: Value,
        unknown: bool,
    },
    Profile {
        ein: Value,
        company: Value,
        unknown: bool,
    },
}

fn to_digits(text: &str, zero: char) -> String {
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(zero as u32 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn phone_value() -> impl Strategy<Value = Value> {
    let valid = (0..10_000u32).prop_map(|n| format!("+1415555{n:04}"));
    prop_oneof![
        valid.clone().prop_map(Value::from),
        // Rented at the sandbox, so these enrol.
        (0..20usize).prop_map(|i| json!(number(5000 + i))),
        Just(json!("+447700900123")),
        // Fullwidth and Arabic-Indic digits look like digits to a person.
        valid.clone().prop_map(|n| json!(to_digits(&n, '\u{ff10}'))),
        valid.clone().prop_map(|n| json!(to_digits(&n, '\u{0660}'))),
        (
            valid.clone(),
            prop::sample::select(vec![" ", "-", ".", "\u{a0}", "\u{2011}"])
        )
            .prop_map(|(n, sep)| json!(format!(
                "{}{sep}{}{sep}{}",
                &n[..2],
                &n[2..5],
                &n[5..]
            ))),
        valid.prop_map(|n| json!(format!("  {n} "))),
        Just(json!("")),
        (16usize..20_000).prop_map(|len| json!("1".repeat(len))),
        Just(Value::Null),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,40}".prop_map(Value::from),
    ]
}

fn ein_value() -> impl Strategy<Value = Value> {
    let valid = (0..10_000_000u32).prop_map(|n| format!("3{}-{n:07}", n % 10));
    prop_oneof![
        valid.clone().prop_map(Value::from),
        valid.clone().prop_map(Value::from),
        valid.clone().prop_map(|e| json!(e.replace('-', ""))),
        valid.clone().prop_map(|e| json!(to_digits(&e, '\u{0660}'))),
        valid.prop_map(|e| json!(e.replace('-', " "))),
        Just(json!("")),
        (10usize..20_000).prop_map(|len| json!("9".repeat(len))),
        Just(Value::Null),
        "\\PC{0,20}".prop_map(Value::from),
    ]
}

fn company_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("Acme Corp")),
        Just(json!("Acme Corp")),
        Just(json!("")),
        Just(Value::Null),
        (1_000usize..100_000).prop_map(|len| json!("A".repeat(len))),
        "\\PC{1,60}".prop_map(Value::from),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        (phone_value(), prop::bool::weighted(0.125))
            .prop_map(|(number, unknown)| Case::Number { number, unknown }),
        (ein_value(), company_value(), prop::bool::weighted(0.125)).prop_map(
            |(ein, company, unknown)| {
                Case::Profile {
                    ein,
                    company,
                    unknown,
                }
            }
        ),
    ]
}

fn manifest(index: usize, case: &Case) -> (String, Value) {
    match case {
        Case::Number { number, unknown } => {
            let name = format!("number-{index}");
            let mut spec = json!({"number": number, "profileRef": {"name": "acme"}});
            if *unknown {
                spec["colour"] = json!("blue");
            }
            let manifest = json!({
                "apiVersion": "callerreputation.io/v1alpha1",
                "kind": "CallerReputationNumber",
                "metadata": {"name": name},
                "spec": spec,
            });
            (name, manifest)
        }
        Case::Profile {
            ein,
            company,
            unknown,
        } => {
            let name = format!("profile-{index}");
            let mut manifest = profile_manifest(&name, "00-0000000");
            manifest["spec"]["ein"] = ein.clone();
            manifest["spec"]["companyName"] = company.clone();
            if *unknown {
                manifest["spec"]["colour"] = json!("blue");
            }
            (name, manifest)
        }
    }
}

/// Field names the apiserver's message may use for the field a case varies.
fn fields(case: &Case) -> &'static [&'static str] {
    match case {
        Case::Number { .. } => &["spec.number", "colour"],
        Case::Profile { .. } => &["spec.ein", "spec.companyName", "colour"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_spec_values_are_rejected_or_reported() {
    let rig = Rig::new(
        "chaos-bad-input",
        (0..20).map(|i| seed(&number(5000 + i), "local")).collect(),
        |_| {},
    )
    .await;
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000111")).await;
    let mut operator = rig.operator("bad-input", &[]);
    rig.profile_reason("acme", "Created").await;

    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let cases: Vec<Case> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect();

    let params = PatchParams::apply("chaos-test").force();
    let mut accepted: Vec<(String, bool)> = Vec::new();
    let mut rejected = 0;
    for (index, case) in cases.iter().enumerate() {
        let (name, manifest) = manifest(index, case);
        let is_number = matches!(case, Case::Number { .. });
        let result = if is_number {
            rig.numbers()
                .patch(&name, &params, &Patch::Apply(&manifest))
                .await
                .map(drop)
        } else {
            rig.profiles()
                .patch(&name, &params, &Patch::Apply(&manifest))
                .await
                .map(drop)
        };
        match result {
            Ok(()) => accepted.push((name, is_number)),
            Err(kube::Error::Api(status)) => {
                assert!(
                    fields(case).iter().any(|f| status.message.contains(f)),
                    "case {index} {case:?}: the rejection names no field: {}",
                    status.message
                );
                if std::env::var_os("CHAOS_SHOW_REJECTIONS").is_some() {
                    println!(
                        "case {index}: {}",
                        status.message.chars().take(300).collect::<String>()
                    );
                }
                rejected += 1;
            }
            Err(other) => panic!("case {index} {case:?}: {other}"),
        }
    }

    // Every accepted object gets a Ready condition for its current generation with a message.
    let deadline = Instant::now() + WAIT;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for (name, is_number) in &accepted {
        let (generation, observed, ready) = loop {
            let (generation, observed, conditions) = if *is_number {
                let object = rig.numbers().get(name).await.expect("get");
                let status = object.status.unwrap_or_default();
                (
                    object.metadata.generation,
                    status.observed_generation,
                    status.conditions,
                )
            } else {
                let object = rig.profiles().get(name).await.expect("get");
                let status = object.status.unwrap_or_default();
                (
                    object.metadata.generation,
                    status.observed_generation,
                    status.conditions,
                )
            };
            let ready = conditions.into_iter().find(|c| c.type_ == "Ready");
            if (ready.is_some() && observed == generation) || Instant::now() > deadline {
                break (generation, observed, ready);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ready = ready.unwrap_or_else(|| panic!("{name}: no Ready condition"));
        assert_eq!(
            observed, generation,
            "{name}: status is for an old generation"
        );
        assert!(!ready.message.trim().is_empty(), "{name}: empty message");
        assert!(
            ready.message.len() <= 32 * 1024,
            "{name}: message of {} bytes",
            ready.message.len()
        );
        *reasons.entry(ready.reason).or_default() += 1;
    }

    // Deleting releases every finalizer.
    for (name, is_number) in &accepted {
        if *is_number {
            let _ = rig.numbers().delete(name, &DeleteParams::default()).await;
        } else {
            let _ = rig.profiles().delete(name, &DeleteParams::default()).await;
        }
    }
    for (name, is_number) in &accepted {
        let deadline = Instant::now() + WAIT;
        loop {
            let gone = if *is_number {
                rig.numbers().get_opt(name).await.expect("get").is_none()
            } else {
                rig.profiles().get_opt(name).await.expect("get").is_none()
            };
            if gone {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: finalizer stuck");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    assert!(!operator.exited(), "the operator is still running");
    let panics = operator
        .output()
        .iter()
        .filter(|line| line.contains("panicked"))
        .count();
    let lines = operator.finish(&[AUTH_TOKEN]);
    assert_eq!(panics, 0, "the operator panicked");
    println!(
        "chaos: bad-input: cases={CASES} rejected-by-apiserver={rejected} accepted={} \
         ready-reasons={reasons:?} stuck-finalizers=0 panics=0 log-lines={lines}",
        accepted.len()
    );
    rig.sandbox.shutdown().await;
}
