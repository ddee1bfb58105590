//! `parley faq try --tenant SLUG`: test a tenant's FAQ set before going live.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::app::open_store;
use crate::config::Config;
use crate::faq::FaqSet;
use crate::provisioning::{ProvisionError, tenant_by_slug};

#[derive(Subcommand, Debug)]
pub enum FaqCommand {
    /// Match questions (one a line on stdin) against a tenant's FAQs; one JSON line each.
    #[command(
        after_help = "Example:\n  echo 'when are you open?' | parley faq try --tenant acme-bikes\n\n\
        Prints {\"question\", \"faq_id\", \"matched_question\", \"answer\", \"confidence\", \"answered\"}\n\
        per line; `answered` is true when the confidence reaches the tenant's threshold, i.e.\n\
        the bot would send that answer. Nothing is sent and nothing is stored."
    )]
    Try {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
}

pub async fn run(cmd: FaqCommand, config: Config) -> anyhow::Result<ExitCode> {
    let FaqCommand::Try { tenant } = cmd;
    let store = open_store(&config).await?;
    let t = tenant_by_slug(store.as_ref(), &tenant).await?;
    let state = store
        .load_tenant_state(t.id)
        .await?
        .ok_or(ProvisionError::UnknownTenant(tenant))?;
    let threshold = state.settings.unwrap_or_default().confidence_threshold;
    let faqs = FaqSet::build(&state.training);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let question = line?;
        if question.trim().is_empty() {
            continue;
        }
        let hit = faqs.best(&question);
        let confidence = hit
            .as_ref()
            .map(|h| (h.confidence * 1000.0).round() / 1000.0)
            .unwrap_or(0.0);
        let v = json!({
            "question": question,
            "faq_id": hit.as_ref().map(|h| h.item.id),
            "matched_question": hit.as_ref().map(|h| &h.item.question),
            "answer": hit.as_ref().map(|h| &h.item.answer),
            "confidence": confidence,
            "answered": hit.is_some() && confidence >= threshold,
        });
        writeln!(out, "{v}")?;
    }
    Ok(ExitCode::SUCCESS)
}
