//! `GET /metrics`: Prometheus text format (counters from every part, queue depths
//! read from the database on each scrape).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (embedding): render an empty registry.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        })
        .clone()
}

pub fn router() -> Router<AppState> {
    // Installed with the routes, not at the first scrape: counters counted before it
    // would be lost.
    install();
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    // Installed before the gauges are set, so the first scrape has them too.
    let handle = install();
    if let Ok((inbound, outbound)) = state.store.queue_depths().await {
        metrics::gauge!("parley_inbox_pending").set(inbound as f64);
        metrics::gauge!("parley_outbox_pending").set(outbound as f64);
    }
    let soon = state.clock.now() + crate::admin::credentials::EXPIRY_WARNING;
    if let Ok(tokens) = state.store.token_health(None, soon).await {
        let expired = tokens.iter().filter(|t| t.status == "expired").count();
        metrics::gauge!("parley_whatsapp_tokens_expired").set(expired as f64);
        metrics::gauge!("parley_whatsapp_tokens_expiring_soon")
            .set((tokens.len() - expired) as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}
