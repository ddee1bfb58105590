//! The admin API under `/api/v1`: JSON in and out, `Authorization: Bearer <key>`,
//! one error shape. Tenant routes act on the caller's own tenant only (another
//! tenant's resource is simply not found); operator routes manage tenants. Handlers
//! map requests to `crate::admin` and its errors to HTTP; no SQL here.

pub mod auth;
pub mod openapi;

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

use self::auth::{OperatorCaller, TenantCaller};
use super::ApiError;
use crate::admin::{self, Admin, AdminError};
use crate::app::AppState;
use crate::domain::access::Permission;
use crate::domain::audit::AuditEntry;
use crate::domain::{Channel, TrainingItemId};
use crate::store::StoreError;
use crate::store::conversations::PROMPT_KINDS;

/// Largest admin request body (a bulk FAQ import fits; anything bigger is refused).
pub const MAX_BODY_BYTES: usize = 512 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/settings", get(get_settings).patch(patch_settings))
        .route("/api/v1/faqs", get(list_faqs).post(create_faqs))
        .route("/api/v1/faqs/import", post(import_faqs))
        .route("/api/v1/faqs/export", get(export_faqs))
        .route(
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/templates/{id}",
            axum::routing::patch(patch_template).delete(delete_template),
        )
        .route(
            "/api/v1/faqs/{id}",
            get(get_faq).patch(patch_faq).delete(delete_faq),
        )
        .route("/api/v1/conversations", get(list_conversations))
        .route(
            "/api/v1/conversations/{customer}/release",
            post(release_conversation),
        )
        .route(
            "/api/v1/conversations/{customer}/takeover",
            post(take_over_conversation),
        )
        .route(
            "/api/v1/conversations/{customer}/reply",
            post(reply_as_human),
        )
        .route(
            "/api/v1/conversations/{customer}/messages",
            get(conversation_messages),
        )
        .route(
            "/api/v1/conversations/{customer}/decisions",
            get(conversation_decisions),
        )
        .route(
            "/api/v1/prompts/{kind}",
            get(list_prompts).post(create_prompt),
        )
        .route(
            "/api/v1/prompts/{kind}/{version}/publish",
            post(publish_prompt),
        )
        .route("/api/v1/credentials", get(get_credentials))
        .route(
            "/api/v1/credentials/whatsapp",
            axum::routing::put(put_whatsapp_credentials),
        )
        .route(
            "/api/v1/credentials/whatsapp/verify-token",
            post(rotate_verify_token),
        )
        .route(
            "/api/v1/credentials/ai",
            axum::routing::put(put_ai_credentials),
        )
        .route("/api/v1/tokens/expiring", get(op_expiring_tokens))
        .route("/api/v1/master-keys/rotate", post(op_rotate_master_keys))
        .route("/api/v1/usage", get(usage))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/api-keys", get(list_keys).post(create_key))
        .route("/api/v1/api-keys/{id}", delete(revoke_key))
        .route(
            "/api/v1/tenants",
            get(op_list_tenants).post(op_apply_tenant),
        )
        .route("/api/v1/tenants/{slug}", delete(op_delete_tenant))
        .route("/api/v1/tenants/{slug}/enable", post(op_enable_tenant))
        .route("/api/v1/tenants/{slug}/disable", post(op_disable_tenant))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

// ---------------------------------------------------------------------------------
// Plumbing: the admin context, errors, bodies, query parameters.

fn ctx(state: &AppState) -> Admin<'_> {
    Admin {
        store: state.store.as_ref(),
        keys: &state.keys,
        cache: &state.cache,
        now: state.clock.now(),
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            AdminError::Forbidden { needed } => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs a key with the {} role", needed.as_str()),
            ),
            AdminError::Invalid(fields) => {
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "the request has invalid fields; see details",
                );
                err.details = Some(json!(
                    fields
                        .iter()
                        .map(|f| json!({"path": f.path, "message": f.message}))
                        .collect::<Vec<_>>()
                ));
                err
            }
            AdminError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            AdminError::Store(StoreError::Unavailable(m)) => {
                tracing::error!(error = %m, "admin API: database unavailable");
                ApiError::unavailable("unavailable", "try again later")
            }
            AdminError::Store(other) => {
                tracing::error!(error = %other, "admin API: store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong",
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AdminError::from(e).into()
    }
}

