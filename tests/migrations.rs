//! Both migration folders hold the same migrations, so the backends cannot drift.

use std::collections::BTreeSet;

fn names(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_migration_folders_hold_the_same_file_names() {
    let pg = names("postgres");
    let lite = names("sqlite");
    assert!(!pg.is_empty());
    assert_eq!(pg, lite);
}

#[test]
fn every_migration_can_be_reverted() {
    for dir in ["postgres", "sqlite"] {
        let all = names(dir);
        for up in all.iter().filter(|n| n.ends_with(".up.sql")) {
            let down = up.replace(".up.sql", ".down.sql");
            assert!(all.contains(&down), "{dir}/{up} has no {down}");
        }
    }
}

/// SQLite's 0009 rebuilds `conversations` and `outbound_messages` with their CHECKs
/// written as OR chains: an operator's rows survive the upgrade (and the way back), the
/// same values are allowed and refused as before, and the statements the message loop
/// runs per message no longer build a temporary b-tree each time (`OpenEphemeral`).
#[tokio::test]
async fn sqlite_0009_keeps_rows_and_rules_without_temporary_btrees() {
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use std::str::FromStr;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePool::connect_with(opts).await.unwrap();
    let migrator = Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    migrator.run(&pool).await.unwrap();
    migrator.undo(&pool, 8).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 8, "undo to 0008");

    // Rows as an operator has them before the upgrade, with values off the defaults.
    for sql in [
        "INSERT INTO tenants (id, slug, name, timezone, created_at, updated_at) \
         VALUES (x'01', 'acme', 'Acme', 'UTC', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO contacts (tenant_id, channel, customer_id, first_seen_at, last_inbound_at) \
         VALUES (x'01', 'whatsapp', '15551230001', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO conversations (tenant_id, id, channel, customer_id, status, started_at, \
         last_message_at, human_since, handoff_reason) VALUES (x'01', x'02', 'whatsapp', \
         '15551230001', 'human', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', \
         '2026-01-02T00:00:00Z', 'asked for a person')",
        "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, channel, \
         provider_account_id, recipient, body, state, delivery_status, provider_message_id, \
         attempts, next_attempt_at, created_at, updated_at, purpose, customer_id, template) \
         VALUES (x'01', x'03', 'k1', 'whatsapp', '100000000000001', '15551230001', 'hello', \
         'sent', 'read', 'wamid.X', 2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', \
         '2026-01-01T00:00:00Z', 'notice', '15551230001', 'welcome')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let snapshot = |pool: SqlitePool| async move {
        let conv: (String, String, Option<String>) = sqlx::query_as(
            "SELECT status, last_message_at, handoff_reason FROM conversations WHERE id = x'02'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let out: (String, String, String, Option<String>, i64, Option<String>) = sqlx::query_as(
            "SELECT state, delivery_status, purpose, provider_message_id, attempts, template \
             FROM outbound_messages WHERE id = x'03'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (conv, out)
    };
    let before = snapshot(pool.clone()).await;
    migrator.run(&pool).await.unwrap();
    assert_eq!(snapshot(pool.clone()).await, before, "rows survive 0009");

    // The same values allowed and refused.
    let set = |table: &'static str, col: &'static str, value: &'static str| {
        let pool = pool.clone();
        async move {
            // Table and column names from the list below, not from input.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {col} = $1"
            )))
            .bind(value)
            .execute(&pool)
            .await
        }
    };
    for (table, col, allowed) in [
        ("conversations", "status", &["bot", "human", "closed"][..]),
        (
            "outbound_messages",
            "state",
            &[
                "pending",
                "sent",
                "failed",
                "dead",
                "cancelled",
                "unsendable",
            ][..],
        ),
        (
            "outbound_messages",
            "delivery_status",
            &["queued", "sent", "delivered", "read", "failed"][..],
        ),
        (
            "outbound_messages",
            "purpose",
            &["reply", "ack", "notice", "notification", "human"][..],
        ),
    ] {
        for v in allowed {
            set(table, col, v)
                .await
                .unwrap_or_else(|e| panic!("{table}.{col} = {v}: {e}"));
        }
        let refused = set(table, col, "bogus").await;
        assert!(refused.is_err(), "{table}.{col} accepted 'bogus'");
    }

    // The loop's per-message statements build no temporary b-tree.
    pool.close().await;
    let db = rusqlite::Connection::open(&file).unwrap();
    for sql in [
        "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, channel, \
         provider_account_id, recipient, body, next_attempt_at, created_at, updated_at, purpose) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) \
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        "UPDATE outbound_messages SET state = 'sent', delivery_status = 'sent' \
         WHERE tenant_id = ?1 AND id = ?2",
        "INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, \
         last_message_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (tenant_id, channel, \
         customer_id) DO UPDATE SET last_message_at = excluded.last_message_at",
    ] {
        let mut explain = db.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let params = vec![rusqlite::types::Value::Null; explain.parameter_count()];
        let ops: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(params), |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
    }
    drop(db);

    // And back: 0009's down restores the IN lists with the rows kept.
    let pool = SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    migrator.undo(&pool, 8).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}
