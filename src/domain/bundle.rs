//! The tenant bundle: a JSON file that describes one tenant's whole configuration.
//! Parsing names the bad field; validation collects every problem before anything is
//! written.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::tenant::*;

/// A secret as it appears in a bundle. It is read into a `SecretString` at once, and
/// written out only by an explicit `export --with-secrets`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct BundleSecret(pub SecretString);

impl fmt::Debug for BundleSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BundleSecret(****)")
    }
}

impl Serialize for BundleSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

fn default_timezone() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

fn default_kind() -> String {
    "faq".into()
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The bundle file (DESIGN.md contract; extended, never renamed).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub slug: String,
    pub name: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappBundle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiBundle>,
    #[serde(default)]
    pub settings: SettingsBundle,
    #[serde(default)]
    pub templates: Vec<TemplateBundle>,
    #[serde(default)]
    pub faqs: Vec<FaqBundle>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappBundle {
    pub phone_number_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<BundleSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<BundleSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<BundleSecret>,
    #[serde(default)]
    pub token_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AiBundle {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<BundleSecret>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBundle {
    #[serde(default)]
    pub bot_enabled: Option<bool>,
    #[serde(default)]
    pub auto_reply: Option<bool>,
    #[serde(default)]
    pub ai_responses: Option<bool>,
    #[serde(default)]
    pub confidence_threshold: Option<f64>,
    #[serde(default)]
    pub fallback_text: Option<String>,
    #[serde(default)]
    pub non_text_reply: Option<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursBundle>,
    #[serde(default)]
    pub response_delay_seconds: Option<i64>,
    #[serde(default)]
    pub max_messages_per_hour: Option<i64>,
    #[serde(default)]
    pub max_messages_per_user_per_day: Option<i64>,
    #[serde(default)]
    pub escalation: Option<EscalationBundle>,
    #[serde(default)]
    pub logging: Option<LoggingBundle>,
    /// Minutes of quiet before a conversation with a person returns to the bot;
    /// 0 = only when an admin releases it. Default 240.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_idle_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_window_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_monthly_token_budget: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_template: Option<WindowTemplateBundle>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowTemplateBundle {
    pub name: String,
    pub language: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursBundle {
    pub start: String,
    pub end: String,
    #[serde(default = "default_policy")]
    pub policy: String,
}

fn default_policy() -> String {
    "defer".into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationBundle {
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingBundle {
    #[serde(default = "yes")]
    pub message_text: bool,
    #[serde(default = "yes")]
    pub decisions: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBundle {
    pub name: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_messages: Option<i64>,
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaqBundle {
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub answer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
}

/// One problem in a bundle, named by its path (`faqs[3].answer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BundleErrors(pub Vec<FieldError>);

impl fmt::Display for BundleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Secrets given for the WhatsApp account; `None` keeps what is stored.
#[derive(Debug, Default)]
pub struct WhatsappSecrets {
    pub access_token: Option<BundleSecret>,
    pub app_secret: Option<BundleSecret>,
    pub verify_token: Option<BundleSecret>,
}

/// A template before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSpec {
    pub name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub max_response_length: Option<i64>,
    pub context_messages: Option<i64>,
    pub is_default: bool,
}

/// A training item before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainingSpec {
    pub kind: TrainingKind,
    pub question: String,
    pub answer: String,
    pub examples: Vec<String>,
    pub category: Option<String>,
    pub priority: i64,
    pub active: bool,
}

/// A bundle that passed validation: the desired state of one tenant.
#[derive(Debug)]
pub struct ValidBundle {
    pub profile: TenantProfile,
    pub whatsapp: Option<(ChannelAccount, WhatsappSecrets)>,
    pub ai: Option<(AiConfig, Option<BundleSecret>)>,
    pub settings: ControlSettings,
    pub templates: Vec<TemplateSpec>,
    pub training: Vec<TrainingSpec>,
}

/// Parses bundle JSON; a type or unknown-field error names its path.
pub fn parse(json: &str) -> Result<Bundle, BundleErrors> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "bundle".into() } else { path };
        let inner = e.into_inner().to_string();
        // serde_json appends " at line L column C"; keep it, it helps find the spot.
        BundleErrors(vec![FieldError {
            path,
            message: inner,
        }])
    })
}

/// Parses and validates bundle JSON in one go.
pub fn parse_and_validate(json: &str) -> Result<ValidBundle, BundleErrors> {
    parse(json)?.validate()
}

/// Deserializes `value` as `T` (unknown fields refused), naming the failing path.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, BundleErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        BundleErrors(vec![FieldError {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }])
    })
}