/// A JSON request body; malformed, oversized or non-JSON bodies get the error shape.
pub struct Body(pub Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(body_error(&e)),
        }
    }
}

fn body_error(e: &JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON with Content-Type: application/json",
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is not valid JSON",
        ),
    }
}

fn bad_query(name: &str, message: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("query parameter {name}: {message}"),
    );
    e.details = Some(json!([{"path": name, "message": message}]));
    e
}

/// `limit` (1..=max, default `default`) from the query.
fn limit_param(q: &HashMap<String, String>, default: i64, max: i64) -> Result<i64, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad_query("limit", &format!("must be a number from 1 to {max}"))),
    }
}

fn offset_param(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("offset") {
        None => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 1_000_000)
            .ok_or_else(|| bad_query("offset", "must be a number from 0")),
    }
}

fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<DateTime<Utc>>()
                .map_err(|_| bad_query(name, "must be an RFC 3339 time like 2026-11-22T10:00:00Z"))
        })
        .transpose()
}

fn date_param(q: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<NaiveDate>()
                .map_err(|_| bad_query(name, "must be a date like 2026-11-22"))
        })
        .transpose()
}

/// An owner-only request's body, checked for the role first (a weaker key learns
/// nothing about the body's shape) and then read as `T`.
fn owner_body<T: serde::de::DeserializeOwned>(
    actor: &admin::Actor,
    body: Value,
) -> Result<T, ApiError> {
    actor.require(Permission::ManageAccess)?;
    Ok(crate::domain::bundle::from_json_value(body).map_err(AdminError::from)?)
}

/// An id in a path; anything that is not one is simply not found.
fn path_id(s: &str, what: &'static str) -> Result<Uuid, ApiError> {
    s.parse::<Uuid>()
        .map_err(|_| AdminError::NotFound(what).into())
}

// ---------------------------------------------------------------------------------
// Settings and FAQs.

async fn get_settings(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(admin::settings::get(&ctx(&state), &actor).await?))
}

async fn patch_settings(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(patch): Body,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        admin::settings::patch(&ctx(&state), &actor, patch).await?,
    ))
}

async fn list_faqs(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&q, 100, 1000)? as usize;
    let offset = offset_param(&q)?;
    let (items, total) = admin::content::list(&ctx(&state), &actor, offset, limit).await?;
    let next = (offset + items.len() < total).then_some(offset + items.len());
    Ok(Json(
        json!({"items": items, "total": total, "next_offset": next}),
    ))
}

/// One FAQ object, or `{"items": [...]}` to import several at once (all or none).
async fn create_faqs(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let (bodies, many) = match body {
        Value::Object(mut o) if o.len() == 1 && o.contains_key("items") => {
            match o.remove("items") {
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= 1000 => {
                    (items, true)
                }
                _ => {
                    return Err(AdminError::Invalid(vec![crate::domain::bundle::FieldError {
                        path: "items".into(),
                        message: "must be a list of 1 to 1000 FAQs".into(),
                    }])
                    .into());
                }
            }
        }
        other => (vec![other], false),
    };
    let created = admin::content::create(&ctx(&state), &actor, bodies).await?;
    let body = if many {
        json!({"items": created})
    } else {
        json!(created.first())
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn get_faq(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = TrainingItemId(path_id(&id, "faq")?);
    Ok(Json(json!(
        admin::content::get(&ctx(&state), &actor, id).await?
    )))
}

async fn patch_faq(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
    Body(patch): Body,
) -> Result<Json<Value>, ApiError> {
    let id = TrainingItemId(path_id(&id, "faq")?);
    Ok(Json(json!(
        admin::content::patch(&ctx(&state), &actor, id, patch).await?
    )))
}

async fn delete_faq(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = TrainingItemId(path_id(&id, "faq")?);
    admin::content::delete(&ctx(&state), &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bulk import: `{"items": [...]}` as JSON, or CSV (`Content-Type: text/csv`) with a
/// header row. Matched by question: new ones added, known ones updated; all or none.
async fn import_faqs(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::EditBot)?;
    let kind = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = if kind.starts_with("text/csv") {
        let text = std::str::from_utf8(&body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_csv",
                "the CSV is not UTF-8",
            )
        })?;
        admin::content::from_csv(text)?
    } else if kind.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the body is not valid JSON",
            )
        })?;
        match v.get("items") {
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 5000 => items.clone(),
            _ => {
                return Err(AdminError::Invalid(vec![crate::domain::bundle::FieldError {
                    path: "items".into(),
                    message: "must be a list of 1 to 5000 FAQs".into(),
                }])
                .into());
            }
        }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json ({\"items\": [...]}) or text/csv",
        ));
    };
    let report = admin::content::import(&ctx(&state), &actor, rows).await?;
    Ok(Json(json!(report)))
}

