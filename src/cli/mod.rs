//! The `parley` command line: every operator action, each with `--help` and an example.

mod api_key;
mod conversation;
mod faq;
mod keys;
mod migrate;
mod prompt;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::telemetry;

const ENV_HELP: &str = "\
Environment:
  DATABASE_URL          sqlite://data/parley.db (default) or postgres://user@host/db
  PARLEY_MASTER_KEY     base64 of 32 bytes; seals tenant secrets (`parley keys generate`)
  PARLEY_BIND           address:port to serve on (default 127.0.0.1:8080)
  PARLEY_LOG_FORMAT     pretty (default) or json;  PARLEY_LOG: log filter, e.g. debug
See README.md for every variable.";

/// parley: a multi-tenant WhatsApp/chat bot runtime.
#[derive(Parser, Debug)]
#[command(name = "parley", version, about, after_help = ENV_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: webhooks, health checks, workers.
    #[command(
        after_help = "Example:\n  DATABASE_URL=sqlite://data/parley.db parley serve\n\n\
        Applies pending migrations, then listens on PARLEY_BIND. GET /healthz answers when the\n\
        process is up, GET /readyz when the database answers. Stops cleanly on Ctrl-C or SIGTERM."
    )]
    Serve,
    /// Apply, revert or list database migrations.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Create, update, inspect and export tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Master keys: generate one, re-seal every secret under the active key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Try a tenant's FAQ matching from the command line.
    #[command(subcommand)]
    Faq(faq::FaqCommand),
    /// Versioned LLM prompts: create, publish (or roll back), list.
    #[command(subcommand)]
    Prompt(prompt::PromptCommand),
    /// Conversations: who is answering, and releasing one back to the bot.
    #[command(subcommand)]
    Conversation(conversation::ConversationCommand),
    /// Keys for the admin API: tenant keys with a role, and operator keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(api_key::ApiKeyCommand),
}

/// How the audit log names an operator working from the command line.
pub(crate) fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    )
}

/// Parses the command line, runs the command, and maps errors to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let default_filter = match cli.command {
        Command::Serve => "info",
        _ => "warn",
    };
    telemetry::init(
        config.log_format,
        config.log_filter.as_deref(),
        default_filter,
    );
    // One runtime thread per core (tokio's default; `TOKIO_WORKER_THREADS` overrides).
    // It used to be at least 4, while SQLite writes ran on runtime threads; with the
    // writer on a thread of its own, 2 on 2 cores spend ~4 % less CPU per message
    // (benches/HISTORY.md, run 14): fewer threads to switch between.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate(c) => migrate::run(c, config).await,
        Command::Tenant(c) => tenant::run(c, config).await,
        Command::Keys(c) => keys::run(c, config).await,
        Command::Faq(c) => faq::run(c, config).await,
        Command::Prompt(c) => prompt::run(c, config).await,
        Command::Conversation(c) => conversation::run(c, config).await,
        Command::ApiKey(c) => api_key::run(c, config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let bind = config.bind;
    let state = crate::app::AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("binding {bind} (is another process using it? set PARLEY_BIND)")
    })?;
    crate::app::run(state, listener, crate::app::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
