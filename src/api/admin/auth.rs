//! Authentication of admin requests: `Authorization: Bearer <key>`. Tenant routes take
//! only tenant keys, operator routes only operator keys. Failed attempts are limited
//! per key prefix and per client address (429 once over the limit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use secrecy::SecretString;

use crate::admin::Actor;
use crate::api::ApiError;
use crate::app::AppState;
use crate::auth::{KeyKind, KeyProblem};
use crate::store::admin::ApiKeyRecord;

/// Failed attempts allowed per key prefix, and per client address, per window.
pub const MAX_FAILURES_PER_PREFIX: u32 = 10;
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Counts failed authentications (per process).
#[derive(Clone)]
pub struct FailureLimiter {
    counts: moka::future::Cache<String, Arc<AtomicU32>>,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self {
            counts: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FAILURE_WINDOW)
                .build(),
        }
    }
}

impl FailureLimiter {
    async fn count(&self, key: &str) -> u32 {
        self.counts
            .get(key)
            .await
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    async fn fail(&self, key: String) {
        let c = self
            .counts
            .get_with(key, async { Arc::new(AtomicU32::new(0)) })
            .await;
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request made with a valid tenant key.
pub struct TenantCaller(pub Actor);

/// A request made with a valid operator key; holds the key id.
pub struct OperatorCaller(pub uuid::Uuid);

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Reads and checks the key of `kind`; returns its stored record.
async fn authenticate(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
    kind: KeyKind,
) -> Result<ApiKeyRecord, ApiError> {
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let addr_key = format!("addr:{address}");
    let limiter = &state.auth_failures;
    if limiter.count(&addr_key).await >= MAX_FAILURES_PER_ADDRESS {
        return Err(too_many());
    }
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "missing_api_key",
                "send an API key as Authorization: Bearer <key>",
            )
        })?;
    let presented = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some((claimed, prefix)) = presented.and_then(crate::auth::parse) else {
        limiter.fail(addr_key).await;
        return Err(unauthorized("invalid_api_key", "the API key is not valid"));
    };
    let presented = SecretString::from(presented.unwrap_or_default().to_string());
    if claimed != kind {
        limiter.fail(addr_key).await;
        return Err(match kind {
            KeyKind::Tenant => unauthorized(
                "tenant_key_required",
                "this route takes a tenant API key, not an operator key",
            ),
            KeyKind::Operator => unauthorized(
                "operator_key_required",
                "this route takes an operator key, not a tenant API key",
            ),
        });
    }
    let prefix_key = format!("prefix:{prefix}");
    if limiter.count(&prefix_key).await >= MAX_FAILURES_PER_PREFIX {
        return Err(too_many());
    }
    let found = match kind {
        KeyKind::Tenant => state.store.find_tenant_key(prefix).await,
        KeyKind::Operator => state.store.find_operator_key(prefix).await,
    }
    .map_err(|e| {
        tracing::error!(error = %e, "authentication: cannot read keys");
        ApiError::unavailable("unavailable", "try again later")
    })?;
    let now = state.clock.now();
    let problem = match &found {
        Some(record) => crate::auth::check(&presented, record, now).err(),
        None => Some(KeyProblem::Unknown),
    };
    if let Some(p) = problem {
        limiter.fail(addr_key).await;
        limiter.fail(prefix_key).await;
        metrics::counter!("parley_api_auth_failures_total").increment(1);
        tracing::info!(prefix, reason = ?p, "admin API: key refused");
        return Err(match p {
            KeyProblem::Unknown => unauthorized("invalid_api_key", "the API key is not valid"),
            KeyProblem::Revoked => unauthorized("revoked_api_key", "the API key was revoked"),
            KeyProblem::Expired => unauthorized("expired_api_key", "the API key has expired"),
        });
    }
    let record = found.expect("checked above");
    if record
        .last_used_at
        .is_none_or(|t| now - t > chrono::Duration::seconds(60))
        && let Err(e) = state
            .store
            .touch_api_key(record.tenant_id, record.id, now)
            .await
    {
        tracing::warn!(error = %e, "cannot record the key's last use");
    }
    Ok(record)
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_attempts",
        "too many failed authentications; wait a minute",
    )
}

async fn authenticate_tenant(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
) -> Result<Actor, ApiError> {
    let r = authenticate(headers, extensions, state, KeyKind::Tenant).await?;
    match (r.tenant_id, r.role) {
        (Some(tenant), Some(role)) => Ok(Actor {
            tenant,
            key_id: r.id,
            role,
        }),
        _ => Err(unauthorized("invalid_api_key", "the API key is not valid")),
    }
}

/// The outcome of authenticating a tenant key, kept for the handler.
#[derive(Clone)]
struct TenantAuth(Result<Actor, ApiError>);

/// Middleware for the admin routes: a request with a tenant key is authenticated here,
/// and the rest of it runs with the database scoped to that tenant (PostgreSQL
/// row-level security), so a query that forgot its tenant finds nothing of others.
pub async fn scope_tenant_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tenant_key = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer pk_"));
    if !tenant_key {
        return next.run(req).await;
    }
    let auth = authenticate_tenant(req.headers(), req.extensions(), &state).await;
    let tenant = auth.as_ref().ok().map(|a| a.tenant);
    req.extensions_mut().insert(TenantAuth(auth));
    match tenant {
        Some(t) => crate::store::scope::with_tenant(t, next.run(req)).await,
        None => next.run(req).await,
    }
}

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(TenantAuth(done)) = parts.extensions.get::<TenantAuth>() {
            return done.clone().map(TenantCaller);
        }
        authenticate_tenant(&parts.headers, &parts.extensions, state)
            .await
            .map(TenantCaller)
    }
}

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let r = authenticate(&parts.headers, &parts.extensions, state, KeyKind::Operator).await?;
        Ok(OperatorCaller(r.id))
    }
}
