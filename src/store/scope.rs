//! Whose rows the current task may touch on PostgreSQL (row-level security): a tenant
//! while serving that tenant's admin API request, everyone ('*') for parley's own
//! cross-tenant work. On PostgreSQL, tenant-scoped tasks take their connections from a
//! pool that sets `parley.tenant_id` to the task's scope on every acquire; everything
//! else uses pools whose connections are set to `*` once.

use crate::domain::TenantId;

tokio::task_local! {
    static SCOPE: TenantId;
}

/// Runs `fut` with the database scoped to `tenant`.
pub async fn with_tenant<F: std::future::Future>(tenant: TenantId, fut: F) -> F::Output {
    SCOPE.scope(tenant, fut).await
}

/// Whether this task is scoped to one tenant.
pub fn in_tenant_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// The value for `parley.tenant_id` in this task: its tenant, or `*`.
pub fn current() -> String {
    SCOPE
        .try_with(|t| t.0.to_string())
        .unwrap_or_else(|_| "*".to_string())
}
