//! The one JSON error shape every route answers with:
//! `{"error": {"code": "…", "message": "…", "request_id": "…"}}`. Codes are stable
//! snake_case; a 5xx never carries internal text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error on its way to an HTTP client.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Per-field problems of a validation error: `[{"path", "message"}]`.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut body = json!({"error": {"code": self.code, "message": self.message, "request_id": request_id}});
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        (self.status, axum::Json(body)).into_response()
    }
}
