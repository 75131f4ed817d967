//! A view whose computation outlasted the request's wait: the computation goes on and fills the
//! cache, so the answer is "not yet, ask again shortly" rather than a failure. The dashboard cache
//! (`runtime::cache`) gives it as the cause of the store's `Unavailable`; the HTTP error mapping
//! recognises it and answers a page that says so and reloads itself.

use std::time::Duration;

/// The `kind` view (`dashboard`, `errors`, …) was still being computed after `waited`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {kind} view is still being computed (waited {waited:?}); try again shortly")]
pub struct StillComputing {
    pub kind: String,
    pub waited: Duration,
}