/// Validates a settings section on its own (the admin API's settings resource).
pub fn validate_settings_section(s: SettingsBundle) -> Result<ControlSettings, BundleErrors> {
    let mut e = Errors::default();
    let settings = validate_settings(&mut e, s);
    if e.0.is_empty() {
        Ok(settings)
    } else {
        Err(BundleErrors(strip_prefix(e.0, "settings.")))
    }
}

/// Validates one FAQ on its own (the admin API's FAQ resource); paths are the FAQ's
/// own fields (`answer`, `examples[2]`).
pub fn validate_faq(f: FaqBundle) -> Result<TrainingSpec, BundleErrors> {
    let mut e = Errors::default();
    let mut specs = validate_faqs(&mut e, vec![f]);
    if e.0.is_empty() {
        Ok(specs.remove(0))
    } else {
        Err(BundleErrors(strip_prefix(e.0, "faqs[0].")))
    }
}

/// Validates one template on its own (the admin API's template resource).
pub fn validate_template(t: TemplateBundle) -> Result<TemplateSpec, BundleErrors> {
    let mut e = Errors::default();
    let mut specs = validate_templates(&mut e, vec![t]);
    if e.0.is_empty() {
        Ok(specs.remove(0))
    } else {
        Err(BundleErrors(strip_prefix(e.0, "templates[0].")))
    }
}

fn strip_prefix(errors: Vec<FieldError>, prefix: &str) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|f| FieldError {
            path: f.path.strip_prefix(prefix).unwrap_or(&f.path).to_string(),
            message: f.message,
        })
        .collect()
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Parses "HH:MM" or "HH:MM:SS".
pub fn parse_time_of_day(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

fn check_text(e: &mut Errors, path: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        e.add(path, "must not be empty");
    } else if value.chars().count() > max {
        e.add(path, format!("must be at most {max} characters"));
    }
}

fn check_secret(e: &mut Errors, path: &str, s: &Option<BundleSecret>) {
    if let Some(s) = s {
        let v = s.0.expose_secret();
        if v.trim().is_empty() {
            e.add(
                path,
                "must not be empty (leave it out to keep the stored value)",
            );
        } else if v.chars().any(char::is_whitespace) {
            e.add(path, "must not contain spaces or line breaks");
        }
    }
}

/// Meta's limit for a text message body.
pub const MAX_TEXT_LEN: usize = 4096;

impl Bundle {
    /// Checks every field and returns the desired tenant state, or every problem found.
    pub fn validate(self) -> Result<ValidBundle, BundleErrors> {
        let mut e = Errors::default();
        if !valid_slug(&self.slug) {
            e.add(
                "slug",
                "must be 1-63 characters of a-z, 0-9 or '-', starting with a letter or digit",
            );
        }
        check_text(&mut e, "name", &self.name, 200);
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            e.add(
                "timezone",
                format!("unknown IANA time zone {:?}", self.timezone),
            );
        }
        let whatsapp = self.whatsapp.map(|w| validate_whatsapp(&mut e, w));
        let ai = self.ai.and_then(|a| validate_ai(&mut e, a));
        let settings = validate_settings(&mut e, self.settings);
        let templates = validate_templates(&mut e, self.templates);
        let training = validate_faqs(&mut e, self.faqs);
        if !e.0.is_empty() {
            return Err(BundleErrors(e.0));
        }
        Ok(ValidBundle {
            profile: TenantProfile {
                slug: self.slug,
                name: self.name.trim().to_string(),
                timezone: self.timezone,
                active: self.active,
            },
            whatsapp,
            ai,
            settings,
            templates,
            training,
        })
    }
}

