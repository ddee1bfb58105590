//! HTTP routers. Handlers are thin: extract, call one function, map to a response.

mod error;
mod health;

use axum::Router;

pub use error::ApiError;

use crate::app::AppState;

/// Every route parley serves.
pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
