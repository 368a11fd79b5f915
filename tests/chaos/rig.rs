//! One chaos scenario's world: a test namespace on the shared control plane, an in-process
//! Plivo sandbox, and operator processes started against both.

use std::{path::PathBuf, time::Duration};

use caller_reputation_operator::{
    api::{
        BusinessProfile, CallerReputationNumber,
        conditions::{ConditionType, find_condition},
    },
    sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedNumber},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::Value;

use crate::{
    harness::{AUTH_ID, AUTH_TOKEN, SECRET, create_credentials_secret},
    process::{OperatorProcess, base_flags},
    support,
};

/// Longest wait for an outcome the operator reaches on its own.
pub const WAIT: Duration = Duration::from_secs(45);

pub struct Rig {
    pub namespace: String,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub sandbox: RunningSandbox,
}

impl Rig {
    /// A fresh namespace and a sandbox renting `numbers`; `adjust` tunes the sandbox.
    pub async fn new(
        prefix: &str,
        numbers: Vec<SeedNumber>,
        adjust: impl FnOnce(&mut SandboxConfig),
    ) -> Self {
        let cluster = support::cluster().await;
        support::install_crds(&cluster.client()).await;
        let namespace = support::namespace(prefix).await;
        let mut config = SandboxConfig {
            accounts: vec![(AUTH_ID.into(), AUTH_TOKEN.into())],
            numbers,
            activation_delay: Duration::from_secs(3600),
            rate_limit: None,
            ..SandboxConfig::default()
        };
        adjust(&mut config);
        let sandbox = Sandbox::start(config).await.expect("the sandbox starts");
        Self {
            namespace: namespace.name,
            client: namespace.client,
            kubeconfig: cluster.kubeconfig.clone(),
            sandbox,
        }
    }

    /// Flags for an operator of this rig.
    pub fn flags(&self) -> Vec<String> {
        base_flags(&self.namespace, &self.sandbox.base_url(), SECRET)
    }

    /// Starts an operator with the rig's flags plus `extra`.
    pub fn operator(&self, name: &str, extra: &[&str]) -> OperatorProcess {
        let mut flags = self.flags();
        flags.extend(extra.iter().map(|f| f.to_string()));
        OperatorProcess::start(name, &self.kubeconfig, &flags)
    }

    /// Starts an operator with the rig's flags, `overrides` replacing the values of flags the
    /// rig sets (such as `--pending-recheck-min`).
    pub fn operator_with(&self, name: &str, overrides: &[(&str, &str)]) -> OperatorProcess {
        let mut flags = self.flags();
        for (flag, value) in overrides {
            let at = flags
                .iter()
                .position(|f| f == flag)
                .unwrap_or_else(|| panic!("the rig sets no {flag}"));
            flags[at + 1] = value.to_string();
        }
        OperatorProcess::start(name, &self.kubeconfig, &flags)
    }

    pub async fn create_secret(&self) {
        create_credentials_secret(&self.client, &self.namespace, SECRET).await;
    }

    pub fn profiles(&self) -> Api<BusinessProfile> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn numbers(&self) -> Api<CallerReputationNumber> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies a BusinessProfile or CallerReputationNumber manifest.
    pub async fn apply(&self, manifest: Value) {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("manifest has a name")
            .to_string();
        let params = PatchParams::apply("chaos-test").force();
        let result = if manifest["kind"] == "BusinessProfile" {
            self.profiles()
                .patch(&name, &params, &Patch::Apply(&manifest))
                .await
                .map(drop)
        } else {
            self.numbers()
                .patch(&name, &params, &Patch::Apply(&manifest))
                .await
                .map(drop)
        };
        result.unwrap_or_else(|error| panic!("applying {name} failed: {error}"));
    }

    /// Waits until the number's Ready condition has `reason`.
    pub async fn number_reason(&self, name: &str, reason: &str) -> CallerReputationNumber {
        let api = self.numbers();
        support::eventually(
            &format!("CallerReputationNumber {name} with Ready reason {reason}"),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let number = api.get_opt(name).await.ok().flatten()?;
                    let ready =
                        find_condition(&number.status.as_ref()?.conditions, ConditionType::Ready)?;
                    (ready.reason == reason).then_some(number)
                }
            },
        )
        .await
    }

    /// Waits until the profile's Ready condition has `reason`.
    pub async fn profile_reason(&self, name: &str, reason: &str) -> BusinessProfile {
        let api = self.profiles();
        support::eventually(
            &format!("BusinessProfile {name} with Ready reason {reason}"),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let profile = api.get_opt(name).await.ok().flatten()?;
                    let ready =
                        find_condition(&profile.status.as_ref()?.conditions, ConditionType::Ready)?;
                    (ready.reason == reason).then_some(profile)
                }
            },
        )
        .await
    }

    /// Sandbox requests matching `method` whose endpoint template ends with `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> usize {
        self.sandbox
            .requests()
            .iter()
            .filter(|r| r.method == method && r.endpoint.ends_with(suffix))
            .count()
    }

    /// Profiles at the sandbox with this EIN.
    pub fn profiles_with_ein(&self, ein: &str) -> usize {
        self.sandbox
            .state()
            .profiles
            .values()
            .filter(|p| {
                let stored = match p.fields.get("ein") {
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                only_digits(&stored) == only_digits(ein)
            })
            .count()
    }

    /// Waits until no object of `api` is left.
    pub async fn all_gone<K>(&self, api: &Api<K>, what: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        support::eventually(&format!("every {what} gone"), WAIT, || async {
            let list = api.list(&Default::default()).await.ok()?;
            list.items.is_empty().then_some(())
        })
        .await
    }

    /// Polls `check` every few milliseconds (much faster than [`support::eventually`]), so a
    /// test can act the moment an event shows in the sandbox log.
    pub async fn watch_for(&self, what: &str, check: impl Fn(&RunningSandbox) -> bool) {
        let deadline = std::time::Instant::now() + WAIT;
        while !check(&self.sandbox) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// E.164 number `+1415555` followed by four digits of `index`.
pub fn number(index: usize) -> String {
    format!("+1415555{index:04}")
}

pub fn digits(e164: &str) -> String {
    e164.trim_start_matches('+').to_string()
}

fn only_digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}
