//! What tenant admins and operators can do, independent of HTTP: each operation checks
//! the caller's permission, validates its input with the bundle rules, writes through
//! the store in one transaction together with its audit entry, and drops the tenant's
//! cached context. The API layer (`api/admin`) only maps requests and errors.

pub mod content;
pub mod credentials;
pub mod keys;
pub mod settings;
pub mod templates;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cache::TenantCache;
use crate::crypto::KeyRing;
use crate::domain::TenantId;
use crate::domain::access::{Permission, Role};
use crate::domain::bundle::{BundleErrors, FieldError};
use crate::domain::plan::{Plan, TenantState};
use crate::store::{Store, StoreError};

/// Who is calling: a tenant API key.
#[derive(Clone, Debug)]
pub struct Actor {
    pub tenant: TenantId,
    pub key_id: Uuid,
    pub role: Role,
}

impl Actor {
    /// How the audit log names this caller.
    pub fn label(&self) -> String {
        format!("key:{}", self.key_id)
    }

    pub fn require(&self, p: Permission) -> Result<(), AdminError> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(AdminError::Forbidden {
                needed: Role::needed_for(p),
            })
        }
    }
}

/// What an admin operation needs.
#[derive(Clone)]
pub struct Admin<'a> {
    pub store: &'a dyn Store,
    pub keys: &'a KeyRing,
    pub cache: &'a TenantCache,
    pub now: DateTime<Utc>,
}

/// Why an admin operation did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this needs the {} role", needed.as_str())]
    Forbidden { needed: Role },
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AdminError::NotFound(what),
            StoreError::Conflict(m) => AdminError::Conflict(m),
            StoreError::StaleRevision { .. } => {
                AdminError::Conflict("changed meanwhile by someone else; try again".into())
            }
            other => AdminError::Store(other),
        }
    }
}

impl From<BundleErrors> for AdminError {
    fn from(e: BundleErrors) -> Self {
        AdminError::Invalid(e.0)
    }
}

impl Admin<'_> {
    /// The tenant's whole state (it exists: the caller's key belongs to it).
    pub async fn state(&self, tenant: TenantId) -> Result<TenantState, AdminError> {
        self.store
            .load_tenant_state(tenant)
            .await?
            .ok_or(AdminError::NotFound("tenant"))
    }

    /// Writes `plan` against the revision `state` was read at, then drops the cache.
    pub async fn write(
        &self,
        state: &TenantState,
        plan: &Plan<crate::crypto::Sealed>,
    ) -> Result<(), AdminError> {
        let id = state.tenant.id;
        self.store
            .update_tenant(id, state.tenant.revision, plan, self.now)
            .await?;
        self.cache.invalidate(id).await;
        Ok(())
    }
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes a key, anything
/// else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_removes_nulls_and_replaces_the_rest() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "new"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "new"}));
    }
}
