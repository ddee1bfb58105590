//! Whose rows the current task may touch on PostgreSQL (row-level security): a tenant
//! while serving that tenant's admin API request, everyone ('*') for parley's own
//! cross-tenant work. Every connection handed out by the pool is set to the scope of
//! the task that takes it (`parley.tenant_id`).

use crate::domain::TenantId;

tokio::task_local! {
    static SCOPE: TenantId;
}

/// Runs `fut` with the database scoped to `tenant`.
pub async fn with_tenant<F: std::future::Future>(tenant: TenantId, fut: F) -> F::Output {
    SCOPE.scope(tenant, fut).await
}

/// The value for `parley.tenant_id` in this task: its tenant, or `*`.
pub fn current() -> String {
    SCOPE
        .try_with(|t| t.0.to_string())
        .unwrap_or_else(|_| "*".to_string())
}
