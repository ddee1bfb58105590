//! Channel and AI credentials: written and rotated here, never read back (reads show
//! at most the last 4 characters). Every change is audited by field name only.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Actor, Admin, AdminError};
use crate::cache::open_secret;
use crate::crypto::mask;
use crate::domain::access::Permission;
use crate::domain::audit::AuditEntry;
use crate::domain::bundle::FieldError;
use crate::domain::plan::{Change, Plan};
use crate::domain::secret_field::*;

/// Tokens expiring sooner than this are flagged (API and metrics).
pub const EXPIRY_WARNING: chrono::Duration = chrono::Duration::days(7);

/// The tenant's credentials, masked, with the WhatsApp token's health.
pub async fn get(admin: &Admin<'_>, actor: &Actor) -> Result<Value, AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let secrets = admin.store.list_secrets(actor.tenant).await?;
    let masked = |field: &str| -> Value {
        match open_secret(admin.keys, &state.tenant, &secrets, field) {
            Ok(Some(s)) => json!(mask(&s)),
            Ok(None) => Value::Null,
            Err(_) => json!("(cannot be opened with this server's keys)"),
        }
    };
    let health = admin
        .store
        .token_health(Some(actor.tenant), admin.now + EXPIRY_WARNING)
        .await?;
    let whatsapp = state.whatsapp.as_ref().map(|a| {
        let status = health
            .first()
            .map(|h| h.status.clone())
            .unwrap_or_else(|| "ok".into());
        json!({
            "phone_number_id": a.provider_account_id,
            "business_account_id": a.business_account_id,
            "display_phone_number": a.display_phone_number,
            "token_expires_at": a.token_expires_at,
            "token_status": status,
            "token_expires_soon": a.token_expires_at.is_some_and(|e| e < admin.now + EXPIRY_WARNING),
            "access_token": masked(WHATSAPP_ACCESS_TOKEN),
            "app_secret": masked(WHATSAPP_APP_SECRET),
            "verify_token": masked(WHATSAPP_VERIFY_TOKEN),
        })
    });
    let ai = state.ai.as_ref().map(|c| {
        json!({
            "provider": c.provider.as_str(), "base_url": c.base_url, "model": c.model,
            "api_key": masked(AI_API_KEY),
        })
    });
    Ok(json!({"whatsapp": whatsapp, "ai": ai}))
}

/// New WhatsApp credentials; fields left out keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCredentials {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub verify_token: Option<String>,
    /// RFC 3339, or null for a token that does not expire.
    #[serde(default, with = "double_option")]
    pub token_expires_at: Option<Option<DateTime<Utc>>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn check_secret(errors: &mut Vec<FieldError>, path: &str, v: &Option<String>) {
    if let Some(s) = v
        && (s.trim().len() < 8 || s.len() > 4096 || s.chars().any(char::is_whitespace))
    {
        errors.push(FieldError {
            path: path.into(),
            message: "must be 8 to 4096 characters without spaces".into(),
        });
    }
}

/// Writes (rotates) WhatsApp credentials.
pub async fn put_whatsapp(
    admin: &Admin<'_>,
    actor: &Actor,
    body: WhatsappCredentials,
) -> Result<Value, AdminError> {
    actor.require(Permission::ManageAccess)?;
    let mut errors = Vec::new();
    check_secret(&mut errors, "access_token", &body.access_token);
    check_secret(&mut errors, "app_secret", &body.app_secret);
    check_secret(&mut errors, "verify_token", &body.verify_token);
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    let state = admin.state(actor.tenant).await?;
    let Some(account) = state.whatsapp.clone() else {
        return Err(AdminError::Conflict(
            "the tenant has no WhatsApp account; an operator adds one with its bundle".into(),
        ));
    };
    let mut plan = Plan::default();
    let mut changed = Vec::new();
    for (field, value) in [
        (WHATSAPP_ACCESS_TOKEN, &body.access_token),
        (WHATSAPP_APP_SECRET, &body.app_secret),
        (WHATSAPP_VERIFY_TOKEN, &body.verify_token),
    ] {
        if let Some(v) = value {
            let sealed = admin.keys.seal(
                actor.tenant,
                field,
                &SecretString::from(v.trim().to_string()),
            );
            plan.secrets.push((field, Change::Set(sealed)));
            changed.push(field);
        }
    }
    if let Some(expiry) = body.token_expires_at {
        let mut a = account.clone();
        a.token_expires_at = expiry;
        plan.whatsapp = Some(Change::Set(a));
        changed.push("whatsapp.token_expires_at");
    }
    if changed.is_empty() {
        return Err(AdminError::Invalid(vec![FieldError {
            path: String::new(),
            message:
                "give at least one of access_token, app_secret, verify_token, token_expires_at"
                    .into(),
        }]));
    }
    plan.audit.push(AuditEntry::new(
        &actor.label(),
        "credentials.update",
        "credentials:whatsapp",
        None,
        Some(json!({"changed": changed})),
        admin.now,
    ));
    admin.write(&state, &plan).await?;
    get(admin, actor).await
}

