//! The admin API and the wall around it, on both backends: the contract routes work
//! for the right key, and an attack suite walks every route with the wrong tenant's
//! key, too weak a role, revoked, expired and wrong-kind keys, oversized, malformed and
//! hostile input — each answered with the error shape and nothing changed.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use common::{Db, TestApp, TestDb, bundle, key_ring};
use parley::api::admin::openapi::{Access, ROUTES};
use parley::crypto::KeyRing;
use parley::domain::access::Role;
use parley::provisioning::apply_bundle;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const ROLES: [Role; 4] = [Role::Viewer, Role::Staff, Role::Admin, Role::Owner];

struct World {
    db: TestDb,
    app: TestApp,
    /// keys[slug][role]
    keys: HashMap<(String, Role), String>,
    operator: String,
    http: reqwest::Client,
    _ring: Arc<KeyRing>,
}

impl World {
    async fn new(kind: Db) -> Option<World> {
        let db = TestDb::new(kind).await?;
        let (ring, _) = key_ring();
        let ring = Arc::new(ring);
        let store = db.store().await;
        let mut keys = HashMap::new();
        for (slug, pnid) in [("acme", "100000000000001"), ("bolt", "100000000000002")] {
            let b = bundle(slug, pnid, &format!("EAAG-{slug}-token-secret-0001"));
            let t = apply_bundle(store.as_ref(), &ring, &b.to_string(), false, Utc::now())
                .await
                .unwrap()
                .tenant;
            for role in ROLES {
                let (k, _) = parley::admin::keys::issue(
                    store.as_ref(),
                    t.id,
                    role,
                    "test",
                    "test",
                    None,
                    Utc::now(),
                )
                .await
                .unwrap();
                keys.insert((slug.to_string(), role), k.expose_secret().to_string());
            }
        }
        let op = parley::auth::new_operator_key("ops", "test", None, Utc::now());
        store.insert_api_key(&op.record, None).await.unwrap();
        let app = TestApp::spawn(&db, ring.clone(), "http://127.0.0.1:9/v25.0").await;
        Some(World {
            db,
            app,
            keys,
            operator: op.plaintext.expose_secret().to_string(),
            http: reqwest::Client::new(),
            _ring: ring,
        })
    }