/// Every FAQ, re-importable: `?format=json` (default) or `?format=csv`.
async fn export_faqs(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let faqs = admin::content::export(&ctx(&state), &actor).await?;
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(Json(json!({"items": faqs})).into_response()),
        Some("csv") => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            admin::content::to_csv(&faqs),
        )
            .into_response()),
        Some(_) => Err(bad_query("format", "must be json or csv")),
    }
}

async fn list_templates(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": admin::templates::list(&ctx(&state), &actor).await?}),
    ))
}

async fn create_template(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let t = admin::templates::create(&ctx(&state), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(json!(t))).into_response())
}

async fn patch_template(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
    Body(patch): Body,
) -> Result<Json<Value>, ApiError> {
    let id = crate::domain::TemplateId(path_id(&id, "template")?);
    Ok(Json(json!(
        admin::templates::patch(&ctx(&state), &actor, id, patch).await?
    )))
}

async fn delete_template(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = crate::domain::TemplateId(path_id(&id, "template")?);
    admin::templates::delete(&ctx(&state), &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------
// Conversations, prompts, usage, audit.

async fn list_conversations(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::Read)?;
    let limit = limit_param(&q, 50, 500)?;
    let status = q.get("status").map(String::as_str);
    if let Some(s) = status
        && !["bot", "human", "closed"].contains(&s)
    {
        return Err(bad_query("status", "must be bot, human or closed"));
    }
    let since = time_param(&q, "since")?;
    let rows = state
        .store
        .list_conversations(actor.tenant, status, since, limit)
        .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|c| {
            json!({
                "customer_id": c.customer_id, "channel": c.channel, "status": c.status,
                "handoff_reason": c.handoff_reason, "human_since": c.human_since,
                "last_message_at": c.last_message_at,
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn release_conversation(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(customer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::HandleConversations)?;
    let now = state.clock.now();
    let released = state
        .store
        .release_conversation(
            actor.tenant,
            Channel::Whatsapp,
            &customer,
            &actor.label(),
            now,
        )
        .await?;
    if !released {
        return Err(AdminError::NotFound("conversation").into());
    }
    Ok(Json(json!({"customer_id": customer, "status": "bot"})))
}

async fn take_over_conversation(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(customer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::HandleConversations)?;
    let now = state.clock.now();
    if !state
        .store
        .take_over_conversation(
            actor.tenant,
            Channel::Whatsapp,
            &customer,
            &actor.label(),
            now,
        )
        .await?
    {
        return Err(AdminError::NotFound("conversation").into());
    }
    Ok(Json(json!({"customer_id": customer, "status": "human"})))
}

/// A person's reply through the tenant's own channel: queued like the bot's replies
/// (same window rules), and the conversation stays with the person.
async fn reply_as_human(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(customer): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    actor.require(Permission::HandleConversations)?;
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    let only_text = body
        .as_object()
        .is_some_and(|o| o.keys().all(|k| k == "text"));
    if text.is_empty() || text.chars().count() > crate::runtime::MAX_TEXT_CHARS || !only_text {
        return Err(AdminError::Invalid(vec![crate::domain::bundle::FieldError {
            path: "text".into(),
            message: "must be 1 to 4096 characters (and the only field)".into(),
        }])
        .into());
    }
    let ctx = state
        .cache
        .get(actor.tenant)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "admin API: cannot load tenant");
            ApiError::unavailable("unavailable", "try again later")
        })?
        .ok_or(AdminError::NotFound("tenant"))?;
    let Some(wa) = &ctx.whatsapp else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "channel_not_configured",
            "the tenant has no WhatsApp account to send from",
        ));
    };
    let (phone, _user, last_inbound) = state
        .store
        .find_contact(actor.tenant, Channel::Whatsapp, &customer)
        .await?
        .ok_or(AdminError::NotFound("conversation"))?;
    let now = state.clock.now();
    let id = Uuid::now_v7();
    let reply = crate::store::messages::OutboundRecord {
        id,
        idempotency_key: format!("human:{id}"),
        provider_account_id: wa.account.provider_account_id.clone(),
        recipient_is_user_id: phone.is_none(),
        recipient: phone.unwrap_or_else(|| customer.clone()),
        body: text.to_string(),
        faq_id: None,
        mark_read_message_id: None,
        next_attempt_at: now,
        purpose: "human",
        customer_id: customer.clone(),
        window_closes_at: Some(last_inbound + crate::domain::quiet::SERVICE_WINDOW),
    };
    state
        .store
        .queue_human_reply(actor.tenant, &reply, &actor.label(), now)
        .await?;
    state.wake_sender.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message_id": id, "customer_id": customer, "state": "pending"})),
    )
        .into_response())
}

