//! `parley conversation`: see who is answering each conversation, and give one back to
//! the bot after a person handled it.

use std::process::ExitCode;

use clap::Subcommand;

use crate::app::open_store;
use crate::config::Config;
use crate::domain::Channel;
use crate::provisioning::tenant_by_slug;

#[derive(Subcommand, Debug)]
pub enum ConversationCommand {
    /// List a tenant's conversations, newest first.
    #[command(
        after_help = "Example:\n  parley conversation list --tenant acme-bikes --status human"
    )]
    List {
        #[arg(long)]
        tenant: String,
        /// Only conversations with this status: bot or human.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Give a conversation back to the bot (it was handed to a person).
    #[command(
        after_help = "Example:\n  parley conversation release --tenant acme-bikes 15551234567\n\n\
        CUSTOMER is the id `conversation list` shows (the WhatsApp id or user id)."
    )]
    Release {
        #[arg(long)]
        tenant: String,
        customer: String,
    },
}

pub async fn run(cmd: ConversationCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    match cmd {
        ConversationCommand::List {
            tenant,
            status,
            limit,
        } => {
            if let Some(s) = &status
                && !["bot", "human", "closed"].contains(&s.as_str())
            {
                anyhow::bail!("--status must be bot, human or closed, got {s:?}");
            }
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            let rows = store
                .list_conversations(t.id, status.as_deref(), None, limit.clamp(1, 1000))
                .await?;
            for c in rows {
                println!(
                    "{:<24} {:<6} last {}  {}",
                    c.customer_id,
                    c.status,
                    c.last_message_at.format("%Y-%m-%d %H:%M"),
                    c.handoff_reason.unwrap_or_default()
                );
            }
        }
        ConversationCommand::Release { tenant, customer } => {
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            let released = store
                .release_conversation(
                    t.id,
                    Channel::Whatsapp,
                    &customer,
                    &crate::cli::cli_actor(),
                    chrono::Utc::now(),
                )
                .await?;
            if !released {
                anyhow::bail!(
                    "{tenant} has no conversation with {customer}; see `parley conversation list --tenant {tenant}`"
                );
            }
            println!("the bot answers {customer} again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
