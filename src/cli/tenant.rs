//! `parley tenant apply | list | show | export | enable | disable | delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::app::open_store;
use crate::config::Config;
use crate::provisioning::{self, ProvisionError, tenant_by_slug};

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create or update a tenant from a JSON bundle.
    #[command(after_help = "Example:\n  parley tenant apply examples/acme.json\n\n\
        The bundle is the tenant's whole configuration: what it leaves out is removed, except\n\
        secrets (tokens, keys), which keep their stored value when left out. Re-applying the\n\
        same file changes nothing; FAQs keep their ids while their question is unchanged.\n\
        An invalid file writes nothing and every bad field is named. See README.md, \"Tenant bundles\".")]
    Apply {
        /// Bundle file (JSON); `-` reads standard input.
        file: PathBuf,
        /// Show what would change without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// List tenants.
    #[command(after_help = "Example:\n  parley tenant list\n  parley tenant list --json")]
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a tenant's configuration; secrets show their last 4 characters at most.
    #[command(after_help = "Example:\n  parley tenant show acme")]
    Show { slug: String },
    /// Print a bundle that re-applies to the tenant's current state.
    #[command(after_help = "Example:\n  parley tenant export acme > acme.json\n  \
        parley tenant export acme --with-secrets -o backup/acme.json\n\n\
        Secrets are left out unless --with-secrets is given; a bundle without them still\n\
        re-applies, keeping the stored secrets.")]
    Export {
        slug: String,
        /// Include tokens and keys in plain text. Keep the output safe.
        #[arg(long)]
        with_secrets: bool,
        /// Write to this file (mode 0600 with --with-secrets) instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Let the bot answer for this tenant again.
    #[command(after_help = "Example:\n  parley tenant enable acme")]
    Enable { slug: String },
    /// Stop everything for this tenant: webhooks answer 404, nothing is sent.
    #[command(after_help = "Example:\n  parley tenant disable acme")]
    Disable { slug: String },
    /// Delete a tenant and everything it owns. Cannot be undone.
    #[command(after_help = "Example:\n  parley tenant delete acme --yes")]
    Delete {
        slug: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

fn read_bundle(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading the bundle {}", file.display()))
}

pub async fn run(cmd: TenantCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let now = chrono::Utc::now();
    match cmd {
        TenantCommand::Apply { file, dry_run } => {
            let json = read_bundle(&file)?;
            let keys = config.key_ring()?;
            match provisioning::apply_bundle(store.as_ref(), &keys, &json, dry_run, now).await {
                Ok(out) => {
                    let verb = match (dry_run, out.created, out.changes.is_empty()) {
                        (true, true, _) => "would create",
                        (true, false, true) => "unchanged (dry run):",
                        (true, false, false) => "would update",
                        (false, true, _) => "created",
                        (false, false, true) => "unchanged:",
                        (false, false, false) => "updated",
                    };
                    println!("{verb} tenant {} ({})", out.tenant.slug, out.tenant.id);
                    for c in &out.changes {
                        println!("  {c}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(ProvisionError::Invalid(errs)) => {
                    eprintln!(
                        "error: {} is not a valid tenant bundle; nothing was written:",
                        file.display()
                    );
                    for e in &errs.0 {
                        eprintln!("  {e}");
                    }
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
        TenantCommand::List { json } => {
            let tenants = store.list_tenants().await?;
            if json {
                for t in &tenants {
                    println!(
                        "{}",
                        serde_json::json!({"id": t.id, "slug": t.slug, "name": t.name,
                            "timezone": t.timezone, "active": t.active, "revision": t.revision})
                    );
                }
            } else if tenants.is_empty() {
                println!("no tenants yet; create one with `parley tenant apply FILE`");
            } else {
                println!("{:<24} {:<8} {:<20} NAME", "SLUG", "STATUS", "TIMEZONE");
                for t in &tenants {
                    let status = if t.active { "active" } else { "disabled" };
                    println!("{:<24} {:<8} {:<20} {}", t.slug, status, t.timezone, t.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Show { slug } => {
            let keys = config.key_ring()?;
            let view = provisioning::show_tenant(store.as_ref(), &keys, &slug).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Export {
            slug,
            with_secrets,
            output,
        } => {
            let keys = config.key_ring()?;
            let bundle =
                provisioning::export_bundle(store.as_ref(), &keys, &slug, with_secrets).await?;
            let text = serde_json::to_string_pretty(&bundle)? + "\n";
            match output {
                Some(path) => {
                    write_output(&path, &text, with_secrets)?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Enable { slug } => set_active(store.as_ref(), &slug, true, now).await,
        TenantCommand::Disable { slug } => set_active(store.as_ref(), &slug, false, now).await,
        TenantCommand::Delete { slug, yes } => {
            let t = tenant_by_slug(store.as_ref(), &slug).await?;
            if !yes {
                eprintln!(
                    "error: deleting tenant {slug} removes all its data; run again with --yes to confirm"
                );
                return Ok(ExitCode::FAILURE);
            }
            store.delete_tenant(t.id).await?;
            println!("deleted tenant {slug} ({})", t.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn set_active(
    store: &dyn crate::store::Store,
    slug: &str,
    active: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ExitCode> {
    let t = tenant_by_slug(store, slug).await?;
    let word = if active { "enabled" } else { "disabled" };
    if t.active == active {
        println!("tenant {slug} is already {word}");
    } else {
        store.set_tenant_active(t.id, active, now).await?;
        println!("tenant {slug} {word}");
    }
    Ok(ExitCode::SUCCESS)
}

fn write_output(path: &PathBuf, text: &str, private: bool) -> anyhow::Result<()> {
    #[cfg(unix)]
    if private {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        return Ok(());
    }
    let _ = private;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
