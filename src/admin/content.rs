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

/// A row's field errors, their paths prefixed with the row (`[3].answer`).
fn at_row(
    i: usize,
    e: crate::domain::bundle::BundleErrors,
) -> impl Iterator<Item = crate::domain::bundle::FieldError> {
    e.0.into_iter().map(move |mut f| {
        f.path = if f.path.is_empty() {
            format!("[{i}]")
        } else {
            format!("[{i}].{}", f.path)
        };
        f
    })
}

/// The position after the tenant's last training item.
fn next_position(items: &[TrainingItem]) -> i64 {
    items.iter().map(|t| t.position).max().unwrap_or(-1) + 1
}

/// Adds a new FAQ to `plan`, with its audit entry.
fn push_new(
    plan: &mut Plan<crate::crypto::Sealed>,
    actor: &Actor,
    spec: TrainingSpec,
    position: i64,
    now: chrono::DateTime<chrono::Utc>,
) {
    let t = item(TrainingItemId::new(), spec, position);
    plan.audit.push(AuditEntry::new(
        &actor.label(),
        "faq.create",
        format!("faq:{}", t.id.0),
        None,
        Some(json_of(&t)),
        now,
    ));
    plan.training.insert.push(t);
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
    let mut next = next_position(&state.training);
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let parsed = from_json_value::<FaqBundle>(body).and_then(validate_faq);
        match parsed {
            Ok(spec) => {
                push_new(&mut plan, actor, spec, next, admin.now);
                next += 1;
            }
            Err(e) => errors.extend(at_row(i, e)),
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

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Imports FAQs (bundle-shaped objects), matched to existing ones by question: new
/// questions are added, known ones updated. All or none: one bad row changes nothing.
pub async fn import(
    admin: &Admin<'_>,
    actor: &Actor,
    rows: Vec<Value>,
) -> Result<ImportReport, AdminError> {
    actor.require(Permission::EditBot)?;
    let state = admin.state(actor.tenant).await?;
    let mut next = next_position(&state.training);
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    let mut report = ImportReport::default();
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.into_iter().enumerate() {
        let spec = match from_json_value::<FaqBundle>(row).and_then(validate_faq) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(at_row(i, e));
                continue;
            }
        };
        if !seen.insert(spec.question.clone()) {
            errors.push(crate::domain::bundle::FieldError {
                path: format!("[{i}].question"),
                message: "appears twice in this import".into(),
            });
            continue;
        }
        match state.training.iter().find(|t| t.question == spec.question) {
            Some(old) => {
                let new = item(old.id, spec, old.position);
                if new == *old {
                    report.unchanged += 1;
                } else {
                    plan.audit.push(AuditEntry::new(
                        &actor.label(),
                        "faq.update",
                        format!("faq:{}", old.id.0),
                        Some(json_of(old)),
                        Some(json_of(&new)),
                        admin.now,
                    ));
                    plan.training.update.push(new);
                    report.updated += 1;
                }
            }
            None => {
                push_new(&mut plan, actor, spec, next, admin.now);
                next += 1;
                report.created += 1;
            }
        }
    }
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    if report.created + report.updated > 0 {
        admin.write(&state, &plan).await?;
    }
    Ok(report)
}

/// Every FAQ in bundle form (re-importable).
pub async fn export(admin: &Admin<'_>, actor: &Actor) -> Result<Vec<FaqBundle>, AdminError> {
    actor.require(Permission::Read)?;
    let items = admin.store.list_training_items(actor.tenant).await?;
    Ok(items.iter().map(as_bundle).collect())
}

/// The CSV columns of an export/import; `examples` are joined with " | ".
pub const CSV_COLUMNS: [&str; 7] = [
    "question", "answer", "examples", "category", "priority", "kind", "active",
];

/// FAQs as CSV with a header row.
pub fn to_csv(faqs: &[FaqBundle]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS);
    for f in faqs {
        let _ = w.write_record([
            f.question.as_str(),
            f.answer.as_str(),
            &f.examples.join(" | "),
            f.category.as_deref().unwrap_or(""),
            &f.priority.to_string(),
            f.kind.as_str(),
            if f.active { "true" } else { "false" },
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Reads CSV with a header row naming some of [`CSV_COLUMNS`] (question and answer
/// required) into bundle-shaped objects for [`import`].
pub fn from_csv(text: &str) -> Result<Vec<Value>, AdminError> {
    use crate::domain::bundle::FieldError;
    let bad =
        |path: String, message: String| AdminError::Invalid(vec![FieldError { path, message }]);
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad("header".into(), format!("not CSV: {e}")))?
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    for h in &header {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            return Err(bad(
                "header".into(),
                format!(
                    "unknown column {h:?}; columns are {}",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
    }
    if !header.iter().any(|h| h == "question") || !header.iter().any(|h| h == "answer") {
        return Err(bad(
            "header".into(),
            "needs question and answer columns".into(),
        ));
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("[{i}]"), format!("not CSV: {e}")))?;
        let mut obj = serde_json::Map::new();
        for (h, v) in header.iter().zip(rec.iter()) {
            let value = match h.as_str() {
                "examples" => Value::Array(
                    v.split('|')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ),
                "priority" if v.is_empty() => continue,
                "priority" => v
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| bad(format!("[{i}].priority"), "must be a whole number".into()))?,
                "active" if v.is_empty() => continue,
                "active" => match v.to_lowercase().as_str() {
                    "true" | "yes" | "1" => Value::Bool(true),
                    "false" | "no" | "0" => Value::Bool(false),
                    _ => return Err(bad(format!("[{i}].active"), "must be true or false".into())),
                },
                "category" | "kind" if v.is_empty() => continue,
                _ => Value::String(v.to_string()),
            };
            obj.insert(h.clone(), value);
        }
        rows.push(Value::Object(obj));
    }
    if rows.is_empty() || rows.len() > 5000 {
        return Err(bad("".into(), "needs 1 to 5000 rows".into()));
    }
    Ok(rows)
}
