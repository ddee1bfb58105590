//! Prompt templates (name, system prompt, tone, answer length, conversation context,
//! the default one): list, create, patch, delete, audited. Making one the default
//! takes that from the others in the same write.

use serde::Serialize;
use serde_json::Value;

use super::{Actor, Admin, AdminError, merge_patch};
use crate::domain::access::Permission;
use crate::domain::audit::AuditEntry;
use crate::domain::bundle::{TemplateBundle, TemplateSpec, from_json_value, validate_template};
use crate::domain::plan::{ItemChanges, Plan};
use crate::domain::{Template, TemplateId};

#[derive(Clone, Debug, Serialize)]
pub struct TemplateView {
    pub id: TemplateId,
    pub name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub max_response_length: Option<i64>,
    pub context_messages: Option<i64>,
    pub is_default: bool,
}

impl From<&Template> for TemplateView {
    fn from(t: &Template) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            system_prompt: t.system_prompt.clone(),
            tone: t.tone.clone(),
            max_response_length: t.max_response_length,
            context_messages: t.context_messages,
            is_default: t.is_default,
        }
    }
}

fn to_bundle(t: &Template) -> TemplateBundle {
    TemplateBundle {
        name: t.name.clone(),
        system_prompt: t.system_prompt.clone(),
        tone: t.tone.clone(),
        max_response_length: t.max_response_length,
        context_messages: t.context_messages,
        is_default: t.is_default,
    }
}

fn from_spec(id: TemplateId, s: TemplateSpec, position: i64) -> Template {
    Template {
        id,
        name: s.name,
        system_prompt: s.system_prompt,
        tone: s.tone,
        max_response_length: s.max_response_length,
        context_messages: s.context_messages,
        is_default: s.is_default,
        position,
    }
}

fn json_of(t: &Template) -> Value {
    serde_json::to_value(TemplateView::from(t)).unwrap_or(Value::Null)
}

pub async fn list(admin: &Admin<'_>, actor: &Actor) -> Result<Vec<TemplateView>, AdminError> {
    actor.require(Permission::Read)?;
    let t = admin.store.list_templates(actor.tenant).await?;
    Ok(t.iter().map(TemplateView::from).collect())
}

/// Writes `changed` (new or updated); when it is the default, the others stop being.
async fn save(
    admin: &Admin<'_>,
    actor: &Actor,
    current: &[Template],
    changed: Template,
    is_new: bool,
) -> Result<(), AdminError> {
    let state = admin.state(actor.tenant).await?;
    let mut plan = Plan::default();
    let before = current.iter().find(|t| t.id == changed.id).map(json_of);
    plan.audit.push(AuditEntry::new(
        &actor.label(),
        if is_new {
            "template.create"
        } else {
            "template.update"
        },
        format!("template:{}", changed.id.0),
        before,
        Some(json_of(&changed)),
        admin.now,
    ));
    let mut updates: Vec<Template> = Vec::new();
    if changed.is_default {
        for other in current
            .iter()
            .filter(|t| t.is_default && t.id != changed.id)
        {
            let mut o = other.clone();
            o.is_default = false;
            updates.push(o);
        }
    }
    if is_new {
        plan.templates.insert.push(changed);
    } else {
        updates.push(changed);
    }
    plan.templates.update = updates;
    admin.write(&state, &plan).await
}

pub async fn create(
    admin: &Admin<'_>,
    actor: &Actor,
    body: Value,
) -> Result<TemplateView, AdminError> {
    actor.require(Permission::EditBot)?;
    let spec = from_json_value::<TemplateBundle>(body).and_then(validate_template)?;
    let current = admin.store.list_templates(actor.tenant).await?;
    let position = current.iter().map(|t| t.position).max().unwrap_or(-1) + 1;
    let t = from_spec(TemplateId::new(), spec, position);
    save(admin, actor, &current, t.clone(), true).await?;
    Ok(TemplateView::from(&t))
}

pub async fn patch(
    admin: &Admin<'_>,
    actor: &Actor,
    id: TemplateId,
    patch: Value,
) -> Result<TemplateView, AdminError> {
    actor.require(Permission::EditBot)?;
    let current = admin.store.list_templates(actor.tenant).await?;
    let old = current
        .iter()
        .find(|t| t.id == id)
        .ok_or(AdminError::NotFound("template"))?;
    let mut merged = serde_json::to_value(to_bundle(old)).unwrap_or(Value::Null);
    merge_patch(&mut merged, &patch);
    let spec = from_json_value::<TemplateBundle>(merged).and_then(validate_template)?;
    let t = from_spec(id, spec, old.position);
    if t != *old {
        save(admin, actor, &current, t.clone(), false).await?;
    }
    Ok(TemplateView::from(&t))
}

pub async fn delete(admin: &Admin<'_>, actor: &Actor, id: TemplateId) -> Result<(), AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let old = state
        .templates
        .iter()
        .find(|t| t.id == id)
        .ok_or(AdminError::NotFound("template"))?;
    let plan = Plan {
        templates: ItemChanges {
            delete: vec![id],
            ..ItemChanges::default()
        },
        audit: vec![AuditEntry::new(
            &actor.label(),
            "template.delete",
            format!("template:{}", id.0),
            Some(json_of(old)),
            None,
            admin.now,
        )],
        ..Plan::default()
    };
    admin.write(&state, &plan).await
}