fn validate_whatsapp(e: &mut Errors, w: WhatsappBundle) -> (ChannelAccount, WhatsappSecrets) {
    if !all_digits(&w.phone_number_id) {
        e.add(
            "whatsapp.phone_number_id",
            "must be Meta's numeric phone number id (digits only)",
        );
    }
    if let Some(b) = &w.business_account_id
        && !all_digits(b)
    {
        e.add("whatsapp.business_account_id", "must be digits only");
    }
    let mps = w.messages_per_second.unwrap_or(80);
    if !(1..=1000).contains(&mps) {
        e.add("whatsapp.messages_per_second", "must be between 1 and 1000");
    }
    check_secret(e, "whatsapp.access_token", &w.access_token);
    check_secret(e, "whatsapp.app_secret", &w.app_secret);
    check_secret(e, "whatsapp.verify_token", &w.verify_token);
    (
        ChannelAccount {
            channel: Channel::Whatsapp,
            provider_account_id: w.phone_number_id,
            business_account_id: w.business_account_id,
            display_phone_number: w.display_phone_number,
            // Whole seconds: both stores keep them exactly, so a re-apply compares equal.
            token_expires_at: w
                .token_expires_at
                .map(|t| chrono::SubsecRound::trunc_subsecs(t, 0)),
            messages_per_second: mps,
        },
        WhatsappSecrets {
            access_token: w.access_token,
            app_secret: w.app_secret,
            verify_token: w.verify_token,
        },
    )
}

fn validate_ai(e: &mut Errors, a: AiBundle) -> Option<(AiConfig, Option<BundleSecret>)> {
    let Some(provider) = AiProvider::parse(&a.provider) else {
        e.add(
            "ai.provider",
            format!(
                "unknown provider {:?}; use openai, openrouter, huggingface or compatible",
                a.provider
            ),
        );
        return None;
    };
    let base_url = match (a.base_url, provider.default_base_url()) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            e.add(
                "ai.base_url",
                "is required for provider \"compatible\" (e.g. http://localhost:11434/v1 for Ollama)",
            );
            String::new()
        }
    };
    let is_http = base_url.starts_with("http://") || base_url.starts_with("https://");
    if !base_url.is_empty() && !is_http {
        e.add("ai.base_url", "must start with http:// or https://");
    }
    check_text(e, "ai.model", &a.model, 200);
    check_secret(e, "ai.api_key", &a.api_key);
    Some((
        AiConfig {
            provider,
            base_url,
            model: a.model.trim().to_string(),
        },
        a.api_key,
    ))
}

