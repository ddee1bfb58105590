//! One entry of a tenant's audit log: who (API key id or CLI user), what, when, and
//! the state before and after. Secrets never appear in `before` or `after`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: Uuid,
    /// `key:<id>` for an API key, `operator:<id>`, or `cli:<user>`.
    pub actor: String,
    /// `settings.update`, `faq.create`, `api_key.revoke`, …
    pub action: String,
    /// What was acted on: `settings`, `faq:<id>`, `api_key:<id>`, …
    pub resource: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

impl AuditEntry {
    pub fn new(
        actor: &str,
        action: &str,
        resource: impl Into<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            actor: actor.to_string(),
            action: action.to_string(),
            resource: resource.into(),
            before,
            after,
            at,
        }
    }
}
