//! Planning a bundle apply: compare the desired state with what is stored and list
//! only what changed, so re-applying the same file changes nothing and FAQ items keep
//! their ids while their question is unchanged.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::bundle::{
    BundleErrors, BundleSecret, FieldError, TemplateSpec, TrainingSpec, ValidBundle,
};
use super::tenant::*;
use super::{TemplateId, TrainingItemId};

/// What is stored for a tenant (secrets apart).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantState {
    pub tenant: Tenant,
    pub settings: Option<ControlSettings>,
    pub whatsapp: Option<ChannelAccount>,
    pub ai: Option<AiConfig>,
    pub templates: Vec<Template>,
    pub training: Vec<TrainingItem>,
}

/// What to do with one part of a tenant.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    Set(T),
    Remove,
}

/// Rows to insert, update (same id) and delete.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemChanges<T, Id> {
    pub insert: Vec<T>,
    pub update: Vec<T>,
    pub delete: Vec<Id>,
}

impl<T, Id> Default for ItemChanges<T, Id> {
    fn default() -> Self {
        Self {
            insert: Vec::new(),
            update: Vec::new(),
            delete: Vec::new(),
        }
    }
}

impl<T, Id> ItemChanges<T, Id> {
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Every change one write makes to a tenant. `S` is the secret form: plaintext while
/// planning, sealed when handed to the store.
#[derive(Clone, Debug)]
pub struct Plan<S> {
    pub profile: Option<TenantProfile>,
    pub settings: Option<ControlSettings>,
    pub whatsapp: Option<Change<ChannelAccount>>,
    pub ai: Option<Change<AiConfig>>,
    pub secrets: Vec<(&'static str, Change<S>)>,
    pub templates: ItemChanges<Template, TemplateId>,
    pub training: ItemChanges<TrainingItem, TrainingItemId>,
    /// Audit entries written in the same transaction as the change.
    pub audit: Vec<super::audit::AuditEntry>,
}

impl<S> Default for Plan<S> {
    fn default() -> Self {
        Self {
            profile: None,
            settings: None,
            whatsapp: None,
            ai: None,
            secrets: Vec::new(),
            templates: ItemChanges::default(),
            training: ItemChanges::default(),
            audit: Vec::new(),
        }
    }
}

impl<S> Plan<S> {
    pub fn is_empty(&self) -> bool {
        self.profile.is_none()
            && self.settings.is_none()
            && self.whatsapp.is_none()
            && self.ai.is_none()
            && self.secrets.is_empty()
            && self.templates.is_empty()
            && self.training.is_empty()
    }

