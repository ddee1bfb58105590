//! HTTP routers. Handlers are thin: extract, call one function, map to a response.

pub mod admin;
mod error;
mod health;
pub mod metrics;
mod webhooks;

use axum::Router;

pub use error::ApiError;

use crate::app::AppState;

/// Every route parley serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(webhooks::router())
        .merge(admin::router().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::auth::scope_tenant_requests,
        )))
        .with_state(state)
}
