//! parley: a multi-tenant WhatsApp/chat bot runtime. See README.md and DESIGN.md.

pub mod crypto;
pub mod domain;
pub mod store;
pub mod cache;
pub mod config;
pub mod provisioning;
pub mod telemetry;
pub mod api;
pub mod app;
pub mod cli;
