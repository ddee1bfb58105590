//! FAQs and training data: list, read, create, patch, delete, and bulk import/export;
//! each write is checked by the bundle's FAQ rules and audited.

use serde::Serialize;
use serde_json::Value;

use super::{Actor, Admin, AdminError, merge_patch};
use crate::domain::access::Permission;
use crate::domain::audit::AuditEntry;
use crate::domain::bundle::{FaqBundle, TrainingSpec, from_json_value, validate_faq};
use crate::domain::plan::{ItemChanges, Plan};
use crate::domain::{TrainingItem, TrainingItemId};

/// A FAQ as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FaqView {
    pub id: TrainingItemId,
    pub question: String,
    pub answer: String,
    pub examples: Vec<String>,
    pub category: Option<String>,
    pub priority: i64,
    pub kind: &'static str,
    pub active: bool,
}

impl From<&TrainingItem> for FaqView {
    fn from(t: &TrainingItem) -> Self {
        Self {
            id: t.id,
            question: t.question.clone(),
            answer: t.answer.clone(),
            examples: t.examples.clone(),
            category: t.category.clone(),
            priority: t.priority,
            kind: t.kind.as_str(),
            active: t.active,
        }
    }
}

fn as_bundle(t: &TrainingItem) -> FaqBundle {
    FaqBundle {
        question: t.question.clone(),
        answer: t.answer.clone(),
        examples: t.examples.clone(),
        category: t.category.clone(),
        priority: t.priority,
        kind: t.kind.as_str().to_string(),
        active: t.active,
    }
}

fn item(id: TrainingItemId, spec: TrainingSpec, position: i64) -> TrainingItem {
    TrainingItem {
        id,
        kind: spec.kind,
        question: spec.question,
        answer: spec.answer,
        examples: spec.examples,
        category: spec.category,
        priority: spec.priority,
        active: spec.active,
        position,
    }
}

fn json_of(t: &TrainingItem) -> Value {
    serde_json::to_value(FaqView::from(t)).unwrap_or(Value::Null)
}

/// Every FAQ of the tenant, in order; `offset`/`limit` page through them.
pub async fn list(
    admin: &Admin<'_>,
    actor: &Actor,
    offset: usize,
    limit: usize,
) -> Result<(Vec<FaqView>, usize), AdminError> {
    actor.require(Permission::Read)?;
    let items = admin.store.list_training_items(actor.tenant).await?;
    let total = items.len();
    Ok((
        items
            .iter()
            .skip(offset)
            .take(limit)
            .map(FaqView::from)
            .collect(),
        total,
    ))
}

/// One FAQ; another tenant's id is simply not found.
pub async fn get(
    admin: &Admin<'_>,
    actor: &Actor,
    id: TrainingItemId,
) -> Result<FaqView, AdminError> {
    actor.require(Permission::Read)?;
    let t = admin
        .store
        .find_training_item(actor.tenant, id)
        .await?
        .ok_or(AdminError::NotFound("faq"))?;
    Ok(FaqView::from(&t))
}

/// Creates FAQs from bundle-shaped JSON objects, all or none.
pub async fn create(
    admin: &Admin<'_>,
    actor: &Actor,
    bodies: Vec<Value>,
) -> Result<Vec<FaqView>, AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let mut next = state
        .training
        .iter()
        .map(|t| t.position)
        .max()
        .unwrap_or(-1)
        + 1;
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let prefix = |p: &str| {
            if p.is_empty() {
                format!("[{i}]")
            } else {
                format!("[{i}].{p}")
            }
        };
        let parsed = from_json_value::<FaqBundle>(body).and_then(validate_faq);
        match parsed {
            Ok(spec) => {
                let t = item(TrainingItemId::new(), spec, next);
                next += 1;
                plan.audit.push(AuditEntry::new(
                    &actor.label(),
                    "faq.create",
                    format!("faq:{}", t.id.0),
                    None,
                    Some(json_of(&t)),
                    admin.now,
                ));
                plan.training.insert.push(t);
            }
            Err(e) => errors.extend(e.0.into_iter().map(|mut f| {
                f.path = prefix(&f.path);
                f
            })),
        }
    }
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    let created: Vec<FaqView> = plan.training.insert.iter().map(FaqView::from).collect();
    admin.write(&state, &plan).await?;
    Ok(created)
}

/// Changes one FAQ by a JSON merge patch of its bundle form.
pub async fn patch(
    admin: &Admin<'_>,
    actor: &Actor,
    id: TrainingItemId,
    patch: Value,
) -> Result<FaqView, AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let current = state
        .training
        .iter()
        .find(|t| t.id == id)
        .ok_or(AdminError::NotFound("faq"))?;
    let mut merged = serde_json::to_value(as_bundle(current)).unwrap_or(Value::Null);
    merge_patch(&mut merged, &patch);
    let spec = from_json_value::<FaqBundle>(merged).and_then(validate_faq)?;
    let updated = item(id, spec, current.position);
    if updated == *current {
        return Ok(FaqView::from(current));
    }
    let plan = Plan {
        training: ItemChanges {
            update: vec![updated.clone()],
            ..ItemChanges::default()
        },
        audit: vec![AuditEntry::new(
            &actor.label(),
            "faq.update",
            format!("faq:{}", id.0),
            Some(json_of(current)),
            Some(json_of(&updated)),
            admin.now,
        )],
        ..Plan::default()
    };
    admin.write(&state, &plan).await?;
    Ok(FaqView::from(&updated))
}

/// Deletes one FAQ.
pub async fn delete(
    admin: &Admin<'_>,
    actor: &Actor,
    id: TrainingItemId,
) -> Result<(), AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let current = state
        .training
        .iter()
        .find(|t| t.id == id)
        .ok_or(AdminError::NotFound("faq"))?;
    let plan = Plan {
        training: ItemChanges {
            delete: vec![id],
            ..ItemChanges::default()
        },
        audit: vec![AuditEntry::new(
            &actor.label(),
            "faq.delete",
            format!("faq:{}", id.0),
            Some(json_of(current)),
            None,
            admin.now,
        )],
        ..Plan::default()
    };
    admin.write(&state, &plan).await
}
