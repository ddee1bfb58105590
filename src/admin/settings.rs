//! The control settings resource: read them, patch them (JSON merge patch over the
//! bundle's `settings` section, validated by the same rules).

use serde_json::{Value, json};

use super::{Actor, Admin, AdminError, merge_patch};
use crate::domain::access::Permission;
use crate::domain::audit::AuditEntry;
use crate::domain::bundle::{SettingsBundle, from_json_value, validate_settings_section};
use crate::domain::plan::Plan;
use crate::provisioning::settings_bundle;

fn view(s: crate::domain::ControlSettings) -> Value {
    serde_json::to_value(settings_bundle(s)).unwrap_or_else(|_| json!({}))
}

/// The tenant's settings, shaped like a bundle's `settings` section.
pub async fn get(admin: &Admin<'_>, actor: &Actor) -> Result<Value, AdminError> {
    actor.require(Permission::Read)?;
    let state = admin.state(actor.tenant).await?;
    Ok(view(state.settings.unwrap_or_default()))
}

/// Applies `patch` (e.g. `{"bot_enabled": false}`, `{"quiet_hours": null}`) and
/// returns the new settings. Invalid input changes nothing.
pub async fn patch(admin: &Admin<'_>, actor: &Actor, patch: Value) -> Result<Value, AdminError> {
    actor.require(Permission::EditBot)?;
    if !patch.is_object() {
        return Err(AdminError::Invalid(vec![
            crate::domain::bundle::FieldError {
                path: String::new(),
                message: "must be a JSON object of settings to change".into(),
            },
        ]));
    }
    let state = admin.state(actor.tenant).await?;
    let current = state.settings.clone().unwrap_or_default();
    let before = view(current.clone());
    let mut merged = before.clone();
    merge_patch(&mut merged, &patch);
    let section: SettingsBundle = from_json_value(merged)?;
    let new = validate_settings_section(section)?;
    if new == current {
        return Ok(before);
    }
    let after = view(new.clone());
    let plan = Plan {
        settings: Some(new),
        audit: vec![AuditEntry::new(
            &actor.label(),
            "settings.update",
            "settings",
            Some(before),
            Some(after.clone()),
            admin.now,
        )],
        ..Plan::default()
    };
    admin.write(&state, &plan).await?;
    Ok(after)
}
