//! `parley prompt`: versioned prompts per tenant. A new version changes nothing until
//! it is published; rolling back is publishing an older version.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;

use crate::app::open_store;
use crate::config::Config;
use crate::provisioning::tenant_by_slug;
use crate::store::conversations::PROMPT_KINDS;

#[derive(Subcommand, Debug)]
pub enum PromptCommand {
    /// Store a new version of a tenant's prompt (not live until published).
    #[command(
        after_help = "Example:\n  parley prompt create --tenant acme-bikes --kind system --file prompt.md --by alice\n  \
        echo 'You are {assistant_name} of {business_name}…' | parley prompt create --tenant acme-bikes\n\n\
        Prints the new version number. Variables: {assistant_name} {business_name} {timezone}\n\
        {local_time} {faq_context} {categories} {max_response_length} {tone}."
    )]
    Create {
        #[arg(long)]
        tenant: String,
        /// system (the assistant's instructions) or classifier (the JSON it returns).
        #[arg(long, default_value = "system")]
        kind: String,
        /// Read the prompt from this file (default: stdin).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// A note kept with the version.
        #[arg(long)]
        note: Option<String>,
        /// Who made it (recorded).
        #[arg(long, default_value_t = super::cli_actor())]
        by: String,
    },
    /// Make a version live (also how to roll back: publish the older one).
    #[command(
        after_help = "Example:\n  parley prompt publish --tenant acme-bikes --kind system 3 --by alice\n\n\
        Running servers pick it up within about a second."
    )]
    Publish {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "system")]
        kind: String,
        version: i64,
        #[arg(long, default_value_t = super::cli_actor())]
        by: String,
    },
    /// List a tenant's versions and publications (newest publication = live).
    #[command(after_help = "Example:\n  parley prompt list --tenant acme-bikes --kind system")]
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "system")]
        kind: String,
    },
}

fn check_kind(kind: &str) -> anyhow::Result<()> {
    if !PROMPT_KINDS.contains(&kind) {
        anyhow::bail!(
            "--kind must be one of {}, got {kind:?}",
            PROMPT_KINDS.join(", ")
        );
    }
    Ok(())
}

pub async fn run(cmd: PromptCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let now = chrono::Utc::now();
    match cmd {
        PromptCommand::Create {
            tenant,
            kind,
            file,
            note,
            by,
        } => {
            check_kind(&kind)?;
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            let mut body = String::new();
            match file {
                Some(f) => {
                    body = std::fs::read_to_string(&f)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?
                }
                None => {
                    std::io::stdin().read_to_string(&mut body)?;
                }
            }
            if body.trim().is_empty() {
                anyhow::bail!("the prompt is empty; give it with --file or on stdin");
            }
            if body.len() > 20_000 {
                anyhow::bail!("the prompt is {} bytes; keep it under 20000", body.len());
            }
            let v = store
                .create_prompt_version(t.id, &kind, &body, note.as_deref(), &by, now)
                .await?;
            eprintln!(
                "created {kind} prompt version {} for {tenant} (not live until `parley prompt publish --tenant {tenant} --kind {kind} {}`)",
                v.version, v.version
            );
            println!("{}", v.version);
        }
        PromptCommand::Publish {
            tenant,
            kind,
            version,
            by,
        } => {
            check_kind(&kind)?;
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            match store
                .publish_prompt_version(t.id, &kind, version, &by, now)
                .await
            {
                Ok(p) => println!("published {kind} prompt version {} for {tenant}", p.version),
                Err(crate::store::StoreError::NotFound(_)) => anyhow::bail!(
                    "{tenant} has no {kind} prompt version {version}; see `parley prompt list --tenant {tenant} --kind {kind}`"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        PromptCommand::List { tenant, kind } => {
            check_kind(&kind)?;
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            let versions = store.list_prompt_versions(t.id, &kind).await?;
            let pubs = store.list_prompt_publications(t.id, &kind).await?;
            let live = pubs.first().map(|p| p.version);
            if versions.is_empty() {
                println!("{tenant} has no {kind} prompt versions; the built-in prompt is used");
            }
            for v in &versions {
                let mark = if Some(v.version) == live { "*" } else { " " };
                let first = v.body.lines().next().unwrap_or("");
                println!(
                    "{mark} v{:<4} {}  by {:<16} {}",
                    v.version,
                    v.created_at.format("%Y-%m-%d %H:%M"),
                    v.created_by,
                    crate::runtime::trim_to(first, 60)
                );
            }
            if !pubs.is_empty() {
                println!("publications (newest first):");
                for p in &pubs {
                    println!(
                        "  v{:<4} {}  by {}",
                        p.version,
                        p.published_at.format("%Y-%m-%d %H:%M:%S"),
                        p.published_by
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
