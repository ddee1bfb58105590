//! The `Store` trait: every read and write parley makes, grouped by aggregate, with
//! one implementation per backend (`sqlite.rs`, `postgres.rs`). Every tenant-owned
//! query takes the tenant id first; another tenant's row is simply not found.

/// What a message's `raw` becomes when its tenant does not keep message text, on both
/// backends: in a row inserted done and in the statements that mark a message done. A
/// macro (a literal) so that statements' text can include it with `concat!`; defined
/// before the modules so that each of them can use it.
macro_rules! redacted_raw {
    () => {
        r#"{"redacted":true}"#
    };
}

/// The `SET` clause by which a statement marking message row `$m` done writes its
/// turn's decision (reason, FAQ id, score, detail and the time, each as SQL), on both
/// backends (0014: a decision is columns of its message's row). A message that has a
/// decision already keeps it: decided twice (a second worker, once the first one's
/// lease ran out), it keeps its first decision, as it keeps its first reply; a turn
/// without one (the tenant logs no decisions) leaves the columns as they are.
macro_rules! keep_first_decision {
    ($m:literal, $reason:literal, $faq:literal, $score:literal, $detail:literal, $at:literal) => {
        concat!(
            "decision_reason = COALESCE(",
            $m,
            ".decision_reason, ",
            $reason,
            "), ",
            "decision_faq_id = CASE WHEN ",
            $m,
            ".decision_reason IS NULL THEN ",
            $faq,
            " ELSE ",
            $m,
            ".decision_faq_id END, ",
            "decision_score = CASE WHEN ",
            $m,
            ".decision_reason IS NULL THEN ",
            $score,
            " ELSE ",
            $m,
            ".decision_score END, ",
            "decision_detail = CASE WHEN ",
            $m,
            ".decision_reason IS NULL THEN ",
            $detail,
            " ELSE ",
            $m,
            ".decision_detail END, ",
            "decided_at = CASE WHEN ",
            $m,
            ".decision_reason IS NOT NULL THEN ",
            $m,
            ".decided_at WHEN ",
            $reason,
            " IS NOT NULL THEN ",
            $at,
            " END"
        )
    };
}

/// The start of a query for `DecisionRow`s: messages' decisions, which are columns of
/// their rows (0014); the caller adds its `WHERE` (with `decision_reason IS NOT NULL`)
/// and order.
macro_rules! decision_rows {
    () => {
        "SELECT id AS inbound_message_id, decision_reason AS reason, \
         decision_faq_id AS faq_id, decision_score AS score, decision_detail AS detail \
         FROM inbound_messages "
    };
}

pub mod admin;
mod common;
pub mod conversations;
pub mod messages;
pub mod postgres;
mod rows;
pub mod scope;
pub mod sqlite;
mod sqlite_hot;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::crypto::Sealed;
use crate::domain::plan::{Plan, TenantState};
use crate::domain::{
    Channel, ControlSettings, Template, Tenant, TenantId, TrainingItem, TrainingItemId,
};