async fn conversation_messages(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(customer): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::Read)?;
    let limit = limit_param(&q, 100, 1000)?;
    let rows = state
        .store
        .list_conversation_messages(actor.tenant, Channel::Whatsapp, &customer, limit)
        .await?;
    if rows.is_empty() {
        return Err(AdminError::NotFound("conversation").into());
    }
    Ok(Json(json!({"items": rows.iter().map(|m| json!({
        "id": m.id, "direction": m.direction, "kind": m.kind, "text": m.body,
        "provider_message_id": m.provider_message_id, "state": m.state,
        "delivery_status": m.delivery_status, "faq_id": m.faq_id, "error_code": m.error_code,
        "at": m.at,
    })).collect::<Vec<_>>()})))
}

async fn conversation_decisions(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(customer): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::Read)?;
    let limit = limit_param(&q, 100, 1000)?;
    let rows = state
        .store
        .list_conversation_decisions(actor.tenant, Channel::Whatsapp, &customer, limit)
        .await?;
    Ok(Json(json!({"items": rows.iter().map(|d| json!({
        "message_id": d.inbound_message_id, "reason": d.reason, "faq_id": d.faq_id,
        "score": d.score, "detail": d.detail,
    })).collect::<Vec<_>>()})))
}

fn prompt_kind(kind: &str) -> Result<&'static str, ApiError> {
    PROMPT_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .ok_or_else(|| AdminError::NotFound("prompt kind").into())
}

async fn list_prompts(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(kind): Path<String>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::Read)?;
    let kind = prompt_kind(&kind)?;
    let versions = state.store.list_prompt_versions(actor.tenant, kind).await?;
    let pubs = state
        .store
        .list_prompt_publications(actor.tenant, kind)
        .await?;
    let live = pubs.first().map(|p| p.version);
    Ok(Json(json!({
        "kind": kind,
        "live_version": live,
        "versions": versions.iter().map(|v| json!({
            "version": v.version, "body": v.body, "note": v.note,
            "created_by": v.created_by, "created_at": v.created_at,
        })).collect::<Vec<_>>(),
        "publications": pubs.iter().map(|p| json!({
            "version": p.version, "published_by": p.published_by, "published_at": p.published_at,
        })).collect::<Vec<_>>(),
    })))
}

async fn create_prompt(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(kind): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    actor.require(Permission::EditBot)?;
    let kind = prompt_kind(&kind)?;
    let text = body.get("body").and_then(Value::as_str).unwrap_or("");
    let note = body.get("note").and_then(Value::as_str);
    let unknown: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "body" && *k != "note").collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    if text.trim().is_empty() || text.len() > 20_000 {
        problems.push(("body", "must be 1 to 20000 characters of prompt text"));
    }
    if note.is_some_and(|n| n.len() > 500) {
        problems.push(("note", "must be at most 500 characters"));
    }
    if !body.is_object() || !unknown.is_empty() {
        problems.push(("", "only body and note are accepted"));
    }
    if !problems.is_empty() {
        return Err(AdminError::Invalid(
            problems
                .into_iter()
                .map(|(p, m)| crate::domain::bundle::FieldError {
                    path: p.into(),
                    message: m.into(),
                })
                .collect(),
        )
        .into());
    }
    let now = state.clock.now();
    let v = state
        .store
        .create_prompt_version(actor.tenant, kind, text, note, &actor.label(), now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"kind": kind, "version": v.version, "live": false})),
    )
        .into_response())
}

