//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the route
//! table below (a test checks that every route in it is served, and that the router
//! serves no admin route missing from it).

use axum::Json;
use serde_json::{Map, Value, json};

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    Public,
    /// A tenant key with at least this role.
    Tenant(&'static str),
    Operator,
}

/// One admin route.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Whether it takes a JSON body.
    pub body: bool,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    body: bool,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        access,
        body,
    }
}

use Access::*;

/// Every admin route, in the order of the README's table.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "get",
        "/api/v1/openapi.json",
        Public,
        false,
        "This document.",
    ),
    r(
        "get",
        "/api/v1/settings",
        Tenant("viewer"),
        false,
        "The bot's control settings (the bundle's settings section).",
    ),
    r(
        "patch",
        "/api/v1/settings",
        Tenant("admin"),
        true,
        "Change settings with a JSON merge patch, e.g. {\"bot_enabled\": false}.",
    ),
    r(
        "get",
        "/api/v1/faqs",
        Tenant("viewer"),
        false,
        "FAQs and training data; ?offset=&limit= page through them.",
    ),
    r(
        "post",
        "/api/v1/faqs",
        Tenant("admin"),
        true,
        "Create one FAQ, or import several with {\"items\": [...]} (all or none).",
    ),
    r(
        "post",
        "/api/v1/faqs/import",
        Tenant("admin"),
        true,
        "Bulk import: {\"items\": [...]} as JSON, or text/csv with a header (question, answer, examples, category, priority, kind, active); matched by question; all or none.",
    ),
    r(
        "get",
        "/api/v1/faqs/export",
        Tenant("viewer"),
        false,
        "Every FAQ, re-importable: ?format=json (default) or csv.",
    ),
    r(
        "get",
        "/api/v1/templates",
        Tenant("viewer"),
        false,
        "Prompt templates (system prompt, tone, max_response_length, context_messages, is_default).",
    ),
    r(
        "post",
        "/api/v1/templates",
        Tenant("admin"),
        true,
        "Create a template; is_default: true takes that from the others.",
    ),
    r(
        "patch",
        "/api/v1/templates/{id}",
        Tenant("admin"),
        true,
        "Change a template with a JSON merge patch.",
    ),
    r(
        "delete",
        "/api/v1/templates/{id}",
        Tenant("admin"),
        false,
        "Delete a template.",
    ),
    r(
        "get",
        "/api/v1/faqs/{id}",
        Tenant("viewer"),
        false,
        "One FAQ.",
    ),
    r(
        "patch",
        "/api/v1/faqs/{id}",
        Tenant("admin"),
        true,
        "Change a FAQ with a JSON merge patch.",
    ),
    r(
        "delete",
        "/api/v1/faqs/{id}",
        Tenant("admin"),
        false,
        "Delete a FAQ.",
    ),
    r(
        "get",
        "/api/v1/conversations",
        Tenant("viewer"),
        false,
        "Conversations, newest first; ?status=bot|human&since=RFC3339&limit=.",
    ),
    r(
        "get",
        "/api/v1/conversations/{customer}/messages",
        Tenant("viewer"),
        false,
        "One conversation's messages, both directions, oldest first.",
    ),
    r(
        "get",
        "/api/v1/conversations/{customer}/decisions",
        Tenant("viewer"),
        false,
        "Why the bot did what it did with each of the customer's messages.",
    ),
    r(
        "post",
        "/api/v1/conversations/{customer}/takeover",
        Tenant("staff"),
        false,
        "A person takes the conversation over: the bot pauses, its waiting replies are cancelled.",
    ),
    r(
        "post",
        "/api/v1/conversations/{customer}/reply",
        Tenant("staff"),
        true,
        "Reply as a person {\"text\"} through the tenant's number (24-hour window rules apply).",
    ),
    r(
        "post",
        "/api/v1/conversations/{customer}/release",
        Tenant("staff"),
        false,
        "Give a conversation handled by a person back to the bot.",
    ),
    r(
        "get",
        "/api/v1/prompts/{kind}",
        Tenant("viewer"),
        false,
        "Versions and publications of the system or classifier prompt.",
    ),
    r(
        "post",
        "/api/v1/prompts/{kind}",
        Tenant("admin"),
        true,
        "Store a new version {\"body\", \"note\"}; not live until published.",
    ),
    r(
        "post",
        "/api/v1/prompts/{kind}/{version}/publish",
        Tenant("admin"),
        false,
        "Make a version live (publishing an older one rolls back).",
    ),
    r(
        "get",
        "/api/v1/credentials",
        Tenant("admin"),
        false,
        "Channel and AI credentials, masked (last 4 characters at most), with the WhatsApp token's expiry and status.",
    ),
    r(
        "put",
        "/api/v1/credentials/whatsapp",
        Tenant("owner"),
        true,
        "Write or rotate {access_token, app_secret, verify_token, token_expires_at}; left-out fields keep their value.",
    ),
    r(
        "post",
        "/api/v1/credentials/whatsapp/verify-token",
        Tenant("owner"),
        false,
        "A new random webhook verify token, shown once.",
    ),
    r(
        "put",
        "/api/v1/credentials/ai",
        Tenant("owner"),
        true,
        "Write or rotate the AI provider {api_key, model}.",
    ),
    r(
        "post",
        "/api/v1/master-keys/rotate",
        Operator,
        false,
        "Re-seal every tenant secret under the server's active master key (operator key).",
    ),
    r(
        "get",
        "/api/v1/tokens/expiring",
        Operator,
        false,
        "WhatsApp tokens expired or expiring within 7 days, across tenants (operator key).",
    ),
    r(
        "get",
        "/api/v1/usage",
        Tenant("viewer"),
        false,
        "Usage per day; ?from=&to= (dates, default the last 30 days).",
    ),
    r(
        "get",
        "/api/v1/audit",
        Tenant("admin"),
        false,
        "The audit log, newest first; ?before=RFC3339&limit=.",
    ),
    r(
        "get",
        "/api/v1/api-keys",
        Tenant("owner"),
        false,
        "The tenant's API keys (never the keys themselves).",
    ),
    r(
        "post",
        "/api/v1/api-keys",
        Tenant("owner"),
        true,
        "Create a key {\"role\", \"name\", \"expires_in_days\"}; the key is in the answer, once.",
    ),
    r(
        "delete",
        "/api/v1/api-keys/{id}",
        Tenant("owner"),
        false,
        "Revoke a key.",
    ),
    r(
        "get",
        "/api/v1/tenants",
        Operator,
        false,
        "All tenants (operator key).",
    ),
    r(
        "post",
        "/api/v1/tenants",
        Operator,
        true,
        "Create or update a tenant from a bundle (operator key).",
    ),
    r(
        "delete",
        "/api/v1/tenants/{slug}",
        Operator,
        false,
        "Delete a tenant and everything it owns (operator key).",
    ),
    r(
        "post",
        "/api/v1/tenants/{slug}/enable",
        Operator,
        false,
        "Enable a tenant (operator key).",
    ),
    r(
        "post",
        "/api/v1/tenants/{slug}/disable",
        Operator,
        false,
        "Disable a tenant: no answers, webhooks 404 (operator key).",
    ),
];

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// Builds the document from [`ROUTES`].
pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let mut op = json!({
            "summary": route.summary,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "400": error_response("Malformed request (invalid_json, invalid_query)"),
                "401": error_response("Missing, invalid, revoked or expired key, or the wrong kind of key"),
                "403": error_response("The key's role is not enough (forbidden)"),
                "404": error_response("Not found, including another tenant's resource"),
                "422": error_response("Invalid fields (validation_failed, with details)"),
                "429": error_response("Too many failed authentications"),
            },
        });
        match route.access {
            Public => {
                op["security"] = json!([]);
            }
            Tenant(role) => {
                op["security"] = json!([{"tenantKey": []}]);
                op["x-minimum-role"] = json!(role);
            }
            Operator => {
                op["security"] = json!([{"operatorKey": []}]);
            }
        }
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        if route.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(route.method.to_string(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "parley admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Tenant admins run their bot; operators manage tenants. See README, \"Admin API\"."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "tenantKey": {"type": "http", "scheme": "bearer", "description": "A tenant API key (pk_…), from `parley api-key create --tenant SLUG --role ROLE`."},
                "operatorKey": {"type": "http", "scheme": "bearer", "description": "A platform operator key (po_…), from `parley api-key create --operator`."}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message", "request_id"],
                    "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "object", "properties": {
                            "path": {"type": "string"}, "message": {"type": "string"}}}}
                    }}}}
            }
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
