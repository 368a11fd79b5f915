//! The custom resources `BusinessProfile` and `CallerReputationNumber`
//! (group `callerreputation.io`, version `v1alpha1`), their condition
//! vocabulary, the value types parsed from their fields, and the rendering
//! of their CustomResourceDefinitions.
//!
//! Defaults of optional fields are applied by accessor methods here, never
//! written into the schema or the stored spec, so that what a user keeps in
//! Git is exactly what the apiserver stores.

mod annotations;
mod business_profile;
mod caller_reputation_number;
pub mod conditions;
mod credentials;
mod ein;
mod phone_number;
mod schema;

use kube::CustomResourceExt;

pub use annotations::{FINALIZER, GROUP, PAUSED_ANNOTATION, RETRY_ANNOTATION, VERSION};
pub use business_profile::{
    Address, AltBusinessIdType, AuthorizedContact, BusinessProfile, BusinessProfileSpec,
    BusinessProfileStatus, CreationIntent, CustomerType, DEFAULT_EIN_ISSUING_COUNTRY, EntityType,
    ProfileDeletionPolicy, Seniority, StockExchange, Vertical,
};
pub use caller_reputation_number::{
    CallbackMethod, CallerReputationNumber, CallerReputationNumberSpec,
    CallerReputationNumberStatus, CallerReputationState, Enrollment, NumberDeletionPolicy,
    ProfileRef, ProfileSource, StatusCallback,
};
pub use conditions::{
    ConditionType, KStatus, MAX_CONDITION_MESSAGE_BYTES, Reason, find_condition, is_condition_true,
    kstatus, remove_condition, set_condition,
};
pub use credentials::{CredentialsSecretRef, DEFAULT_AUTH_ID_KEY, DEFAULT_AUTH_TOKEN_KEY};
pub use ein::{Ein, EinError};
pub use phone_number::{PhoneNumber, PhoneNumberError};

/// Renders every CustomResourceDefinition of the operator as a YAML stream,
/// one document per CRD separated by `---`, always in the same order.
pub fn crds_yaml() -> String {
    let crds = [BusinessProfile::crd(), CallerReputationNumber::crd()];
    let documents: Vec<String> = crds
        .iter()
        .map(|crd| {
            // Long single-line strings stay on one line: folding CEL rules and
            // descriptions at 80 columns makes the YAML harder to read and diff.
            let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX };
            // A CRD is plain data (strings, maps, lists), which YAML always represents.
            serde_saphyr::to_string_with_options(crd, options)
                .expect("a CustomResourceDefinition serializes to YAML")
        })
        .collect();
    documents
        .iter()
        .map(|document| format!("---\n{document}"))
        .collect()
}