async fn publish_prompt(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path((kind, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::EditBot)?;
    let kind = prompt_kind(&kind)?;
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::from(AdminError::NotFound("prompt version")))?;
    let now = state.clock.now();
    let p = state
        .store
        .publish_prompt_version(actor.tenant, kind, version, &actor.label(), now)
        .await?;
    state.cache.invalidate(actor.tenant).await;
    Ok(Json(
        json!({"kind": kind, "live_version": p.version, "published_by": p.published_by, "published_at": p.published_at}),
    ))
}

async fn usage(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::Read)?;
    let today = state.clock.now().date_naive();
    let to = date_param(&q, "to")?.unwrap_or(today);
    let from = date_param(&q, "from")?.unwrap_or(to - chrono::Duration::days(29));
    if from > to || (to - from).num_days() > 366 {
        return Err(bad_query(
            "from",
            "must be on or before `to`, at most 366 days apart",
        ));
    }
    let days = state.store.list_usage(actor.tenant, from, to).await?;
    let mut total = json!({"inbound": 0, "outbound": 0, "faq_answers": 0, "llm_calls": 0, "tokens_in": 0, "tokens_out": 0});
    for d in &days {
        for (k, v) in [
            ("inbound", d.inbound),
            ("outbound", d.outbound),
            ("faq_answers", d.faq_answers),
            ("llm_calls", d.llm_calls),
            ("tokens_in", d.tokens_in),
            ("tokens_out", d.tokens_out),
        ] {
            total[k] = json!(total[k].as_i64().unwrap_or(0) + v);
        }
    }
    Ok(Json(json!({
        "from": from, "to": to, "total": total,
        "days": days.iter().map(|d| json!({
            "day": d.day, "inbound": d.inbound, "outbound": d.outbound, "faq_answers": d.faq_answers,
            "llm_calls": d.llm_calls, "tokens_in": d.tokens_in, "tokens_out": d.tokens_out,
        })).collect::<Vec<_>>(),
    })))
}

async fn audit(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    actor.require(Permission::EditBot)?;
    let limit = limit_param(&q, 50, 500)?;
    let before = time_param(&q, "before")?;
    let entries = state.store.list_audit(actor.tenant, before, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.at))
        .flatten();
    Ok(Json(json!({"items": entries, "next_before": next})))
}

// ---------------------------------------------------------------------------------
// Credentials (owner writes; reads are masked).

async fn get_credentials(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(admin::credentials::get(&ctx(&state), &actor).await?))
}

async fn put_whatsapp_credentials(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = owner_body(&actor, body)?;
    Ok(Json(
        admin::credentials::put_whatsapp(&ctx(&state), &actor, body).await?,
    ))
}

async fn rotate_verify_token(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
) -> Result<Json<Value>, ApiError> {
    let token = admin::credentials::rotate_verify_token(&ctx(&state), &actor).await?;
    // Shown this once: paste it into Meta's webhook settings.
    Ok(Json(json!({"verify_token": token.expose_secret()})))
}

async fn put_ai_credentials(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = owner_body(&actor, body)?;
    Ok(Json(
        admin::credentials::put_ai(&ctx(&state), &actor, body).await?,
    ))
}

/// Re-seals every tenant secret under this server's active master key (start it with
/// the new PARLEY_MASTER_KEY and the old one in PARLEY_PREVIOUS_MASTER_KEYS first).
async fn op_rotate_master_keys(
    State(state): State<AppState>,
    OperatorCaller(op): OperatorCaller,
) -> Result<Json<Value>, ApiError> {
    let report = crate::provisioning::rotate_keys(
        state.store.as_ref(),
        &state.keys,
        state.clock.now(),
        |_, _| {},
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "operator API: key rotation failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "key rotation failed; see the server log",
        )
    })?;
    tracing::info!(operator = %op, rotated = report.rotated, failures = report.failures.len(), "master key rotation");
    Ok(Json(json!({
        "total": report.total, "rotated": report.rotated,
        "already_current": report.already_current, "failures": report.failures,
    })))
}