    fn key(&self, slug: &str, role: Role) -> &str {
        &self.keys[&(slug.to_string(), role)]
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(m, self.app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Calls and checks the refusal: its status and the error shape with `code`.
    async fn expect_error(
        &self,
        (method, path, key, body): (&str, &str, Option<&str>, Option<Value>),
        status: u16,
        code: &str,
    ) -> Value {
        let (s, r) = self.call(method, path, key, body).await;
        assert_eq!(s, status, "{method} {path}: {r}");
        assert_error_shape(s, &r, code);
        r
    }

    async fn faq_ids(&self, slug: &str) -> Vec<String> {
        let (s, body) = self
            .call(
                "get",
                "/api/v1/faqs",
                Some(self.key(slug, Role::Viewer)),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Everything of tenant `slug` an attack could change, as one JSON value.
    async fn snapshot(&self, slug: &str) -> Value {
        let k = self.key(slug, Role::Owner).to_string();
        let (_, settings) = self.call("get", "/api/v1/settings", Some(&k), None).await;
        let (_, faqs) = self.call("get", "/api/v1/faqs", Some(&k), None).await;
        let (_, prompts) = self
            .call("get", "/api/v1/prompts/system", Some(&k), None)
            .await;
        let (_, keys) = self.call("get", "/api/v1/api-keys", Some(&k), None).await;
        let revoked: Vec<Value> = keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["revoked_at"].clone())
            .collect();
        json!({"settings": settings, "faqs": faqs, "prompts": prompts, "revoked": revoked})
    }
}

fn assert_error_shape(status: u16, body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "status {status}: {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");
}

/// Fills a route's path parameters with real ids of tenant `slug`'s own resources.
async fn concrete_path(w: &World, path: &str, slug: &str) -> String {
    let faq = w.faq_ids(slug).await.remove(0);
    path.replace("{id}", &faq)
        .replace("{customer}", "15550001111")
        .replace("{kind}", "system")
        .replace("{version}", "1")
        .replace("{slug}", slug)
}

// -------------------------------------------------------------------------------------

async fn the_contract_routes_work_and_every_write_is_audited(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let admin = w.key("acme", Role::Admin).to_string();
    let (s, settings) = w.call("get", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(s, 200);
    assert_eq!(settings["bot_enabled"], true);
    let (s, patched) = w
        .call(
            "patch",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"bot_enabled": false, "quiet_hours": null})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["bot_enabled"], false);
    assert!(patched.get("quiet_hours").is_none_or(Value::is_null));
    let (_, again) = w.call("get", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(again, patched);

    let (s, created) = w
        .call(
            "post",
            "/api/v1/faqs",
            Some(&admin),
            Some(json!({"question": "Do you rent e-bikes?", "answer": "Yes, 25 EUR a day."})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (s, one) = w
        .call("get", &format!("/api/v1/faqs/{id}"), Some(&admin), None)
        .await;
    assert_eq!(
        (s, one["answer"].as_str()),
        (200, Some("Yes, 25 EUR a day."))
    );
    let (s, changed) = w
        .call(
            "patch",
            &format!("/api/v1/faqs/{id}"),
            Some(&admin),
            Some(json!({"answer": "Yes, 20 EUR a day."})),
        )
        .await;
    assert_eq!(
        (s, changed["answer"].as_str()),
        (200, Some("Yes, 20 EUR a day."))
    );
    let (s, _) = w
        .call("delete", &format!("/api/v1/faqs/{id}"), Some(&admin), None)
        .await;
    assert_eq!(s, 204);
    let (s, gone) = w
        .call("get", &format!("/api/v1/faqs/{id}"), Some(&admin), None)
        .await;
    assert_eq!(s, 404);
    assert_error_shape(s, &gone, "not_found");

    let (s, bulk) = w
        .call(
            "post",
            "/api/v1/faqs",
            Some(&admin),
            Some(json!({"items": [
            {"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "answer": "A2"}]})),
        )
        .await;
    assert_eq!((s, bulk["items"].as_array().map(Vec::len)), (201, Some(2)));

    let (s, convs) = w
        .call(
            "get",
            "/api/v1/conversations?status=human",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, convs["items"].as_array().map(Vec::len)), (200, Some(0)));

    let (s, v) = w
        .call(
            "post",
            "/api/v1/prompts/system",
            Some(&admin),
            Some(json!({"body": "Be brief, {business_name}.", "note": "v1"})),
        )
        .await;
    assert_eq!((s, v["version"].as_i64()), (201, Some(1)));
    let (s, p) = w
        .call(
            "post",
            "/api/v1/prompts/system/1/publish",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, p["live_version"].as_i64()), (200, Some(1)));

    let (s, audit) = w
        .call("get", "/api/v1/audit?limit=50", Some(&admin), None)
        .await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "settings.update",
        "faq.create",
        "faq.update",
        "faq.delete",
        "prompt.create",
        "prompt.publish",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let update = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "settings.update")
        .unwrap();
    assert_eq!(update["before"]["bot_enabled"], true);
    assert_eq!(update["after"]["bot_enabled"], false);
    assert!(update["actor"].as_str().unwrap().starts_with("key:"));

    let (s, usage) = w.call("get", "/api/v1/usage", Some(&admin), None).await;
    assert_eq!((s, usage["total"]["inbound"].as_i64()), (200, Some(0)));

    // The bot really is off: the running app's cache was invalidated.
    let t = w
        .app
        .state
        .store
        .find_tenant_by_slug("acme")
        .await
        .unwrap()
        .unwrap();
    let ctx = w.app.state.cache.get(t.id).await.unwrap().unwrap();
    assert!(!ctx.settings.bot_enabled);
}

async fn another_tenants_key_finds_nothing_and_changes_nothing_on_any_route(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    // bolt has a prompt version and a conversation-free state; acme's owner attacks it.
    let bolt_owner = w.key("bolt", Role::Owner).to_string();
    w.call(
        "post",
        "/api/v1/prompts/system",
        Some(&bolt_owner),
        Some(json!({"body": "bolt's prompt"})),
    )
    .await;
    let (_, bolt_keys) = w
        .call("get", "/api/v1/api-keys", Some(&bolt_owner), None)
        .await;
    let bolt_key_id = bolt_keys["items"][0]["id"].as_str().unwrap().to_string();
    let before = w.snapshot("bolt").await;
    let attacker = w.key("acme", Role::Owner).to_string();
    let bolt_faq = w.faq_ids("bolt").await.remove(0);
    for (method, path, body) in [
        ("get", format!("/api/v1/faqs/{bolt_faq}"), None),
        (
            "patch",
            format!("/api/v1/faqs/{bolt_faq}"),
            Some(json!({"answer": "pwned"})),
        ),
        ("delete", format!("/api/v1/faqs/{bolt_faq}"), None),
        ("delete", format!("/api/v1/api-keys/{bolt_key_id}"), None),
        ("post", "/api/v1/prompts/system/1/publish".to_string(), None),
    ] {
        let (s, resp) = w.call(method, &path, Some(&attacker), body).await;
        assert_eq!(s, 404, "{method} {path}: {resp}");
        assert_error_shape(s, &resp, "not_found");
    }
    // Lists only ever show the caller's own tenant.
    let (_, faqs) = w.call("get", "/api/v1/faqs", Some(&attacker), None).await;
    assert!(!faqs.to_string().contains("(bolt)"), "{faqs}");
    assert_eq!(w.snapshot("bolt").await, before, "bolt is unchanged");
}

async fn each_role_is_refused_what_it_may_not_do_on_every_route(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let before = w.snapshot("acme").await;
    let mut checked = 0;
    for route in ROUTES {
        let Access::Tenant(min) = route.access else {
            continue;
        };
        let min = Role::parse(min).unwrap();
        let path = concrete_path(&w, route.path, "acme").await;
        for role in ROLES.into_iter().filter(|r| *r < min) {
            let body = route
                .body
                .then(|| json!({"role": "viewer", "body": "x", "answer": "x"}));
            let (s, resp) = w
                .call(route.method, &path, Some(w.key("acme", role)), body)
                .await;
            assert_eq!(s, 403, "{role:?} on {} {path}: {resp}", route.method);
            assert_error_shape(s, &resp, "forbidden");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} refusals checked");
    assert_eq!(w.snapshot("acme").await, before, "nothing changed");
}

async fn missing_bad_revoked_expired_and_wrong_kind_keys_are_refused(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    w.expect_error(
        ("get", "/api/v1/settings", None, None),
        401,
        "missing_api_key",
    )
    .await;
    for junk in [
        "nope",
        "pk_' OR 1=1 --_aaaaaaaaaaaaaaaaaaaaaaaa",
        "pk_abcdefghijkm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (s, r) = w.call("get", "/api/v1/settings", Some(junk), None).await;
        assert_eq!(s, 401, "{junk}");
        assert_error_shape(s, &r, "invalid_api_key");
    }
    // Operator routes refuse tenant keys, tenant routes refuse operator keys.
    w.expect_error(
        (
            "get",
            "/api/v1/tenants",
            Some(w.key("acme", Role::Owner)),
            None,
        ),
        401,
        "operator_key_required",
    )
    .await;
    w.expect_error(
        ("get", "/api/v1/settings", Some(&w.operator), None),
        401,
        "tenant_key_required",
    )
    .await;
    let (s, r) = w
        .call("get", "/api/v1/tenants", Some(&w.operator), None)
        .await;
    assert_eq!((s, r["items"].as_array().map(Vec::len)), (200, Some(2)));

    // A revoked key stops working at once.
    let owner = w.key("acme", Role::Owner).to_string();
    let (s, created) = w
        .call(
            "post",
            "/api/v1/api-keys",
            Some(&owner),
            Some(json!({"role": "viewer", "name": "temp"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let temp = created["key"].as_str().unwrap().to_string();
    assert!(temp.starts_with("pk_"));
    assert_eq!(
        w.call("get", "/api/v1/settings", Some(&temp), None).await.0,
        200
    );
    let (_, listed) = w.call("get", "/api/v1/api-keys", Some(&owner), None).await;
    assert!(
        !listed.to_string().contains(&temp),
        "a listing never shows a key"
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        w.call(
            "delete",
            &format!("/api/v1/api-keys/{id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        204
    );
    w.expect_error(
        ("get", "/api/v1/settings", Some(&temp), None),
        401,
        "revoked_api_key",
    )
    .await;

    // An expired key.
    let t = w
        .app
        .state
        .store
        .find_tenant_by_slug("acme")
        .await
        .unwrap()
        .unwrap();
    let past = Utc::now() - chrono::Duration::minutes(1);
    let (expired, _) = parley::admin::keys::issue(
        w.app.state.store.as_ref(),
        t.id,
        Role::Owner,
        "old",
        "test",
        Some(past),
        Utc::now(),
    )
    .await
    .unwrap();
    w.expect_error(
        (
            "get",
            "/api/v1/settings",
            Some(expired.expose_secret()),
            None,
        ),
        401,
        "expired_api_key",
    )
    .await;
}

async fn hostile_and_malformed_input_gets_the_error_shape_and_changes_nothing(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let admin = w.key("acme", Role::Admin).to_string();
    let before = w.snapshot("acme").await;
    // Wrong types and bad values: 422 with the failing paths.
    let (s, r) = w
        .call(
            "patch",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"confidence_threshold": "high"})),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert_error_shape(s, &r, "validation_failed");
    assert_eq!(r["error"]["details"][0]["path"], "confidence_threshold");
    let (s, r) = w
        .call(
            "patch",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"confidence_threshold": 7, "quiet_hours": {"start": "25:00", "end": "x"}})),
        )
        .await;
    assert_eq!(s, 422);
    let paths: Vec<&str> = r["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"confidence_threshold") && paths.contains(&"quiet_hours.start"),
        "{paths:?}"
    );
    let (s, r) = w
        .call(
            "patch",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"confidence_treshold": 0.5})),
        )
        .await;
    assert_eq!(s, 422, "an unknown field is named, not ignored: {r}");
    let (s, r) = w
        .call(
            "post",
            "/api/v1/faqs",
            Some(&admin),
            Some(json!({"items": [
        {"question": "Fine?", "answer": "yes"}, {"question": "", "answer": 5}]})),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"]["details"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("[1]"),
        "{r}"
    );
    // Malformed JSON, wrong content type, oversized body.
    let url = w.app.url("/api/v1/settings");
    let resp = w
        .http
        .patch(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"bot_enabled\": tru")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_error_shape(400, &resp.json().await.unwrap(), "invalid_json");
    let resp = w
        .http
        .patch(&url)
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("bot_enabled=false")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let big = json!({"fallback_text": "x".repeat(700 * 1024)});
    let resp = w
        .http
        .patch(&url)
        .bearer_auth(&admin)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_error_shape(413, &resp.json().await.unwrap(), "payload_too_large");
    // SQL-looking input in paths and queries is only ever data.
    let (s, r) = w
        .call("get", "/api/v1/faqs/1'%20OR%20'1'='1", Some(&admin), None)
        .await;
    assert_eq!(s, 404, "{r}");
    let (s, r) = w
        .call(
            "get",
            "/api/v1/conversations?limit=1;DROP%20TABLE%20tenants",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 400);
    assert_error_shape(s, &r, "invalid_query");
    let (s, r) = w
        .call(
            "get",
            "/api/v1/conversations?status=human'%20OR%201=1--",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(w.snapshot("acme").await, before, "nothing changed");
    // Stored literally when it is a legitimate value.
    let sneaky = "'; DROP TABLE tenants; --";
    let (s, r) = w
        .call(
            "post",
            "/api/v1/faqs",
            Some(&admin),
            Some(json!({"question": sneaky, "answer": "ok"})),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["question"], sneaky);
    assert_eq!(w.db.count("SELECT COUNT(*) FROM tenants").await, 2);
}

async fn no_secret_appears_in_any_response_audit_entry_or_log_line(kind: Db) {
    common::logs::captured();
    let Some(w) = World::new(kind).await else {
        return;
    };
    let owner = w.key("acme", Role::Owner).to_string();
    let admin = w.key("acme", Role::Admin).to_string();
    w.call(
        "patch",
        "/api/v1/settings",
        Some(&admin),
        Some(json!({"auto_reply": false})),
    )
    .await;
    let (_, created) = w
        .call(
            "post",
            "/api/v1/api-keys",
            Some(&owner),
            Some(json!({"role": "staff"})),
        )
        .await;
    let new_key = created["key"].as_str().unwrap().to_string();
    let mut seen = String::new();
    for (path, key) in [
        ("/api/v1/settings", &owner),
        ("/api/v1/faqs", &owner),
        ("/api/v1/api-keys", &owner),
        ("/api/v1/audit", &owner),
        ("/api/v1/prompts/system", &owner),
        ("/api/v1/usage", &owner),
        ("/api/v1/openapi.json", &owner),
    ] {
        let (s, body) = w.call("get", path, Some(key), None).await;
        assert_eq!(s, 200, "{path}");
        seen.push_str(&body.to_string());
    }
    let (_, tenants) = w
        .call("get", "/api/v1/tenants", Some(&w.operator), None)
        .await;
    seen.push_str(&tenants.to_string());
    for secret in [
        "EAAG-acme-token-secret-0001",
        "appsecret-acme-0123456789",
        "verify-acme-0123456789",
        "sk-or-acme-abcdefghijklmnop",
        new_key.as_str(),
        owner.as_str(),
    ] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    // Failed and successful authentications, credential writes: none logs a secret.
    w.call("get", "/api/v1/settings", Some(&format!("{owner}x")), None)
        .await;
    w.call(
        "put",
        "/api/v1/credentials/whatsapp",
        Some(&owner),
        Some(json!({"access_token": "EAAG-acme-logged-token-4321"})),
    )
    .await;
    let logs = common::logs::text();
    assert!(
        logs.contains("admin API: key refused"),
        "debug logs were captured"
    );
    for secret in [
        new_key.as_str(),
        owner.as_str(),
        "EAAG-acme-logged-token-4321",
        "EAAG-acme-token-secret-0001",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    // Keys are stored hashed.
    let plain =
        w.db.count(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE hash = '{new_key}' OR prefix = '{new_key}'"
        ))
        .await;
    assert_eq!(plain, 0);
}

async fn repeated_failed_authentication_is_throttled(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let real = w.key("acme", Role::Viewer).to_string();
    let (prefix_part, _) = real.rsplit_once('_').unwrap();
    let guess = format!("{prefix_part}_{}", "A".repeat(43));
    for _ in 0..10 {
        assert_eq!(
            w.call("get", "/api/v1/settings", Some(&guess), None)
                .await
                .0,
            401
        );
    }
    w.expect_error(
        ("get", "/api/v1/settings", Some(&guess), None),
        429,
        "too_many_failed_attempts",
    )
    .await;
    // Another tenant's key from the same address still works (below the address limit).
    assert_eq!(
        w.call(
            "get",
            "/api/v1/settings",
            Some(w.key("bolt", Role::Viewer)),
            None
        )
        .await
        .0,
        200
    );
}

async fn the_openapi_document_lists_every_route_and_every_route_is_served(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let (s, doc) = w.call("get", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for route in ROUTES {
        assert!(
            doc["paths"][route.path][route.method].is_object(),
            "{} {} missing",
            route.method,
            route.path
        );
        if matches!(route.access, Access::Public) {
            continue;
        }
        let path = concrete_path(&w, route.path, "acme").await;
        let (s, r) = w.call(route.method, &path, None, None).await;
        assert_eq!(
            s, 401,
            "{} {path} is not served behind authentication: {r}",
            route.method
        );
    }
}

async fn operators_create_disable_and_delete_tenants(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let op = w.operator.clone();
    let b = bundle("cargo", "100000000000003", "EAAG-cargo-token-0001");
    let (s, r) = w
        .call("post", "/api/v1/tenants", Some(&op), Some(b.clone()))
        .await;
    assert_eq!((s, r["created"].as_bool()), (201, Some(true)), "{r}");
    let (s, r) = w.call("post", "/api/v1/tenants", Some(&op), Some(b)).await;
    assert_eq!(
        (s, r["changes"].as_array().map(Vec::len)),
        (200, Some(0)),
        "re-applying changes nothing"
    );
    w.expect_error(
        (
            "post",
            "/api/v1/tenants",
            Some(&op),
            Some(json!({"slug": "Bad Slug!"})),
        ),
        422,
        "validation_failed",
    )
    .await;
    let (s, r) = w
        .call("post", "/api/v1/tenants/cargo/disable", Some(&op), None)
        .await;
    assert_eq!((s, r["active"].as_bool()), (200, Some(false)));
    assert_eq!(
        w.call("delete", "/api/v1/tenants/cargo", Some(&op), None)
            .await
            .0,
        204
    );
    assert_eq!(
        w.call("delete", "/api/v1/tenants/cargo", Some(&op), None)
            .await
            .0,
        404
    );
    assert_eq!(w.db.count("SELECT COUNT(*) FROM tenants").await, 2);
    // Re-sealing under the active key: everything is current already, nothing fails.
    let (s, r) = w
        .call("post", "/api/v1/master-keys/rotate", Some(&op), None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["total"].as_u64().unwrap() >= 8, "{r}");
    assert_eq!(
        (
            r["rotated"].as_u64(),
            r["failures"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (s, _) = w
        .call(
            "post",
            "/api/v1/master-keys/rotate",
            Some(w.key("acme", Role::Owner)),
            None,
        )
        .await;
    assert_eq!(s, 401);
}

async fn a_write_through_one_instance_reaches_the_other_instances_cache(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let mut config = common::test_config(&w.db.url);
    // PostgreSQL: no revision poll at all, so only LISTEN/NOTIFY can tell the second
    // instance. SQLite (one file, two processes): the one-second revision poll.
    if kind == Db::Postgres {
        config.cache_sync_interval = std::time::Duration::from_secs(3600);
    }
    let second = TestApp::spawn_with(&w.db, w._ring.clone(), config).await;
    let t = w
        .app
        .state
        .store
        .find_tenant_by_slug("acme")
        .await
        .unwrap()
        .unwrap();
    let cached = second.state.cache.get(t.id).await.unwrap().unwrap();
    assert!(cached.settings.bot_enabled);
    // Let the second instance's listener connect before the change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, _) = w
        .call(
            "patch",
            "/api/v1/settings",
            Some(w.key("acme", Role::Admin)),
            Some(json!({"bot_enabled": false})),
        )
        .await;
    assert_eq!(s, 200);
    let mut seen = true;
    for _ in 0..60 {
        seen = second
            .state
            .cache
            .get(t.id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .bot_enabled;
        if !seen {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!seen, "the second instance still serves the old settings");
    second.stop().await;
}

async fn owners_rotate_credentials_that_are_never_read_back(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let owner = w.key("acme", Role::Owner).to_string();
    let soon = (Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let (s, r) = w
        .call(
            "put",
            "/api/v1/credentials/whatsapp",
            Some(&owner),
            Some(json!({"access_token": "EAAG-acme-rotated-token-9876", "token_expires_at": soon})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["whatsapp"]["access_token"], "****9876");
    assert_eq!(r["whatsapp"]["token_expires_soon"], true);
    assert!(!r.to_string().contains("EAAG-acme-rotated"), "{r}");
    let t = w
        .app
        .state
        .store
        .find_tenant_by_slug("acme")
        .await
        .unwrap()
        .unwrap();
    let ctx = w.app.state.cache.get(t.id).await.unwrap().unwrap();
    assert_eq!(
        ctx.whatsapp.as_ref().unwrap().access_token.expose_secret(),
        "EAAG-acme-rotated-token-9876"
    );
    let (_, expiring) = w
        .call("get", "/api/v1/tokens/expiring", Some(&w.operator), None)
        .await;
    assert_eq!(expiring["items"].as_array().unwrap().len(), 1, "{expiring}");
    assert_eq!(expiring["items"][0]["slug"], "acme");
    let metrics = w
        .http
        .get(w.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("parley_whatsapp_tokens_expiring_soon"),
        "{metrics}"
    );

    // The verify token: a new one works for Meta's handshake, the old one no longer does.
    let (s, r) = w
        .call(
            "post",
            "/api/v1/credentials/whatsapp/verify-token",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let fresh = r["verify_token"].as_str().unwrap().to_string();
    let handshake = |token: String| {
        let url = w.app.url(&format!(
            "/webhooks/whatsapp/acme?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=4242"
        ));
        async move { reqwest::get(url).await.unwrap() }
    };
    let ok = handshake(fresh.clone()).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "4242");
    assert_eq!(
        handshake("verify-acme-0123456789".into()).await.status(),
        403
    );

    // Bad input changes nothing; the audit names fields, never values.
    w.expect_error(
        (
            "put",
            "/api/v1/credentials/whatsapp",
            Some(&owner),
            Some(json!({"app_secret": "short"})),
        ),
        422,
        "validation_failed",
    )
    .await;
    let (s, r) = w
        .call(
            "put",
            "/api/v1/credentials/ai",
            Some(&owner),
            Some(json!({"api_key": "sk-acme-new-key-5555", "model": "gpt-4o-mini"})),
        )
        .await;
    assert_eq!(
        (s, r["ai"]["api_key"].as_str()),
        (200, Some("****5555")),
        "{r}"
    );
    let (_, audit) = w.call("get", "/api/v1/audit", Some(&owner), None).await;
    let text = audit.to_string();
    assert!(
        text.contains("credentials.update") && text.contains("credentials.rotate_verify_token")
    );
    for secret in [
        "EAAG-acme-rotated-token-9876",
        fresh.as_str(),
        "sk-acme-new-key-5555",
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
}

async fn faqs_round_trip_through_csv_and_json_and_templates_keep_one_default(kind: Db) {
    let Some(w) = World::new(kind).await else {
        return;
    };
    let admin = w.key("acme", Role::Admin).to_string();
    let csv = "question,answer,examples,category,priority\n\
        \"Do you repair e-bikes?\",\"Yes, all brands.\",\"ebike repair | electric bike fix\",repairs,5\n\
        \"What are your opening hours?\",\"9-19 now\",,hours,\n";
    let resp = w
        .http
        .post(w.app.url("/api/v1/faqs/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let resp = w
        .http
        .get(w.app.url("/api/v1/faqs/export?format=csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let exported = resp.text().await.unwrap();
    assert!(
        exported.starts_with("question,answer,examples,category,priority,kind,active"),
        "{exported}"
    );
    assert!(
        exported.contains("ebike repair | electric bike fix"),
        "{exported}"
    );
    // Re-importing the export changes nothing.
    let resp = w
        .http
        .post(w.app.url("/api/v1/faqs/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(exported)
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    let (_, json_export) = w
        .call("get", "/api/v1/faqs/export", Some(&admin), None)
        .await;
    let (s, report) = w
        .call(
            "post",
            "/api/v1/faqs/import",
            Some(&admin),
            Some(json_export.clone()),
        )
        .await;
    assert_eq!(
        (s, report["unchanged"].as_u64()),
        (
            200,
            Some(json_export["items"].as_array().unwrap().len() as u64)
        )
    );
    // A bad row stops the whole import.
    let before = w.faq_ids("acme").await;
    let resp = w
        .http
        .post(w.app.url("/api/v1/faqs/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("question,answer,priority\nNew one?,Sure,1\nBroken?,,x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(w.faq_ids("acme").await, before);
    let resp = w
        .http
        .post(w.app.url("/api/v1/faqs/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("question,colour\nx,y\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // Templates: a new default takes over from the old one.
    let (s, t) = w.call("post", "/api/v1/templates", Some(&admin),
        Some(json!({"name": "night", "system_prompt": "Short answers.", "is_default": true, "context_messages": 4}))).await;
    assert_eq!(s, 201, "{t}");
    let (_, all) = w.call("get", "/api/v1/templates", Some(&admin), None).await;
    let defaults: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["is_default"] == true)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, ["night"]);
    let id = t["id"].as_str().unwrap();
    let (s, r) = w
        .call(
            "patch",
            &format!("/api/v1/templates/{id}"),
            Some(&admin),
            Some(json!({"max_response_length": 99999})),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    let (s, r) = w
        .call(
            "post",
            "/api/v1/templates",
            Some(&admin),
            Some(json!({"name": "night", "system_prompt": "dup"})),
        )
        .await;
    assert_eq!(s, 409, "{r}");
    assert_eq!(
        w.call(
            "delete",
            &format!("/api/v1/templates/{id}"),
            Some(&admin),
            None
        )
        .await
        .0,
        204
    );
    // Another tenant's template is not found.
    let (_, bolt) = w
        .call(
            "get",
            "/api/v1/templates",
            Some(w.key("bolt", Role::Viewer)),
            None,
        )
        .await;
    let bolt_id = bolt["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        w.call(
            "delete",
            &format!("/api/v1/templates/{bolt_id}"),
            Some(&admin),
            None
        )
        .await
        .0,
        404
    );
}

on_both_backends!(
    faqs_round_trip_through_csv_and_json_and_templates_keep_one_default,
    owners_rotate_credentials_that_are_never_read_back,
    a_write_through_one_instance_reaches_the_other_instances_cache,
    the_contract_routes_work_and_every_write_is_audited,
    another_tenants_key_finds_nothing_and_changes_nothing_on_any_route,
    each_role_is_refused_what_it_may_not_do_on_every_route,
    missing_bad_revoked_expired_and_wrong_kind_keys_are_refused,
    hostile_and_malformed_input_gets_the_error_shape_and_changes_nothing,
    no_secret_appears_in_any_response_audit_entry_or_log_line,
    repeated_failed_authentication_is_throttled,
    the_openapi_document_lists_every_route_and_every_route_is_served,
    operators_create_disable_and_delete_tenants,
);
