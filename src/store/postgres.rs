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

mod arrays;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A store on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
    /// Connections for tasks scoped to one tenant (row-level security).
    scoped: PgPool,
}

impl PgStore {
    /// Connects a pool to `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        // parley's own cross-tenant work: every connection scoped to all tenants, once.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(|conn, _meta| Box::pin(async move { set_scope(conn, "*").await }))
            .connect(url)
            .await
            .context(
                "connecting to PostgreSQL (check DATABASE_URL and that the server is running)",
            )?;
        // Tenant-scoped work (admin API requests): each connection is set to the scope of
        // the task that takes it, new (after_connect) or reused (before_acquire).
        let scoped = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    set_scope(conn, &super::scope::current()).await?;
                    Ok(true)
                })
            })
            .after_connect(|conn, _meta| {
                Box::pin(async move { set_scope(conn, &super::scope::current()).await })
            })
            .connect_lazy(url)
            .context("DATABASE_URL is not a valid postgres: URL")?;
        Ok(Self {
            writer: pool.clone(),
            pool,
            scoped,
        })
    }

    /// Vacuums the queue tables and the contacts and conversations they add to, and
    /// with `analyze` refreshes their statistics, on one instance at a time (advisory
    /// lock). Without fresh statistics (a server with autovacuum off, or a young
    /// database), the plans cached for the hot statements assume tiny tables and scan
    /// them whole.
    async fn maintain(pool: &PgPool, analyze: bool) -> StoreResult<()> {
        const LOCK: i64 = 0x7061_726c_6579_0001; // "parley" + job 1
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Ok(());
        }
        let result = sqlx::query(if analyze {
            "VACUUM (ANALYZE) inbound_messages, outbound_messages, conversations, contacts"
        } else {
            "VACUUM inbound_messages, outbound_messages, conversations, contacts"
        })
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
        Ok(self.write_pool().begin().await?)
    }
}

/// Sets `parley.tenant_id` on `conn` (see `store::scope`).
async fn set_scope(conn: &mut sqlx::PgConnection, scope: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('parley.tenant_id', $1, false)")
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
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
    /// The pool for the current task: the scoped one inside a tenant's scope.
    fn read_pool(&self) -> &PgPool {
        if super::scope::in_tenant_scope() {
            &self.scoped
        } else {
            &self.pool
        }
    }

    /// Where `maintain` runs: the unscoped writer (VACUUM needs the table owner).
    fn maintenance_pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_pool(&self) -> &PgPool {
        if super::scope::in_tenant_scope() {
            &self.scoped
        } else {
            &self.writer
        }
    }

    async fn close_scoped(&self) {
        self.scoped.close().await;
    }

    /// The pipeline's conversation lookup (`arrays::find_conversations`).
    async fn find_conversations_fast(
        &self,
        keys: &[(TenantId, Channel, String)],
    ) -> Option<StoreResult<Vec<((TenantId, Channel, String), ConversationState)>>> {
        Some(arrays::find_conversations(self.read_pool(), keys).await)
    }

    /// PostgreSQL takes every write through sqlx (its connections have no such hop).
    fn hot_writer(&self) -> Option<&super::sqlite_hot::HotWriter> {
        None
    }

    /// Lookups before the tenant is known go through the narrow functions of migration
    /// 0005 (row-level security).
    const TENANT_BY_SLUG: &'static str = "SELECT id, slug, name, timezone, active, revision, created_at, updated_at \
        FROM tenants WHERE id = parley_route_webhook('whatsapp', $1, NULL)";
    const TENANT_BY_ACCOUNT: &'static str = "SELECT parley_route_webhook($1, NULL, $2)";
    const TENANT_KEY_BY_PREFIX: &'static str = "SELECT tenant_id, role, id, prefix, hash, name, created_by, \
        created_at, expires_at, revoked_at, last_used_at FROM parley_find_tenant_key($1)";

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
