//! The PostgreSQL store: the production and scale-out backend. An explicit pool size
//! and acquire timeout, so an overloaded database shows up as an error, not a hang.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Postgres};
use uuid::Uuid;

use super::admin::*;
use super::common::*;
use super::conversations::*;
use super::messages::*;
use super::rows::*;
use super::{MigrationStatus, SecretRecord, StoreError, StoreResult};
use crate::crypto::Sealed;
use crate::domain::audit::AuditEntry;
use crate::domain::plan::{Change, ItemChanges, Plan, TenantState};
use crate::domain::*;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A store on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
}

impl PgStore {
    /// Connects a pool to `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context(
                "connecting to PostgreSQL (check DATABASE_URL and that the server is running)",
            )?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }

    /// Vacuums the queue tables, on one instance at a time (advisory lock).
    async fn maintain(pool: &PgPool) -> StoreResult<()> {
        const LOCK: i64 = 0x7061_726c_6579_0001; // "parley" + job 1
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Ok(());
        }
        let result = sqlx::query("VACUUM (ANALYZE) inbound_messages, outbound_messages")
            .execute(&mut *conn)
            .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK)
            .execute(&mut *conn)
            .await?;
        result?;
        Ok(())
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Ok(self.writer.begin().await?)
    }
}

/// LISTEN parley_tenant_changed (a trigger on `tenants` announces every change).
struct PgChangeFeed(sqlx::postgres::PgListener);

#[async_trait::async_trait]
impl super::ChangeFeed for PgChangeFeed {
    async fn next(&mut self) -> StoreResult<TenantId> {
        loop {
            let n = self.0.recv().await?;
            if let Ok(id) = n.payload().parse::<Uuid>() {
                return Ok(TenantId(id));
            }
        }
    }
}

impl PgStore {
    async fn change_feed(&self) -> StoreResult<Option<Box<dyn super::ChangeFeed>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen("parley_tenant_changed").await?;
        Ok(Some(Box::new(PgChangeFeed(listener))))
    }
}

impl_store!(PgStore, sqlx::PgConnection, super::Backend::Postgres);
impl_message_store!(
    PgStore,
    sqlx::PgConnection,
    sqlx::Postgres,
    " FOR UPDATE SKIP LOCKED"
);
impl_conversation_store!(PgStore, Postgres, " FOR UPDATE SKIP LOCKED");
impl_cancel_bot_replies!(PgStore, sqlx::PgConnection);
impl_admin_store!(PgStore, sqlx::PgConnection);
