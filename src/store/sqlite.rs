//! The SQLite store: the zero-setup default. WAL, a busy timeout, foreign keys on, and
//! write transactions that take the write lock up front (`BEGIN IMMEDIATE`) so two
//! writers queue instead of failing half-way.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Sqlite};
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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A store on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one writing connection. Writers queue here, not in SQLite's busy handler
    /// (which sleeps in millisecond steps), and its page cache stays warm because no
    /// other connection writes.
    writer: SqlitePool,
    /// The conversation loop's writes, run in one go on `writer`'s handle.
    /// `None` for an in-memory database (a second connection would see another one).
    hot: Option<Arc<super::sqlite_hot::HotWriter>>,
}

impl SqliteStore {
    /// Opens (and creates, with its folder) the database file named by `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| "DATABASE_URL is not a valid sqlite: URL".to_string())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Read pages through the OS's mapping instead of copying them per read.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384")
            // Checkpoint less often: a page changed many times is copied back once.
            .pragma("wal_autocheckpoint", "4000");
        let file = opts.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory
            && let Some(dir) = file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let open = |max: u32| {
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10));
            // An in-memory database lives as long as its one connection: never let the
            // pool retire it (sqlx's defaults close a connection after 10 minutes idle
            // or 30 minutes in all, and the next one would open an empty database).
            let pool = if in_memory {
                pool.min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                pool
            };
            pool.connect_with(opts.clone())
        };
        let writer = open(1)
            .await
            .with_context(|| format!("opening the SQLite database {}", file.display()))?;
        // An in-memory database exists once per connection: read where we write.
        let pool = if in_memory {
            writer.clone()
        } else {
            open(4).await?
        };
        let hot = if in_memory {
            None
        } else {
            Some(Arc::new(super::sqlite_hot::HotWriter::open(&file)?))
        };
        Ok(Self { pool, writer, hot })
    }

    const TENANT_BY_SLUG: &'static str = "SELECT id, slug, name, timezone, active, revision, created_at, updated_at \
        FROM tenants WHERE slug = $1";
    const TENANT_BY_ACCOUNT: &'static str =
        "SELECT tenant_id FROM channel_accounts WHERE channel = $1 AND provider_account_id = $2";
    const TENANT_KEY_BY_PREFIX: &'static str = "SELECT tenant_id, role, id, prefix, hash, name, created_by, \
        created_at, expires_at, revoked_at, last_used_at FROM api_keys WHERE prefix = $1";

    /// The pools: SQLite has no row-level security, so every task uses the same ones.
    fn read_pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Where `maintain` runs: a reader, beside the writer.
    fn maintenance_pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn close_scoped(&self) {
        if let Some(hot) = &self.hot {
            hot.close().await;
        }
    }

    /// The pipeline's conversation lookup, on the message loop's own connection (one
    /// prepared probe of the unique key per customer) rather than a sqlx reader: it
    /// runs once per claimed batch, and sqlx's hop to a reader thread and back, with
    /// the statement built afresh for every batch size, cost more than the lookups.
    async fn find_conversations_fast(
        &self,
        keys: &[(TenantId, Channel, String)],
    ) -> Option<StoreResult<Vec<((TenantId, Channel, String), ConversationState)>>> {
        Some(self.hot.as_ref()?.find_conversations(keys).await)
    }

    /// SQLite has no arrays: the shared multi-row statements write these (see
    /// `postgres::arrays`).
    async fn insert_inbound_arrays(
        _conn: &mut sqlx::SqliteConnection,
        _rows: &[InboundRecord],
    ) -> Option<StoreResult<usize>> {
        None
    }

    /// The SQLite store leases and decides on its hot writer (`HotWriter::store_webhook`).
    async fn store_webhook_deciding_arrays(
        &self,
        _messages: &[InboundRecord],
        _statuses: &[super::messages::StatusRecord],
        _lease_until: DateTime<Utc>,
        _decide: Option<super::messages::Deciding>,
    ) -> Option<StoreResult<(usize, super::messages::StoredLeased)>> {
        None
    }

    async fn take_quotas_arrays(
        &self,
        _chains: &[Vec<super::messages::QuotaAsk>],
    ) -> Option<StoreResult<Vec<Option<usize>>>> {
        None
    }

    async fn complete_inbound_arrays(
        &self,
        _turns: &[TurnRecord],
        _now: DateTime<Utc>,
    ) -> Option<StoreResult<()>> {
        None
    }

    async fn complete_inbound_leasing_arrays(
        &self,
        _turns: &[TurnRecord],
        _now: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
    ) -> Option<StoreResult<Vec<super::messages::ClaimedOutbound>>> {
        None
    }

    async fn mark_sent_arrays(
        _conn: &mut sqlx::SqliteConnection,
        _results: &[SendResult],
        _now: DateTime<Utc>,
    ) -> Option<StoreResult<()>> {
        None
    }

    /// The conversation loop's hot writes bypass sqlx's per-statement hops.
    fn hot_writer(&self) -> Option<&super::sqlite_hot::HotWriter> {
        self.hot.as_deref()
    }

    /// SQLite cannot announce changes to other processes; the revision poll finds them.
    async fn change_feed(&self) -> StoreResult<Option<Box<dyn super::ChangeFeed>>> {
        Ok(None)
    }

    /// Copies the write-ahead log back into the database file from a reading
    /// connection, so the single writer does not stop for it (its own automatic
    /// checkpoint is only the safety net). SQLite reuses freed pages by itself.
    async fn maintain(pool: &SqlitePool, _analyze: bool) -> StoreResult<()> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(pool)
            .await?;
        Ok(())
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(tx)
    }
}

impl_store!(SqliteStore, sqlx::SqliteConnection, super::Backend::Sqlite);
impl_message_store!(SqliteStore, sqlx::SqliteConnection, sqlx::Sqlite, "");
impl_conversation_store!(SqliteStore, sqlx::Sqlite, "");
impl_cancel_bot_replies!(SqliteStore, sqlx::SqliteConnection);
impl_admin_store!(SqliteStore, sqlx::SqliteConnection);

#[cfg(test)]
mod tests {
    use super::SqliteStore;

    /// The in-memory database is its pool's one connection, so the pool must never
    /// close it (after sqlx's default 10 idle or 30 minutes it would reopen empty).
    #[tokio::test]
    async fn an_in_memory_database_keeps_its_one_connection_for_good() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        for pool in [&store.writer, &store.pool] {
            let o = pool.options();
            assert_eq!(o.get_max_connections(), 1);
            assert_eq!(o.get_min_connections(), 1);
            assert_eq!(o.get_idle_timeout(), None);
            assert_eq!(o.get_max_lifetime(), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = SqliteStore::connect(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        assert!(file.pool.options().get_max_lifetime().is_some());
        file.writer.close().await;
        file.pool.close().await;
    }
}
