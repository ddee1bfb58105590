//! Provider webhooks. `POST /webhooks/whatsapp/{slug}`: the signature is checked over
//! the raw bytes with the tenant's app secret before anything is parsed; every message
//! and status is stored in one transaction before the 200 (503 if the database cannot
//! take it, so Meta retries). `GET` on the same path answers Meta's verification.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::store::conversations::HumanReply;

use super::ApiError;
use crate::app::AppState;
use crate::cache::TenantContext;
use crate::channels::whatsapp;
use crate::domain::Channel;
use crate::store::messages::{InboundRecord, StatusRecord};

/// Meta sends at most 3 MB; a little room above that.
pub const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/whatsapp/{slug}",
            get(verify_whatsapp).post(receive_whatsapp),
        )
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

fn count(outcome: &'static str) {
    metrics::counter!("parley_webhooks_total", "channel" => "whatsapp", "outcome" => outcome)
        .increment(1);
}

fn not_found() -> ApiError {
    count("unknown_tenant");
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found")
}

/// The tenant behind `slug`, if it exists, is active and has WhatsApp set up.
async fn tenant(state: &AppState, slug: &str) -> Result<Arc<TenantContext>, ApiError> {
    match state.cache.get_by_slug(slug).await {
        Ok(Some(ctx)) if ctx.tenant.active && ctx.whatsapp.is_some() => Ok(ctx),
        Ok(_) => Err(not_found()),
        Err(e) => {
            count("unavailable");
            tracing::error!(slug, error = %e, "webhook: cannot load tenant");
            Err(ApiError::unavailable("unavailable", "try again later"))
        }
    }
}

async fn verify_whatsapp(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ctx = tenant(&state, &slug).await?;
    let wa = ctx.whatsapp.as_ref().expect("checked by tenant()");
    let (Some(mode), Some(token), Some(challenge)) = (
        q.get("hub.mode"),
        q.get("hub.verify_token"),
        q.get("hub.challenge"),
    ) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_parameters",
            "hub.mode, hub.verify_token and hub.challenge are required",
        ));
    };
    let ok: bool = token
        .as_bytes()
        .ct_eq(wa.verify_token.expose_secret().as_bytes())
        .into();
    if mode != "subscribe" || !ok {
        tracing::warn!(
            slug,
            "webhook verification refused: wrong verify token or mode"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_verify_token",
            "verification refused",
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain")], challenge.clone()).into_response())
}

async fn receive_whatsapp(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            count("too_large");
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body exceeds 4 MiB",
            )
        } else {
            count("bad_body");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the body could not be read",
            )
        }
    })?;
    let ctx = tenant(&state, &slug).await?;
    let wa = ctx.whatsapp.as_ref().expect("checked by tenant()");
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !whatsapp::verify_signature(wa.app_secret.expose_secret().as_bytes(), &body, signature) {
        count("bad_signature");
        tracing::warn!(
            slug,
            has_header = signature.is_some(),
            "webhook refused: bad signature"
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "signature check failed",
        ));
    }
    let batch = whatsapp::parse_webhook(&body).map_err(|e| {
        count("bad_payload");
        tracing::warn!(slug, error = %e, "webhook refused: malformed payload");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "the body is not a WhatsApp webhook",
        )
    })?;
    let account = &wa.account.provider_account_id;
    let now = state.clock.now();
    let tenant_id = ctx.tenant.id;
    let mut foreign = 0usize;
    let messages: Vec<InboundRecord> = batch
        .messages
        .into_iter()
        .filter(|m| {
            let mine = &m.provider_account_id == account;
            foreign += usize::from(!mine);
            mine
        })
        .map(|message| InboundRecord {
            tenant_id,
            id: Uuid::now_v7(),
            channel: Channel::Whatsapp,
            message,
            received_at: now,
        })
        .collect();
    let statuses: Vec<StatusRecord> = batch
        .statuses
        .into_iter()
        .filter(|s| {
            let mine = &s.provider_account_id == account;
            foreign += usize::from(!mine);
            mine
        })
        .map(|status| StatusRecord {
            tenant_id,
            status,
            received_at: now,
        })
        .collect();
    if foreign > 0 {
        metrics::counter!("parley_webhook_foreign_events_total").increment(foreign as u64);
        tracing::warn!(
            slug,
            foreign,
            "webhook carried events for another phone number id; not processed as this tenant"
        );
    }
    for (acct, err) in &batch.errors {
        tracing::warn!(slug, account = %acct, code = err.code, "WhatsApp reported an error in a webhook");
    }
    for echo in batch.echoes.iter().filter(|e| &e.account == account) {
        // Rare, and it changes who answers: stored before the 200 like the rest.
        let at = chrono::DateTime::from_timestamp(echo.timestamp, 0)
            .filter(|t| *t <= now && echo.timestamp > 0)
            .unwrap_or(now);
        let reply = HumanReply {
            tenant_id,
            channel: Channel::Whatsapp,
            customer_id: echo.customer_id.clone(),
            provider_account_id: echo.account.clone(),
            provider_message_id: echo
                .provider_message_id
                .clone()
                .unwrap_or_else(|| format!("echo:{}:{}", echo.customer_id, echo.timestamp)),
            body: echo.text.clone(),
            at,
        };
        let cancelled = state.store.record_human_reply(&reply).await.map_err(|e| {
            count("unavailable");
            tracing::error!(slug, error = %e, "webhook: cannot record the business's own reply");
            ApiError::unavailable("unavailable", "try again later")
        })?;
        metrics::counter!("parley_handoffs_total", "reason" => "business_replied").increment(1);
        tracing::info!(
            slug,
            cancelled,
            "the business answered from its own app; the bot pauses"
        );
    }
    if messages.is_empty() && statuses.is_empty() {
        count("empty");
        return Ok(StatusCode::OK);
    }
    let tenant = Some(ctx.clone());
    state
        .ingest
        .store(messages, statuses, tenant)
        .await
        .map_err(|_| {
            count("unavailable");
            ApiError::unavailable("unavailable", "try again later")
        })?;
    count("stored");
    Ok(StatusCode::OK)
}