fn validate_settings(e: &mut Errors, s: SettingsBundle) -> ControlSettings {
    let d = ControlSettings::default();
    let threshold = s.confidence_threshold.unwrap_or(d.confidence_threshold);
    if !(0.0..=1.0).contains(&threshold) {
        e.add("settings.confidence_threshold", "must be between 0 and 1");
    }
    if let Some(t) = &s.fallback_text {
        check_text(e, "settings.fallback_text", t, MAX_TEXT_LEN);
    }
    if let Some(t) = &s.non_text_reply {
        check_text(e, "settings.non_text_reply", t, MAX_TEXT_LEN);
    }
    let delay = s.response_delay_seconds.unwrap_or(0);
    if !(0..=86_400).contains(&delay) {
        e.add(
            "settings.response_delay_seconds",
            "must be between 0 and 86400 (one day)",
        );
    }
    for (name, v) in [
        ("max_messages_per_hour", s.max_messages_per_hour),
        (
            "max_messages_per_user_per_day",
            s.max_messages_per_user_per_day,
        ),
    ] {
        if let Some(v) = v
            && v < 1
        {
            e.add(
                format!("settings.{name}"),
                "must be at least 1, or null for unlimited",
            );
        }
    }
    let quiet_hours = s.quiet_hours.and_then(|q| {
        let start = parse_time_of_day(&q.start);
        let end = parse_time_of_day(&q.end);
        let policy = QuietPolicy::parse(&q.policy);
        if start.is_none() {
            e.add(
                "settings.quiet_hours.start",
                "must be a time of day like \"22:00\"",
            );
        }
        if end.is_none() {
            e.add(
                "settings.quiet_hours.end",
                "must be a time of day like \"08:00\"",
            );
        }
        if policy.is_none() {
            e.add(
                "settings.quiet_hours.policy",
                "must be one of defer, reply, after_hours_message",
            );
        }
        if start.is_some() && start == end {
            e.add("settings.quiet_hours.end", "must differ from start");
        }
        Some(QuietHours {
            start: start?,
            end: end?,
            policy: policy?,
        })
    });
    let mut ack = None;
    let (categories, phone, email) = match s.escalation {
        None => (d.escalation_categories.clone(), None, None),
        Some(esc) => {
            let cats = esc.categories.unwrap_or(d.escalation_categories.clone());
            let mut out = Vec::new();
            for (i, c) in cats.iter().enumerate() {
                let c = c.trim().to_lowercase();
                if c.is_empty() {
                    e.add(
                        format!("settings.escalation.categories[{i}]"),
                        "must not be empty",
                    );
                } else if !out.contains(&c) {
                    out.push(c);
                }
            }
            if let Some(p) = &esc.phone
                && !(p.starts_with('+') && p.len() >= 9 && p.len() <= 16 && all_digits(&p[1..]))
            {
                e.add(
                    "settings.escalation.phone",
                    "must be an international number like +15551234567",
                );
            }
            if let Some(m) = &esc.email {
                let ok = m
                    .split_once('@')
                    .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.ends_with('.'));
                if !ok || m.chars().any(char::is_whitespace) {
                    e.add("settings.escalation.email", "must be an email address");
                }
            }
            if let Some(a) = &esc.acknowledgement {
                check_text(e, "settings.escalation.acknowledgement", a, MAX_TEXT_LEN);
            }
            ack = esc.acknowledgement;
            (out, esc.phone, esc.email)
        }
    };
    let idle = s
        .handoff_idle_minutes
        .unwrap_or(DEFAULT_HANDOFF_IDLE_MINUTES);
    if !(0..=43_200).contains(&idle) {
        e.add(
            "settings.handoff_idle_minutes",
            "must be between 0 (never) and 43200 (30 days)",
        );
    }
    let burst = s.burst_window_seconds.unwrap_or(0);
    if !(0..=600).contains(&burst) {
        e.add("settings.burst_window_seconds", "must be between 0 and 600");
    }
    if let Some(t) = &s.after_hours_message {
        check_text(e, "settings.after_hours_message", t, MAX_TEXT_LEN);
    }
    if let Some(b) = s.llm_monthly_token_budget
        && b < 0
    {
        e.add(
            "settings.llm_monthly_token_budget",
            "must be 0 or more, or null for unlimited",
        );
    }
    let window_template = s.window_template.map(|t| {
        if t.name.trim().is_empty() || t.name.len() > 512 {
            e.add(
                "settings.window_template.name",
                "must be an approved template's name",
            );
        }
        let lang_ok = (2..=15).contains(&t.language.len())
            && t.language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !lang_ok {
            e.add(
                "settings.window_template.language",
                "must be a language code like \"en_US\"",
            );
        }
        WindowTemplate {
            name: t.name.trim().to_string(),
            language: t.language,
        }
    });
    let logging = s.logging.unwrap_or(LoggingBundle {
        message_text: true,
        decisions: true,
    });
    ControlSettings {
        bot_enabled: s.bot_enabled.unwrap_or(d.bot_enabled),
        auto_reply: s.auto_reply.unwrap_or(d.auto_reply),
        ai_responses: s.ai_responses.unwrap_or(d.ai_responses),
        confidence_threshold: threshold,
        fallback_text: s.fallback_text.unwrap_or(d.fallback_text),
        non_text_reply: s.non_text_reply,
        quiet_hours,
        response_delay_seconds: delay,
        max_messages_per_hour: s.max_messages_per_hour,
        max_messages_per_user_per_day: s.max_messages_per_user_per_day,
        escalation_categories: categories,
        escalation_phone: phone,
        escalation_email: email,
        log_message_text: logging.message_text,
        log_decisions: logging.decisions,
        handoff_idle_minutes: (idle > 0).then_some(idle),
        burst_window_seconds: burst,
        after_hours_text: s.after_hours_message,
        escalation_ack_text: ack,
        llm_monthly_token_budget: s.llm_monthly_token_budget,
        window_template,
    }
}