async fn op_expiring_tokens(
    State(state): State<AppState>,
    OperatorCaller(_): OperatorCaller,
) -> Result<Json<Value>, ApiError> {
    let soon = state.clock.now() + admin::credentials::EXPIRY_WARNING;
    let tokens = state.store.token_health(None, soon).await?;
    Ok(Json(json!({"items": tokens.iter().map(|t| json!({
        "slug": t.slug, "token_expires_at": t.expires_at, "token_status": t.status,
    })).collect::<Vec<_>>()})))
}

// ---------------------------------------------------------------------------------
// API keys (owner).

async fn list_keys(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": admin::keys::list(&ctx(&state), &actor).await?}),
    ))
}

async fn create_key(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let req: admin::keys::NewKeyRequest = owner_body(&actor, body)?;
    let (plaintext, view) = admin::keys::create(&ctx(&state), &actor, req).await?;
    let mut body = json!(view);
    // Shown this once; only its hash is stored.
    body["key"] = json!(plaintext.expose_secret());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_key(
    State(state): State<AppState>,
    TenantCaller(actor): TenantCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "api key")?;
    admin::keys::revoke(&ctx(&state), &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------
// Operator routes: tenants.

async fn op_list_tenants(
    State(state): State<AppState>,
    OperatorCaller(_): OperatorCaller,
) -> Result<Json<Value>, ApiError> {
    let tenants = state.store.list_tenants().await?;
    Ok(Json(json!({"items": tenants.iter().map(|t| json!({
        "id": t.id, "slug": t.slug, "name": t.name, "active": t.active,
        "revision": t.revision, "updated_at": t.updated_at,
    })).collect::<Vec<_>>()})))
}

/// Creates or updates a tenant from a bundle (the same JSON as `parley tenant apply`).
async fn op_apply_tenant(
    State(state): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let outcome = crate::provisioning::apply_bundle(
        state.store.as_ref(),
        &state.keys,
        &body.to_string(),
        false,
        now,
    )
    .await
    .map_err(|e| match e {
        crate::provisioning::ProvisionError::Invalid(errs) => {
            ApiError::from(AdminError::from(errs))
        }
        crate::provisioning::ProvisionError::Store(s) => ApiError::from(s),
        other => {
            tracing::error!(error = %other, "operator API: apply failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong",
            )
        }
    })?;
    state.cache.invalidate(outcome.tenant.id).await;
    if !outcome.changes.is_empty() {
        state
            .store
            .insert_audit(
                outcome.tenant.id,
                &AuditEntry::new(
                    &format!("operator:{op}"),
                    if outcome.created {
                        "tenant.create"
                    } else {
                        "tenant.apply"
                    },
                    format!("tenant:{}", outcome.tenant.slug),
                    None,
                    Some(json!({"changes": outcome.changes})),
                    now,
                ),
            )
            .await?;
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "id": outcome.tenant.id, "slug": outcome.tenant.slug, "created": outcome.created,
            "changes": outcome.changes, "revision": outcome.tenant.revision,
        })),
    )
        .into_response())
}

async fn op_set_active(
    state: &AppState,
    op: Uuid,
    slug: &str,
    active: bool,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .store
        .find_tenant_by_slug(slug)
        .await?
        .ok_or(AdminError::NotFound("tenant"))?;
    let now = state.clock.now();
    let t = state.store.set_tenant_active(t.id, active, now).await?;
    state.cache.invalidate(t.id).await;
    state
        .store
        .insert_audit(
            t.id,
            &AuditEntry::new(
                &format!("operator:{op}"),
                if active {
                    "tenant.enable"
                } else {
                    "tenant.disable"
                },
                format!("tenant:{slug}"),
                Some(json!({"active": !active})),
                Some(json!({"active": active})),
                now,
            ),
        )
        .await?;
    Ok(Json(json!({"slug": t.slug, "active": t.active})))
}

async fn op_enable_tenant(
    State(state): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    op_set_active(&state, op, &slug, true).await
}

async fn op_disable_tenant(
    State(state): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    op_set_active(&state, op, &slug, false).await
}

async fn op_delete_tenant(
    State(state): State<AppState>,
    OperatorCaller(_): OperatorCaller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = state
        .store
        .find_tenant_by_slug(&slug)
        .await?
        .ok_or(AdminError::NotFound("tenant"))?;
    state.store.delete_tenant(t.id).await?;
    state.cache.invalidate(t.id).await;
    tracing::info!(slug, "operator API: tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}
