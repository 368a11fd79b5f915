//! Names the operator reads or writes in object metadata: its finalizer and
//! the annotations users set to steer it.

/// API group of both custom resources.
pub const GROUP: &str = "callerreputation.io";

/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";

/// Finalizer the operator puts on both kinds so it can clean up at Plivo
/// (disable a number, delete a profile) before Kubernetes deletes the object.
pub const FINALIZER: &str = "callerreputation.io/finalizer";

/// Annotation that pauses reconciliation while its value is `"true"`: the
/// operator makes no Plivo call for the object and reports `Paused`.
pub const PAUSED_ANNOTATION: &str = "callerreputation.io/paused";

/// Annotation whose change asks the operator to retry a `FAILED` enrolment of
/// a CallerReputationNumber although its profile did not change (any new value works).
pub const RETRY_ANNOTATION: &str = "callerreputation.io/retry";
