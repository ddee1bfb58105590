//! API keys of a tenant: create (the key is shown once), list (prefix, role, last use;
//! never the key), revoke. Owners only; the CLI makes the first ones.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, Admin, AdminError};
use crate::domain::TenantId;
use crate::domain::access::{Permission, Role};
use crate::domain::audit::AuditEntry;
use crate::domain::bundle::FieldError;
use crate::store::Store;
use crate::store::admin::ApiKeyRecord;

/// A key as listed: everything but the key itself.
#[derive(Clone, Debug, Serialize)]
pub struct KeyView {
    pub id: Uuid,
    /// The visible start of the key, e.g. `pk_h3k9w2m4p7qa_…`.
    pub prefix: String,
    pub role: Option<&'static str>,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(r: &ApiKeyRecord) -> Self {
        let tag = if r.tenant_id.is_some() { "pk" } else { "po" };
        Self {
            id: r.id,
            prefix: format!("{tag}_{}_…", r.prefix),
            role: r.role.map(Role::as_str),
            name: r.name.clone(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// What a new key is asked for with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub role: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Days until it expires; none = never.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

fn check_request(
    req: &NewKeyRequest,
    now: DateTime<Utc>,
) -> Result<(Role, String, Option<DateTime<Utc>>), AdminError> {
    let mut errors = Vec::new();
    let role = Role::parse(&req.role);
    if role.is_none() {
        errors.push(FieldError {
            path: "role".into(),
            message: "must be one of owner, admin, staff, viewer".into(),
        });
    }
    let name = req.name.clone().unwrap_or_else(|| "api key".into());
    if name.trim().is_empty() || name.len() > 100 {
        errors.push(FieldError {
            path: "name".into(),
            message: "must be 1-100 characters".into(),
        });
    }
    let expires = match req.expires_in_days {
        Some(d) if !(1..=3650).contains(&d) => {
            errors.push(FieldError {
                path: "expires_in_days".into(),
                message: "must be between 1 and 3650".into(),
            });
            None
        }
        Some(d) => Some(now + chrono::Duration::days(d)),
        None => None,
    };
    match role {
        Some(r) if errors.is_empty() => Ok((r, name.trim().to_string(), expires)),
        _ => Err(AdminError::Invalid(errors)),
    }
}

/// Makes and stores a tenant key, audited in the same transaction. The caller has
/// checked that `created_by` may do this (an owner key, or the operator's CLI).
pub async fn issue(
    store: &dyn Store,
    tenant: TenantId,
    role: Role,
    name: &str,
    created_by: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(SecretString, KeyView), AdminError> {
    let key = crate::auth::new_tenant_key(tenant, role, name, created_by, expires_at, now);
    let view = KeyView::from(&key.record);
    let audit = AuditEntry::new(
        created_by,
        "api_key.create",
        format!("api_key:{}", key.record.id),
        None,
        Some(json!(view)),
        now,
    );
    store.insert_api_key(&key.record, Some(&audit)).await?;
    Ok((key.plaintext, view))
}

pub async fn create(
    admin: &Admin<'_>,
    actor: &Actor,
    req: NewKeyRequest,
) -> Result<(SecretString, KeyView), AdminError> {
    actor.require(Permission::ManageAccess)?;
    let (role, name, expires) = check_request(&req, admin.now)?;
    issue(
        admin.store,
        actor.tenant,
        role,
        &name,
        &actor.label(),
        expires,
        admin.now,
    )
    .await
}

pub async fn list(admin: &Admin<'_>, actor: &Actor) -> Result<Vec<KeyView>, AdminError> {
    actor.require(Permission::ManageAccess)?;
    let keys = admin.store.list_tenant_keys(actor.tenant).await?;
    Ok(keys.iter().map(KeyView::from).collect())
}

pub async fn revoke(admin: &Admin<'_>, actor: &Actor, id: Uuid) -> Result<(), AdminError> {
    actor.require(Permission::ManageAccess)?;
    let audit = AuditEntry::new(
        &actor.label(),
        "api_key.revoke",
        format!("api_key:{id}"),
        None,
        None,
        admin.now,
    );
    if admin
        .store
        .revoke_tenant_key(actor.tenant, id, &audit, admin.now)
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::NotFound("api key"))
    }
}
