//! Tenant administration shared by the CLI (and later the admin API): apply a bundle,
//! show, export, enable/disable, and re-seal every secret under a new master key.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::cache::{ContextError, open_secret};
use crate::crypto::{KeyRing, mask};
use crate::domain::bundle::*;
use crate::domain::plan::{self, TenantState};
use crate::domain::*;
use crate::store::{SecretRecord, Store, StoreError};

/// Why a tenant command failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Invalid(#[from] BundleErrors),
    #[error("no tenant with slug {0:?}; `parley tenant list` shows them")]
    UnknownTenant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] ContextError),
}

/// What `apply` did (or, on a dry run, would do).
#[derive(Debug)]
pub struct ApplyOutcome {
    pub tenant: Tenant,
    pub created: bool,
    /// One line per kind of change; empty when nothing changed.
    pub changes: Vec<String>,
}

fn invalid(path: &str, message: String) -> ProvisionError {
    ProvisionError::Invalid(BundleErrors(vec![FieldError {
        path: path.into(),
        message,
    }]))
}

/// Creates or updates the tenant a bundle describes. Nothing is written unless the
/// whole bundle is valid, and then everything is written in one transaction.
pub async fn apply_bundle(
    store: &dyn Store,
    keys: &KeyRing,
    json: &str,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ApplyOutcome, ProvisionError> {
    let desired = parse_and_validate(json)?;
    let existing = store.find_tenant_by_slug(&desired.profile.slug).await?;
    if let Some((account, _)) = &desired.whatsapp {
        let owner = store
            .find_tenant_by_channel_account(account.channel, &account.provider_account_id)
            .await?;
        if let Some(owner) = owner
            && Some(owner) != existing.as_ref().map(|t| t.id)
        {
            return Err(invalid(
                "whatsapp.phone_number_id",
                format!(
                    "{:?} already belongs to another tenant",
                    account.provider_account_id
                ),
            ));
        }
    }
    let (state, secrets) = match &existing {
        Some(t) => (
            store.load_tenant_state(t.id).await?,
            store.list_secrets(t.id).await?,
        ),
        None => (None, Vec::new()),
    };
    // A stored secret that cannot be opened counts as different from any given value.
    let mut opened: HashMap<&str, Option<SecretString>> = HashMap::new();
    if let Some(t) = &existing {
        for s in &secrets {
            let v = open_secret(keys, t, &secrets, &s.name).ok().flatten();
            opened.insert(s.name.as_str(), v);
        }
    }
    let plan = plan::plan(state.as_ref(), &opened, desired)?;
    let mut changes = plan.summary();
    if state.is_none() {
        // "profile: updated" says nothing on a new tenant.
        changes.retain(|c| !c.starts_with("profile:"));
    }
    if dry_run || (existing.is_some() && plan.is_empty()) {
        let tenant = match existing {
            Some(t) => t,
            None => preview_tenant(&plan, now),
        };
        return Ok(ApplyOutcome {
            created: state.is_none(),
            tenant,
            changes,
        });
    }
    let id = existing.as_ref().map(|t| t.id).unwrap_or_default();
    let sealed = plan.map_secrets(|field, v| keys.seal(id, field, &v));
    let (tenant, created) = match existing {
        Some(t) => (
            store.update_tenant(t.id, t.revision, &sealed, now).await?,
            false,
        ),
        None => (store.create_tenant(id, &sealed, now).await?, true),
    };
    Ok(ApplyOutcome {
        tenant,
        created,
        changes,
    })
}

fn preview_tenant(plan: &plan::Plan<SecretString>, now: DateTime<Utc>) -> Tenant {
    let p = plan
        .profile
        .clone()
        .expect("a new tenant's plan sets its profile");
    Tenant {
        id: TenantId::new(),
        slug: p.slug,
        name: p.name,
        timezone: p.timezone,
        active: p.active,
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Finds a tenant by slug or says how to find the right one.
pub async fn tenant_by_slug(store: &dyn Store, slug: &str) -> Result<Tenant, ProvisionError> {
    store
        .find_tenant_by_slug(slug)
        .await?
        .ok_or_else(|| ProvisionError::UnknownTenant(slug.to_string()))
}

async fn state_and_secrets(
    store: &dyn Store,
    slug: &str,
) -> Result<(TenantState, Vec<SecretRecord>), ProvisionError> {
    let t = tenant_by_slug(store, slug).await?;
    let state = store
        .load_tenant_state(t.id)
        .await?
        .ok_or_else(|| ProvisionError::UnknownTenant(slug.to_string()))?;
    let secrets = store.list_secrets(t.id).await?;
    Ok((state, secrets))
}

fn time_of_day(t: chrono::NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// The bundle that re-applies to `state`. Secrets come from `secret`, which returns
/// `None` to leave a secret out.
/// A tenant's control settings as the `settings` section of a bundle (what export
/// writes and the admin API shows).
pub fn settings_bundle(st: ControlSettings) -> SettingsBundle {
    SettingsBundle {
        bot_enabled: Some(st.bot_enabled),
        auto_reply: Some(st.auto_reply),
        ai_responses: Some(st.ai_responses),
        confidence_threshold: Some(st.confidence_threshold),
        fallback_text: Some(st.fallback_text),
        non_text_reply: st.non_text_reply,
        quiet_hours: st.quiet_hours.map(|q| QuietHoursBundle {
            start: time_of_day(q.start),
            end: time_of_day(q.end),
            policy: q.policy.as_str().into(),
        }),
        response_delay_seconds: Some(st.response_delay_seconds),
        max_messages_per_hour: st.max_messages_per_hour,
        max_messages_per_user_per_day: st.max_messages_per_user_per_day,
        escalation: Some(EscalationBundle {
            categories: Some(st.escalation_categories),
            phone: st.escalation_phone,
            email: st.escalation_email,
            acknowledgement: st.escalation_ack_text,
        }),
        logging: Some(LoggingBundle {
            message_text: st.log_message_text,
            decisions: st.log_decisions,
        }),
        handoff_idle_minutes: Some(st.handoff_idle_minutes.unwrap_or(0)),
        burst_window_seconds: Some(st.burst_window_seconds),
        after_hours_message: st.after_hours_text,
        llm_monthly_token_budget: st.llm_monthly_token_budget,
        window_template: st.window_template.map(|t| WindowTemplateBundle {
            name: t.name,
            language: t.language,
        }),
    }
}

fn to_bundle(
    state: &TenantState,
    mut secret: impl FnMut(&str) -> Result<Option<SecretString>, ContextError>,
) -> Result<Bundle, ContextError> {
    use secret_field::*;
    let mut s = |f| secret(f).map(|o| o.map(BundleSecret));
    let t = &state.tenant;
    let whatsapp = match &state.whatsapp {
        Some(a) => Some(WhatsappBundle {
            phone_number_id: a.provider_account_id.clone(),
            business_account_id: a.business_account_id.clone(),
            display_phone_number: a.display_phone_number.clone(),
            access_token: s(WHATSAPP_ACCESS_TOKEN)?,
            app_secret: s(WHATSAPP_APP_SECRET)?,
            verify_token: s(WHATSAPP_VERIFY_TOKEN)?,
            token_expires_at: a.token_expires_at,
            messages_per_second: Some(a.messages_per_second),
        }),
        None => None,
    };
    let ai = match &state.ai {
        Some(a) => Some(AiBundle {
            provider: a.provider.as_str().into(),
            base_url: Some(a.base_url.clone()),
            model: a.model.clone(),
            api_key: s(AI_API_KEY)?,
        }),
        None => None,
    };
    let st = state.settings.clone().unwrap_or_default();
    Ok(Bundle {
        slug: t.slug.clone(),
        name: t.name.clone(),
        timezone: t.timezone.clone(),
        active: t.active,
        whatsapp,
        ai,
        settings: settings_bundle(st),
        templates: state
            .templates
            .iter()
            .map(|t| TemplateBundle {
                name: t.name.clone(),
                system_prompt: t.system_prompt.clone(),
                tone: t.tone.clone(),
                max_response_length: t.max_response_length,
                context_messages: t.context_messages,
                is_default: t.is_default,
            })
            .collect(),
        faqs: state
            .training
            .iter()
            .map(|f| FaqBundle {
                question: f.question.clone(),
                answer: f.answer.clone(),
                examples: f.examples.clone(),
                category: f.category.clone(),
                priority: f.priority,
                kind: f.kind.as_str().into(),
                active: f.active,
            })
            .collect(),
    })
}

/// A bundle that re-applies to the tenant's current state; secrets only on request.
pub async fn export_bundle(
    store: &dyn Store,
    keys: &KeyRing,
    slug: &str,
    with_secrets: bool,
) -> Result<Bundle, ProvisionError> {
    let (state, secrets) = state_and_secrets(store, slug).await?;
    let bundle = to_bundle(&state, |field| {
        if with_secrets {
            open_secret(keys, &state.tenant, &secrets, field)
        } else {
            Ok(None)
        }
    })?;
    Ok(bundle)
}

/// What `tenant show` prints: the tenant's state, secrets masked.
#[derive(Serialize)]
pub struct TenantView {
    pub id: TenantId,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Each stored secret's last 4 characters at most, or why it cannot be opened.
    pub secrets: BTreeMap<String, String>,
    #[serde(flatten)]
    pub bundle: Bundle,
}

/// The tenant's state with every secret masked.
pub async fn show_tenant(
    store: &dyn Store,
    keys: &KeyRing,
    slug: &str,
) -> Result<TenantView, ProvisionError> {
    let (state, secrets) = state_and_secrets(store, slug).await?;
    let bundle = to_bundle(&state, |_| Ok(None))?;
    let masked = secrets
        .iter()
        .map(|s| {
            let shown = match keys.open(state.tenant.id, &s.name, &s.sealed) {
                Ok(v) => mask(&v),
                Err(e) => format!("(cannot open: {e})"),
            };
            (s.name.clone(), shown)
        })
        .collect();
    let t = &state.tenant;
    Ok(TenantView {
        id: t.id,
        revision: t.revision,
        created_at: t.created_at,
        updated_at: t.updated_at,
        secrets: masked,
        bundle,
    })
}

/// Result of a key rotation.
#[derive(Debug, Default)]
pub struct RotateReport {
    pub total: usize,
    pub rotated: usize,
    pub already_current: usize,
    /// One line per secret that could not be opened, naming tenant and field.
    pub failures: Vec<String>,
}

/// Re-seals every secret not yet under the active key. `progress(done, total)` is
/// called as it goes. Secrets that cannot be opened are reported, never overwritten.
pub async fn rotate_keys(
    store: &dyn Store,
    keys: &KeyRing,
    now: DateTime<Utc>,
    mut progress: impl FnMut(usize, usize),
) -> Result<RotateReport, ProvisionError> {
    let total: i64 = store
        .count_secrets_by_key()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let mut report = RotateReport {
        total: total as usize,
        ..Default::default()
    };
    let mut slugs: HashMap<TenantId, String> = HashMap::new();
    let mut after = None;
    let mut done = 0;
    loop {
        let page = store.list_all_secrets(after.clone(), 200).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.tenant_id, last.name.clone()));
        for rec in &page {
            done += 1;
            if rec.sealed.key_id == keys.active_key_id() {
                report.already_current += 1;
            } else {
                match keys.open(rec.tenant_id, &rec.name, &rec.sealed) {
                    Ok(plain) => {
                        let new = keys.seal(rec.tenant_id, &rec.name, &plain);
                        if store.replace_secret(rec, &new, now).await? {
                            report.rotated += 1;
                        } else {
                            // Changed meanwhile by an apply, which sealed it with the active key.
                            report.already_current += 1;
                        }
                    }
                    Err(e) => {
                        let slug = match slugs.get(&rec.tenant_id) {
                            Some(s) => s.clone(),
                            None => {
                                let s = store
                                    .get_tenant(rec.tenant_id)
                                    .await
                                    .map(|t| t.slug)
                                    .unwrap_or_else(|_| rec.tenant_id.to_string());
                                slugs.insert(rec.tenant_id, s.clone());
                                s
                            }
                        };
                        report
                            .failures
                            .push(format!("tenant {slug}: secret {}: {e}", rec.name));
                    }
                }
            }
            progress(done, report.total.max(done));
        }
    }
    Ok(report)
}
