//! parley: a multi-tenant WhatsApp/chat bot runtime. See README.md and DESIGN.md.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod faq;
pub mod llm;
pub mod prompts;
pub mod provisioning;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod workers;