    /// Turns plaintext secrets into their stored form (sealing), keeping the rest.
    pub fn map_secrets<T>(self, mut f: impl FnMut(&'static str, S) -> T) -> Plan<T> {
        Plan {
            profile: self.profile,
            settings: self.settings,
            whatsapp: self.whatsapp,
            ai: self.ai,
            secrets: self
                .secrets
                .into_iter()
                .map(|(field, c)| {
                    let c = match c {
                        Change::Set(s) => Change::Set(f(field, s)),
                        Change::Remove => Change::Remove,
                    };
                    (field, c)
                })
                .collect(),
            templates: self.templates,
            training: self.training,
            audit: self.audit,
        }
    }

    /// One line per kind of change, for the operator (never a secret value).
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.profile.is_some() {
            out.push("profile: updated".into());
        }
        if self.settings.is_some() {
            out.push("settings: updated".into());
        }
        for (name, c) in [
            (
                "whatsapp account",
                self.whatsapp.as_ref().map(|c| matches!(c, Change::Set(_))),
            ),
            (
                "ai config",
                self.ai.as_ref().map(|c| matches!(c, Change::Set(_))),
            ),
        ] {
            match c {
                Some(true) => out.push(format!("{name}: set")),
                Some(false) => out.push(format!("{name}: removed")),
                None => {}
            }
        }
        for (field, c) in &self.secrets {
            let what = match c {
                Change::Set(_) => "set",
                Change::Remove => "removed",
            };
            out.push(format!("secret {field}: {what}"));
        }
        for (name, n) in [
            (
                "templates",
                (
                    self.templates.insert.len(),
                    self.templates.update.len(),
                    self.templates.delete.len(),
                ),
            ),
            (
                "faqs",
                (
                    self.training.insert.len(),
                    self.training.update.len(),
                    self.training.delete.len(),
                ),
            ),
        ] {
            if n != (0, 0, 0) {
                out.push(format!(
                    "{name}: {} added, {} updated, {} removed",
                    n.0, n.1, n.2
                ));
            }
        }
        out
    }
}

fn secret_eq(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret()
        .as_bytes()
        .ct_eq(b.expose_secret().as_bytes())
        .into()
}

/// Plans one secret: a given value replaces a different stored one; an absent value
/// keeps the stored one, or is an error when nothing is stored and it is required.
fn plan_secret(
    plan: &mut Plan<SecretString>,
    errors: &mut Vec<FieldError>,
    field: &'static str,
    given: Option<BundleSecret>,
    stored: &HashMap<&str, Option<SecretString>>,
    required: bool,
) {
    match (given, stored.get(field)) {
        (Some(BundleSecret(v)), Some(Some(old))) if secret_eq(&v, old) => {}
        (Some(BundleSecret(v)), _) => plan.secrets.push((field, Change::Set(v))),
        (None, Some(_)) => {}
        (None, None) if required => errors.push(FieldError {
            path: field.into(),
            message: "is required: no value is stored for this tenant yet".into(),
        }),
        (None, None) => {}
    }
}

/// Compares `desired` with the stored state. `stored_secrets` maps each stored secret
/// field to its opened value (`None` if it could not be opened).
pub fn plan(
    current: Option<&TenantState>,
    stored_secrets: &HashMap<&str, Option<SecretString>>,
    desired: ValidBundle,
) -> Result<Plan<SecretString>, BundleErrors> {
    let mut p = Plan::default();
    let mut errors = Vec::new();
    let cur_profile = current.map(|c| TenantProfile {
        slug: c.tenant.slug.clone(),
        name: c.tenant.name.clone(),
        timezone: c.tenant.timezone.clone(),
        active: c.tenant.active,
    });
    if cur_profile.as_ref() != Some(&desired.profile) {
        p.profile = Some(desired.profile);
    }
    if current.and_then(|c| c.settings.as_ref()) != Some(&desired.settings) {
        p.settings = Some(desired.settings);
    }

    use secret_field::*;
    let cur_wa = current.and_then(|c| c.whatsapp.as_ref());
    match desired.whatsapp {
        Some((account, secrets)) => {
            if cur_wa != Some(&account) {
                p.whatsapp = Some(Change::Set(account));
            }
            for (field, given) in [
                (WHATSAPP_ACCESS_TOKEN, secrets.access_token),
                (WHATSAPP_APP_SECRET, secrets.app_secret),
                (WHATSAPP_VERIFY_TOKEN, secrets.verify_token),
            ] {
                plan_secret(&mut p, &mut errors, field, given, stored_secrets, true);
            }
        }
        None => {
            if cur_wa.is_some() {
                p.whatsapp = Some(Change::Remove);
            }
            for field in [
                WHATSAPP_ACCESS_TOKEN,
                WHATSAPP_APP_SECRET,
                WHATSAPP_VERIFY_TOKEN,
            ] {
                if stored_secrets.contains_key(field) {
                    p.secrets.push((field, Change::Remove));
                }
            }
        }
    }
    let cur_ai = current.and_then(|c| c.ai.as_ref());
    match desired.ai {
        Some((ai, key)) => {
            let required = ai.provider != AiProvider::Compatible;
            if cur_ai != Some(&ai) {
                p.ai = Some(Change::Set(ai));
            }
            plan_secret(
                &mut p,
                &mut errors,
                AI_API_KEY,
                key,
                stored_secrets,
                required,
            );
        }
        None => {
            if cur_ai.is_some() {
                p.ai = Some(Change::Remove);
            }
            if stored_secrets.contains_key(AI_API_KEY) {
                p.secrets.push((AI_API_KEY, Change::Remove));
            }
        }
    }
    p.templates = plan_templates(
        current.map(|c| c.templates.as_slice()).unwrap_or(&[]),
        desired.templates,
    );
    p.training = plan_training(
        current.map(|c| c.training.as_slice()).unwrap_or(&[]),
        desired.training,
    );
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(BundleErrors(errors))
    }
}

fn plan_templates(
    current: &[Template],
    desired: Vec<TemplateSpec>,
) -> ItemChanges<Template, TemplateId> {
    let by_name: HashMap<&str, &Template> = current.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut out = ItemChanges::default();
    let mut kept = Vec::new();
    for (pos, spec) in desired.into_iter().enumerate() {
        let existing = by_name.get(spec.name.as_str()).copied();
        let t = Template {
            id: existing.map(|t| t.id).unwrap_or_default(),
            name: spec.name,
            system_prompt: spec.system_prompt,
            tone: spec.tone,
            max_response_length: spec.max_response_length,
            context_messages: spec.context_messages,
            is_default: spec.is_default,
            position: pos as i64,
        };
        match existing {
            Some(old) => {
                kept.push(old.id);
                if *old != t {
                    out.update.push(t);
                }
            }
            None => out.insert.push(t),
        }
    }
    out.delete = current
        .iter()
        .map(|t| t.id)
        .filter(|id| !kept.contains(id))
        .collect();
    out
}

fn plan_training(
    current: &[TrainingItem],
    desired: Vec<TrainingSpec>,
) -> ItemChanges<TrainingItem, TrainingItemId> {
    let by_question: HashMap<&str, &TrainingItem> =
        current.iter().map(|t| (t.question.as_str(), t)).collect();
    let mut out = ItemChanges::default();
    let mut kept = std::collections::HashSet::new();
    for (pos, spec) in desired.into_iter().enumerate() {
        let existing = by_question.get(spec.question.as_str()).copied();
        let item = TrainingItem {
            id: existing.map(|t| t.id).unwrap_or_default(),
            kind: spec.kind,
            question: spec.question,
            answer: spec.answer,
            examples: spec.examples,
            category: spec.category,
            priority: spec.priority,
            active: spec.active,
            position: pos as i64,
        };
        match existing {
            Some(old) => {
                kept.insert(old.id);
                if *old != item {
                    out.update.push(item);
                }
            }
            None => out.insert.push(item),
        }
    }
    out.delete = current
        .iter()
        .map(|t| t.id)
        .filter(|id| !kept.contains(id))
        .collect();
    out
}
