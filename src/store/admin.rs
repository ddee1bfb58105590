//! Storage for the admin API: tenant API keys and operator keys (hashes only) and the
//! audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::TenantId;
use crate::domain::access::Role;
use crate::domain::audit::AuditEntry;

/// A stored key: tenant keys carry a tenant and a role, operator keys neither.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub tenant_id: Option<TenantId>,
    pub id: Uuid,
    /// The visible part, unique across all keys (`pk_<prefix>_…`).
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub hash: String,
    pub role: Option<Role>,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A WhatsApp token needing attention.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenHealth {
    pub tenant_id: TenantId,
    pub slug: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// `expired` (Meta refused it) or `ok` (but expiring soon).
    pub status: String,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Stores a tenant key (with `tenant_id`) or an operator key (without), and audits
    /// it in the same transaction when `audit` is given.
    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;
    /// The one key lookup that crosses tenants: authentication knows only the prefix.
    async fn find_tenant_key(&self, prefix: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn find_operator_key(&self, prefix: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Records a successful use (at most once a minute per key is enough).
    async fn touch_api_key(
        &self,
        tenant: Option<TenantId>,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Revokes a tenant key of `tenant`; false if there is no such live key.
    async fn revoke_tenant_key(
        &self,
        tenant: TenantId,
        id: Uuid,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn list_tenant_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKeyRecord>>;

    /// WhatsApp tokens that expired (Meta said so) or expire before `soon`, with their
    /// tenant; only `tenant`'s when given.
    async fn token_health(
        &self,
        tenant: Option<TenantId>,
        soon: DateTime<Utc>,
    ) -> StoreResult<Vec<TokenHealth>>;

    /// Appends to a tenant's audit log on its own (writes through a plan carry theirs).
    async fn insert_audit(&self, tenant: TenantId, entry: &AuditEntry) -> StoreResult<()>;
    /// A tenant's audit log, newest first, older than `before` when given.
    async fn list_audit(
        &self,
        tenant: TenantId,
        before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
}

pub(super) const KEY_COLS: &str =
    "id, prefix, hash, name, created_by, created_at, expires_at, revoked_at, last_used_at";

macro_rules! impl_admin_store {
    ($store:ty, $conn:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::admin::AdminStore for $store {
            async fn insert_api_key(&self, key: &ApiKeyRecord, audit: Option<&AuditEntry>) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                match key.tenant_id {
                    Some(t) => {
                        sqlx::query(
                            "INSERT INTO api_keys (tenant_id, id, prefix, hash, role, name, created_by, created_at, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(t.0)
                        .bind(key.id)
                        .bind(&key.prefix)
                        .bind(&key.hash)
                        .bind(key.role.map(|r| r.as_str()).unwrap_or("viewer"))
                        .bind(&key.name)
                        .bind(&key.created_by)
                        .bind(key.created_at)
                        .bind(key.expires_at)
                        .execute(&mut *tx)
                        .await?;
                        if let Some(a) = audit {
                            Self::audit_on(&mut tx, t, a).await?;
                        }
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO operator_keys (id, prefix, hash, name, created_by, created_at, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(key.id)
                        .bind(&key.prefix)
                        .bind(&key.hash)
                        .bind(&key.name)
                        .bind(&key.created_by)
                        .bind(key.created_at)
                        .bind(key.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_tenant_key(&self, prefix: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let row: Option<KeyRow> = sqlx::query_as(Self::TENANT_KEY_BY_PREFIX)
                    .bind(prefix)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.map(ApiKeyRecord::try_from).transpose()
            }

            async fn find_operator_key(&self, prefix: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let sql = format!(
                    "SELECT NULL AS tenant_id, NULL AS role, {KEY_COLS} FROM operator_keys WHERE prefix = $1"
                );
                let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(prefix)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.map(ApiKeyRecord::try_from).transpose()
            }

            async fn touch_api_key(&self, tenant: Option<TenantId>, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
                match tenant {
                    Some(t) => {
                        sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2")
                            .bind(t.0)
                            .bind(id)
                            .bind(now)
                            .execute(self.write_pool())
                            .await?;
                    }
                    None => {
                        sqlx::query("UPDATE operator_keys SET last_used_at = $2 WHERE id = $1")
                            .bind(id)
                            .bind(now)
                            .execute(self.write_pool())
                            .await?;
                    }
                }
                Ok(())
            }

            async fn revoke_tenant_key(
                &self,
                tenant: TenantId,
                id: Uuid,
                audit: &AuditEntry,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    Self::audit_on(&mut tx, tenant, audit).await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn list_tenant_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKeyRecord>> {
                let sql = format!(
                    "SELECT tenant_id, role, {KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
                );
                let rows: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .fetch_all(self.read_pool())
                    .await?;
                rows.into_iter().map(ApiKeyRecord::try_from).collect()
            }

            async fn token_health(
                &self,
                tenant: Option<TenantId>,
                soon: DateTime<Utc>,
            ) -> StoreResult<Vec<TokenHealth>> {
                let rows: Vec<(Uuid, String, Option<DateTime<Utc>>, String)> = sqlx::query_as(
                    "SELECT c.tenant_id, t.slug, c.token_expires_at, c.token_status FROM channel_accounts c \
                     JOIN tenants t ON t.id = c.tenant_id WHERE c.channel = 'whatsapp' \
                     AND ($1 IS NULL OR c.tenant_id = $1) \
                     AND (c.token_status = 'expired' OR c.token_expires_at < $2) ORDER BY t.slug",
                )
                .bind(tenant.map(|t| t.0))
                .bind(soon)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(t, slug, expires_at, status)| TokenHealth { tenant_id: TenantId(t), slug, expires_at, status })
                    .collect())
            }

            async fn insert_audit(&self, tenant: TenantId, entry: &AuditEntry) -> StoreResult<()> {
                let mut conn = self.write_pool().acquire().await?;
                Self::audit_on(&mut conn, tenant, entry).await
            }

            async fn list_audit(
                &self,
                tenant: TenantId,
                before: Option<DateTime<Utc>>,
                limit: i64,
            ) -> StoreResult<Vec<AuditEntry>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, actor, action, resource, before, after, at FROM audit_log \
                     WHERE tenant_id = $1 AND ($2 IS NULL OR at < $2) ORDER BY at DESC, id DESC LIMIT $3",
                )
                .bind(tenant.0)
                .bind(before)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(AuditEntry::from).collect())
            }
        }

        impl $store {
            async fn audit_on(conn: &mut $conn, tenant: TenantId, a: &AuditEntry) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_log (tenant_id, id, actor, action, resource, before, after, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant.0)
                .bind(a.id)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(&a.resource)
                .bind(a.before.as_ref().map(Json))
                .bind(a.after.as_ref().map(Json))
                .bind(a.at)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_admin_store;