/// Errors the store reports; callers branch on the kind, never on database text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("rejected by the database: {0}")]
    Invalid(String),
    #[error("the tenant was changed meanwhile (expected revision {expected}); try again")]
    StaleRevision { expected: i64 },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row"),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::Database(db) if db.is_check_violation() => {
                StoreError::Invalid(db.message().to_string())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("referenced row")
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One migration as `parley migrate status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// One sealed secret with its owner, as key rotation walks them.
#[derive(Clone, Debug)]
pub struct SecretRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub sealed: Sealed,
}

pub use admin::AdminStore;
pub use conversations::ConversationStore;
pub use messages::MessageStore;

/// Announcements of tenant changes made by any process.
#[async_trait]
pub trait ChangeFeed: Send {
    /// The next changed tenant; an error means the feed broke (open a new one).
    async fn next(&mut self) -> StoreResult<TenantId>;
}

/// Everything parley stores: tenants and their configuration here, the conversation
/// loop in [`MessageStore`].
#[async_trait]
pub trait Store: MessageStore + ConversationStore + AdminStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Answers once the database can be reached.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes every connection; later calls fail as `Unavailable`.
    async fn close(&self);
    /// Gives the thread that runs the message loop's writes (SQLite's writer) the nice
    /// value `nice` (Linux). `Ok(false)`: this store has no such thread.
    async fn favour_writer(&self, nice: i32) -> std::io::Result<bool>;

    /// A feed of tenant changes made by any process (PostgreSQL: LISTEN/NOTIFY);
    /// `None` where the backend has none (SQLite: the revision poll finds them).
    async fn tenant_changes(&self) -> StoreResult<Option<Box<dyn ChangeFeed>>>;

    // --- migrations ---
    async fn migrate_up(&self) -> StoreResult<Vec<MigrationStatus>>;
    /// Applies the pending migrations up to and including `version`.
    async fn migrate_up_to(&self, version: i64) -> StoreResult<()>;
    /// Reverts the last applied migration; `None` if none was applied.
    async fn migrate_down(&self) -> StoreResult<Option<MigrationStatus>>;
    async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>>;

    // --- tenants ---
    /// Creates tenant `id` with everything in `plan` (whose profile must be set), in
    /// one transaction. A taken slug or phone number id is a `Conflict`.
    async fn create_tenant(
        &self,
        id: TenantId,
        plan: &Plan<Sealed>,
        now: DateTime<Utc>,
    ) -> StoreResult<Tenant>;
    /// Applies `plan` to tenant `id` in one transaction if its revision is still
    /// `expected_revision`; a row of another tenant named in the plan is `NotFound`
    /// and nothing is written.
    async fn update_tenant(
        &self,
        id: TenantId,
        expected_revision: i64,
        plan: &Plan<Sealed>,
        now: DateTime<Utc>,
    ) -> StoreResult<Tenant>;
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
    async fn find_tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Every tenant's id and revision: lets a cache see changes made by other processes.
    async fn list_tenant_revisions(&self) -> StoreResult<Vec<(TenantId, i64)>>;
    async fn set_tenant_active(
        &self,
        id: TenantId,
        active: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Tenant>;
    /// Deletes a tenant and everything it owns: the message loop's rows explicitly (on
    /// PostgreSQL they hold no foreign key to tenants, migration 0012), the rest by
    /// cascade.
    async fn delete_tenant(&self, id: TenantId) -> StoreResult<()>;
    /// Deletes the message loop's rows of a tenant that no longer exists (none while it
    /// does): what a write that raced the tenant's deletion left behind, found by the
    /// workers when they meet such a row. The number of rows deleted.
    async fn sweep_deleted_tenant(&self, id: TenantId) -> StoreResult<u64>;
    /// The one lookup that crosses tenants: which tenant owns this provider account
    /// (Meta's phone_number_id). Webhook routing uses it before it knows the tenant.
    async fn find_tenant_by_channel_account(
        &self,
        channel: Channel,
        provider_account_id: &str,
    ) -> StoreResult<Option<TenantId>>;

    // --- a tenant's configuration ---
    async fn load_tenant_state(&self, id: TenantId) -> StoreResult<Option<TenantState>>;
    async fn find_settings(&self, tenant: TenantId) -> StoreResult<Option<ControlSettings>>;
    async fn list_templates(&self, tenant: TenantId) -> StoreResult<Vec<Template>>;
    async fn list_training_items(&self, tenant: TenantId) -> StoreResult<Vec<TrainingItem>>;
    async fn find_training_item(
        &self,
        tenant: TenantId,
        id: TrainingItemId,
    ) -> StoreResult<Option<TrainingItem>>;

    // --- sealed secrets ---
    async fn list_secrets(&self, tenant: TenantId) -> StoreResult<Vec<SecretRecord>>;
    /// A page of every tenant's secrets, ordered by (tenant, name), after `after`.
    async fn list_all_secrets(
        &self,
        after: Option<(TenantId, String)>,
        limit: i64,
    ) -> StoreResult<Vec<SecretRecord>>;
    /// Replaces a sealed value only if it still is `old`; false if it changed meanwhile.
    async fn replace_secret(
        &self,
        record: &SecretRecord,
        new: &Sealed,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// How many secrets each key id seals.
    async fn count_secrets_by_key(&self) -> StoreResult<Vec<(String, i64)>>;
}

/// Applies the pending migrations one at a time, calling `report` before each (with
/// `None`) and after it (with the time it took), so that a long one (SQLite rebuilds
/// tables in some: README, Storage) shows what is happening. Returns how many it
/// applied.
pub async fn migrate_up_each(
    store: &dyn Store,
    mut report: impl FnMut(&MigrationStatus, Option<std::time::Duration>),
) -> StoreResult<usize> {
    let pending: Vec<MigrationStatus> = store
        .migration_status()
        .await?
        .into_iter()
        .filter(|m| !m.applied)
        .collect();
    for m in &pending {
        report(m, None);
        let started = std::time::Instant::now();
        store.migrate_up_to(m.version).await?;
        report(m, Some(started.elapsed()));
    }
    // Nothing left to apply; this checks the applied ones against their files, as a
    // plain run does.
    store.migrate_up().await?;
    Ok(pending.len())
}

/// Opens the store named by `url` (`sqlite:` or `postgres:`/`postgresql:`).
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        anyhow::bail!(
            "DATABASE_URL must start with sqlite: or postgres: (got scheme {:?}); \
             for example sqlite://data/parley.db or postgres://user@host/parley",
            url.split(':').next().unwrap_or("")
        )
    }
}