/// A new random verify token (to paste into Meta's webhook settings), shown once.
pub async fn rotate_verify_token(
    admin: &Admin<'_>,
    actor: &Actor,
) -> Result<SecretString, AdminError> {
    actor.require(Permission::ManageAccess)?;
    let state = admin.state(actor.tenant).await?;
    if state.whatsapp.is_none() {
        return Err(AdminError::Conflict(
            "the tenant has no WhatsApp account".into(),
        ));
    }
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).expect("the operating system's random source");
    let token = SecretString::from(format!("vt_{}", hex::encode(raw)));
    let plan = Plan {
        secrets: vec![(
            WHATSAPP_VERIFY_TOKEN,
            Change::Set(admin.keys.seal(actor.tenant, WHATSAPP_VERIFY_TOKEN, &token)),
        )],
        audit: vec![AuditEntry::new(
            &actor.label(),
            "credentials.rotate_verify_token",
            "credentials:whatsapp",
            None,
            Some(json!({"changed": [WHATSAPP_VERIFY_TOKEN]})),
            admin.now,
        )],
        ..Plan::default()
    };
    admin.write(&state, &plan).await?;
    Ok(token)
}

/// A new AI provider key (and optionally model); fields left out keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiCredentials {
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

pub async fn put_ai(
    admin: &Admin<'_>,
    actor: &Actor,
    body: AiCredentials,
) -> Result<Value, AdminError> {
    actor.require(Permission::ManageAccess)?;
    let mut errors = Vec::new();
    check_secret(&mut errors, "api_key", &body.api_key);
    if body
        .model
        .as_ref()
        .is_some_and(|m| m.trim().is_empty() || m.len() > 200)
    {
        errors.push(FieldError {
            path: "model".into(),
            message: "must be 1 to 200 characters".into(),
        });
    }
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    let state = admin.state(actor.tenant).await?;
    let Some(ai) = state.ai.clone() else {
        return Err(AdminError::Conflict(
            "the tenant has no AI provider; an operator adds one with its bundle".into(),
        ));
    };
    let mut plan = Plan::default();
    let mut changed = Vec::new();
    if let Some(k) = &body.api_key {
        plan.secrets.push((
            AI_API_KEY,
            Change::Set(admin.keys.seal(
                actor.tenant,
                AI_API_KEY,
                &SecretString::from(k.trim().to_string()),
            )),
        ));
        changed.push(AI_API_KEY);
    }
    if let Some(m) = &body.model {
        let mut c = ai.clone();
        c.model = m.trim().to_string();
        plan.ai = Some(Change::Set(c));
        changed.push("ai.model");
    }
    if changed.is_empty() {
        return Err(AdminError::Invalid(vec![FieldError {
            path: String::new(),
            message: "give api_key and/or model".into(),
        }]));
    }
    plan.audit.push(AuditEntry::new(
        &actor.label(),
        "credentials.update",
        "credentials:ai",
        None,
        Some(json!({"changed": changed})),
        admin.now,
    ));
    admin.write(&state, &plan).await?;
    get(admin, actor).await
}