fn validate_templates(e: &mut Errors, ts: Vec<TemplateBundle>) -> Vec<TemplateSpec> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut default_at: Option<usize> = None;
    let mut out = Vec::with_capacity(ts.len());
    for (i, t) in ts.into_iter().enumerate() {
        let p = format!("templates[{i}]");
        check_text(e, &format!("{p}.name"), &t.name, 100);
        check_text(e, &format!("{p}.system_prompt"), &t.system_prompt, 20_000);
        if let Some(first) = seen.insert(t.name.trim().to_lowercase(), i) {
            e.add(
                format!("{p}.name"),
                format!("duplicate of templates[{first}].name"),
            );
        }
        if let Some(m) = t.max_response_length
            && !(1..=MAX_TEXT_LEN as i64).contains(&m)
        {
            e.add(
                format!("{p}.max_response_length"),
                format!("must be between 1 and {MAX_TEXT_LEN}"),
            );
        }
        if let Some(c) = t.context_messages
            && !(0..=50).contains(&c)
        {
            e.add(format!("{p}.context_messages"), "must be between 0 and 50");
        }
        if t.is_default {
            if let Some(first) = default_at {
                e.add(
                    format!("{p}.is_default"),
                    format!("only one template can be the default (templates[{first}] is)"),
                );
            }
            default_at = Some(i);
        }
        out.push(TemplateSpec {
            name: t.name.trim().to_string(),
            system_prompt: t.system_prompt,
            tone: t.tone,
            max_response_length: t.max_response_length,
            context_messages: t.context_messages,
            is_default: t.is_default,
        });
    }
    out
}

