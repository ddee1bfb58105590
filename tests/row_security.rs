//! PostgreSQL's row-level security, the wall under the API: connected as a role that
//! is only `parley_app` (no BYPASSRLS), a connection scoped to tenant A sees none of
//! B's rows and cannot write rows for B; the narrow lookup functions answer without
//! opening anything else; and parley itself runs as that role.

mod common;

use std::sync::Arc;

use chrono::Utc;
use common::meta::{meta_accepting_everything, sign, text_webhook, wait_for_texts};
use common::{Db, TestDb, bundle, key_ring, test_config};
use parley::domain::access::Role;
use parley::provisioning::apply_bundle;
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};

const APP_ROLE: &str = "parley_rls_test";

/// `url` with its user replaced by the test's application role.
fn as_app_role(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host_part = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    format!("{scheme}://{APP_ROLE}@{host_part}")
}

async fn setup() -> Option<(
    TestDb,
    Arc<parley::crypto::KeyRing>,
    [parley::domain::Tenant; 2],
)> {
    common::postgres_url()?;
    let db = TestDb::new(Db::Postgres).await?;
    let (ring, _) = key_ring();
    let ring = Arc::new(ring);
    let store = db.store().await;
    let mut tenants = Vec::new();
    for (slug, pnid) in [("acme", "100000000000001"), ("bolt", "100000000000002")] {
        let b = bundle(slug, pnid, &format!("EAAG-{slug}-token-0001"));
        tenants.push(
            apply_bundle(store.as_ref(), &ring, &b.to_string(), false, Utc::now())
                .await
                .unwrap()
                .tenant,
        );
    }
    // A login role that holds nothing but parley_app (made by the migrations).
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let create = format!("CREATE ROLE {APP_ROLE} LOGIN NOBYPASSRLS IN ROLE parley_app");
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
    {
        let text = e.to_string();
        assert!(
            text.contains("already exists") || text.contains("duplicate"),
            "{text}"
        );
    }
    let tenants: [parley::domain::Tenant; 2] = tenants.try_into().unwrap();
    Some((db, ring, tenants))
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_to_tenant_a_the_app_role_sees_and_writes_nothing_of_tenant_b() {
    let Some((db, _ring, [a, b])) = setup().await else {
        eprintln!("PARLEY_TEST_POSTGRES_URL is not set: this PostgreSQL test did not run");
        return;
    };
    let mut conn = PgConnection::connect(&as_app_role(&db.url)).await.unwrap();
    let bypass: bool = sqlx::query_scalar(
        "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!bypass, "the test role must not bypass row-level security");
    // No scope: nothing at all.
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM training_items").await,
        0
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM tenants").await, 0);

    sqlx::query("SELECT set_config('parley.tenant_id', $1, false)")
        .bind(a.id.0.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM tenants").await, 1);
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM training_items").await,
        3
    );
    let b_rows = format!(
        "SELECT COUNT(*) FROM training_items WHERE tenant_id = '{}'",
        b.id.0
    );
    assert_eq!(count(&mut conn, &b_rows).await, 0);
    for table in [
        "tenant_secrets",
        "channel_accounts",
        "control_settings",
        "templates",
        "api_keys",
        "audit_log",
    ] {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE tenant_id <> '{}'",
            a.id.0
        );
        assert_eq!(
            count(&mut conn, &sql).await,
            0,
            "{table} shows another tenant's rows"
        );
    }
    // Writing for B is refused; changing B's rows touches nothing.
    let insert = sqlx::query(
        "INSERT INTO training_items (tenant_id, id, kind, question, answer, examples, updated_at) \
         VALUES ($1, gen_random_uuid(), 'faq', 'Injected?', 'yes', '[]', now())",
    )
    .bind(b.id.0)
    .execute(&mut conn)
    .await;
    let err = insert
        .expect_err("an insert for another tenant must fail")
        .to_string();
    assert!(err.contains("row-level security"), "{err}");
    let updated = sqlx::query("UPDATE training_items SET answer = 'pwned' WHERE tenant_id = $1")
        .bind(b.id.0)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 0);
    let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(b.id.0)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 0);
    // The narrow door: routing finds B's id, and nothing else opens.
    let routed: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT parley_route_webhook('whatsapp', 'bolt', NULL)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(routed, Some(b.id.0));
    assert_eq!(count(&mut conn, &b_rows).await, 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM tenants").await, 1);
    // And B's data is all still there (seen as the owner).
    let mut owner = PgConnection::connect(&db.url).await.unwrap();
    assert_eq!(count(&mut owner, &b_rows).await, 3);
    let pwned =
        "SELECT COUNT(*) FROM training_items WHERE answer = 'pwned' OR question = 'Injected?'";
    assert_eq!(count(&mut owner, pwned).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_runs_as_the_app_role_under_row_level_security() {
    let Some((db, ring, [a, _b])) = setup().await else {
        eprintln!("PARLEY_TEST_POSTGRES_URL is not set: this PostgreSQL test did not run");
        return;
    };
    let store = parley::store::connect(&as_app_role(&db.url)).await.unwrap();
    let (key, _) = parley::admin::keys::issue(
        store.as_ref(),
        a.id,
        Role::Admin,
        "t",
        "t",
        None,
        Utc::now(),
    )
    .await
    .unwrap();
    let key = key.expose_secret().to_string();
    let meta = wiremock::MockServer::start().await;
    meta_accepting_everything(&meta).await;
    let mut config = test_config(&as_app_role(&db.url));
    config.auto_migrate = false;
    config.whatsapp_api_base = format!("{}/v25.0", meta.uri());
    // The pool scopes each connection to the task's tenant.
    let scoped = parley::store::scope::with_tenant(a.id, store.list_tenants())
        .await
        .unwrap();
    assert_eq!(
        scoped.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        ["acme"]
    );
    assert_eq!(
        store.list_tenants().await.unwrap().len(),
        2,
        "parley's own work sees all"
    );
    let state = parley::app::AppState::with_parts(config, store, ring);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(parley::app::run(state, listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    // The admin API, scoped to the key's tenant.
    let r = http
        .patch(url("/api/v1/settings"))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"fallback_text": "We will get back to you.", "quiet_hours": null}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let faqs: serde_json::Value = http
        .get(url("/api/v1/faqs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faqs["total"], 3);
    assert!(!faqs.to_string().contains("(bolt)"));
    // The webhook, the pipeline and the sender (parley's own cross-tenant work).
    let body = text_webhook(
        "100000000000001",
        "15550001111",
        "wamid.rls1",
        "What are your opening hours?",
    );
    let r = http
        .post(url("/webhooks/whatsapp/acme"))
        .header(
            "x-hub-signature-256",
            sign("appsecret-acme-0123456789", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = wait_for_texts(&meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "9-18 (acme)");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    // Deleting a tenant as the app role: the message loop's rows go too (they hold no
    // foreign key to tenants, migration 0012; the policies let parley's own work
    // delete them).
    assert_eq!(db.count("SELECT COUNT(*) FROM inbound_messages").await, 1);
    let store = parley::store::connect(&as_app_role(&db.url)).await.unwrap();
    store.delete_tenant(a.id).await.unwrap();
    for table in [
        "inbound_messages",
        "outbound_messages",
        "contacts",
        "conversations",
    ] {
        let n = db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(n, 0, "{table} kept the deleted tenant's rows");
    }
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
}
