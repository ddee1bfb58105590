//! Pure types and rules: ids, tenants, control settings, templates, training data and
//! the tenant bundle. Nothing here touches I/O.

pub mod access;
pub mod audit;
pub mod bundle;
mod ids;
pub mod message;
pub mod plan;
pub mod quiet;
mod tenant;

pub use ids::{TemplateId, TenantId, TrainingItemId};
pub use tenant::*;