fn validate_faqs(e: &mut Errors, fs: Vec<FaqBundle>) -> Vec<TrainingSpec> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(fs.len());
    for (i, f) in fs.into_iter().enumerate() {
        let p = format!("faqs[{i}]");
        check_text(e, &format!("{p}.question"), &f.question, 1000);
        check_text(e, &format!("{p}.answer"), &f.answer, MAX_TEXT_LEN);
        let key = f.question.trim().to_lowercase();
        if !key.is_empty()
            && let Some(first) = seen.insert(key, i)
        {
            e.add(
                format!("{p}.question"),
                format!("duplicate of faqs[{first}].question"),
            );
        }
        for (j, x) in f.examples.iter().enumerate() {
            check_text(e, &format!("{p}.examples[{j}]"), x, 1000);
        }
        if !(-1000..=1000).contains(&f.priority) {
            e.add(format!("{p}.priority"), "must be between -1000 and 1000");
        }
        let kind = TrainingKind::parse(&f.kind).unwrap_or_else(|| {
            e.add(
                format!("{p}.kind"),
                "must be one of faq, canned_reply, example",
            );
            TrainingKind::Faq
        });
        out.push(TrainingSpec {
            kind,
            question: f.question.trim().to_string(),
            answer: f.answer.trim().to_string(),
            examples: f.examples.iter().map(|x| x.trim().to_string()).collect(),
            category: f
                .category
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            priority: f.priority,
            active: f.active,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        match parse_and_validate(json) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_design_contract_example_is_valid() {
        let b = parse_and_validate(
            r#"{"slug":"t001","name":"Tenant 001","timezone":"UTC",
            "whatsapp":{"phone_number_id":"100000000000001","access_token":"tok-001","app_secret":"secret-001","verify_token":"verify-001"},
            "settings":{"confidence_threshold":0.3,"max_messages_per_hour":null,"max_messages_per_user_per_day":null},
            "faqs":[{"question":"What are your opening hours?","answer":"We open 9-17","examples":["when are you open"],"category":"Hours"}]}"#,
        )
        .unwrap();
        assert_eq!(b.profile.slug, "t001");
        assert_eq!(b.settings.confidence_threshold, 0.3);
        assert_eq!(b.settings.max_messages_per_hour, None);
        assert_eq!(b.training.len(), 1);
        assert_eq!(b.training[0].kind, TrainingKind::Faq);
    }

    #[test]
    fn orchestration_settings_are_checked_and_zero_idle_minutes_means_never() {
        let errs = errors(
            r#"{"slug":"ok","name":"N","settings":{"handoff_idle_minutes":-1,
            "burst_window_seconds":601,"llm_monthly_token_budget":-5,
            "window_template":{"name":" ","language":"en US"}}}"#,
        );
        for path in [
            "settings.handoff_idle_minutes",
            "settings.burst_window_seconds",
            "settings.llm_monthly_token_budget",
            "settings.window_template.name",
            "settings.window_template.language",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(path)), "{path}: {errs:?}");
        }
        let b =
            parse_and_validate(r#"{"slug":"ok","name":"N","settings":{"handoff_idle_minutes":0}}"#)
                .unwrap();
        assert_eq!(b.settings.handoff_idle_minutes, None);
        let d = parse_and_validate(r#"{"slug":"ok","name":"N"}"#).unwrap();
        assert_eq!(
            d.settings.handoff_idle_minutes,
            Some(DEFAULT_HANDOFF_IDLE_MINUTES)
        );
        assert_eq!(d.settings.burst_window_seconds, 0);
        assert_eq!(d.settings.window_template, None);
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let errs = errors(
            r#"{"slug":"ok","name":"N","timezone":"Mars/Base",
            "settings":{"confidence_threshold":1.5},
            "faqs":[{"question":"a","answer":"x"},{"question":"b","answer":"x"},{"question":"c","answer":"x"},{"question":"d","answer":"  "}]}"#,
        );
        assert!(
            errs.contains(&"faqs[3].answer: must not be empty".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"timezone: unknown IANA time zone \"Mars/Base\"".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"settings.confidence_threshold: must be between 0 and 1".to_string()),
            "{errs:?}"
        );
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn a_wrong_type_or_unknown_field_names_its_path() {
        let errs = errors(r#"{"slug":"ok","name":"N","settings":{"confidence_threshold":"high"}}"#);
        assert!(
            errs[0].starts_with("settings.confidence_threshold: invalid type"),
            "{errs:?}"
        );
        let errs = errors(r#"{"slug":"ok","name":"N","faqs":[{"questoin":"x"}]}"#);
        assert!(
            errs[0].starts_with(
                "faqs[0].questoin: unknown field `questoin`, expected one of `question`"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn duplicate_questions_and_two_default_templates_are_refused() {
        let errs = errors(
            r#"{"slug":"ok","name":"N","faqs":[{"question":"Hours?","answer":"a"},{"question":" hours? ","answer":"b"}],
            "templates":[{"name":"a","system_prompt":"p","is_default":true},{"name":"b","system_prompt":"p","is_default":true}]}"#,
        );
        assert!(
            errs.contains(&"faqs[1].question: duplicate of faqs[0].question".into()),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("templates[1].is_default")),
            "{errs:?}"
        );
    }

    #[test]
    fn quiet_hours_escalation_and_ai_are_checked() {
        let errs = errors(
            r#"{"slug":"ok","name":"N","ai":{"provider":"compatible","model":"llama3"},
            "settings":{"quiet_hours":{"start":"25:00","end":"08:00","policy":"sleep"},
            "escalation":{"phone":"555","email":"nobody"}}}"#,
        );
        for p in [
            "ai.base_url",
            "settings.quiet_hours.start",
            "settings.quiet_hours.policy",
            "settings.escalation.phone",
            "settings.escalation.email",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(p)),
                "{p} missing in {errs:?}"
            );
        }
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let b = parse(r#"{"slug":"ok","name":"N","whatsapp":{"phone_number_id":"1","access_token":"EAAsupersecret"}}"#)
            .unwrap();
        assert!(!format!("{b:?}").contains("EAAsupersecret"));
    }
}
