//! `parley api-key`: make the keys the admin API takes. A tenant key carries a role;
//! an operator key (`--operator`) manages tenants. The key is printed once, on the
//! last line of stdout; only its hash is stored.

use std::process::ExitCode;

use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::app::open_store;
use crate::config::Config;
use crate::domain::access::Role;
use crate::provisioning::tenant_by_slug;

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once, on the last line of stdout.
    #[command(
        after_help = "Examples:\n  parley api-key create --tenant acme-bikes --role owner --name \"Ana's laptop\"\n  \
        parley api-key create --operator --name deploy-bot --expires-in-days 90\n\n\
        Roles: viewer (reads), staff (also handles conversations), admin (also edits bot\n\
        settings, FAQs, templates and prompts), owner (also manages keys and credentials).\n\
        Use it as: curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8080/api/v1/settings"
    )]
    Create {
        /// The tenant the key belongs to.
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        tenant: Option<String>,
        /// viewer, staff, admin or owner.
        #[arg(long, required_unless_present = "operator")]
        role: Option<String>,
        /// A platform operator key instead (creates, disables and deletes tenants).
        #[arg(long)]
        operator: bool,
        /// What the key is for (shown in listings).
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the key stops working (default: never).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List a tenant's keys (prefix, role, last use; never the key).
    #[command(after_help = "Example:\n  parley api-key list --tenant acme-bikes")]
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a tenant's key by its id (see `list`).
    #[command(after_help = "Example:\n  parley api-key revoke --tenant acme-bikes 0193c0de-…")]
    Revoke {
        #[arg(long)]
        tenant: String,
        id: uuid::Uuid,
    },
}

pub async fn run(cmd: ApiKeyCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let now = chrono::Utc::now();
    match cmd {
        ApiKeyCommand::Create {
            tenant,
            role,
            operator,
            name,
            expires_in_days,
        } => {
            let expires = match expires_in_days {
                Some(d) if !(1..=3650).contains(&d) => {
                    anyhow::bail!("--expires-in-days must be between 1 and 3650")
                }
                Some(d) => Some(now + chrono::Duration::days(d)),
                None => None,
            };
            if operator {
                let key = crate::auth::new_operator_key(&name, &super::cli_actor(), expires, now);
                store.insert_api_key(&key.record, None).await?;
                eprintln!(
                    "created operator key {} ({}); it is shown once, below:",
                    key.record.id, name
                );
                println!("{}", key.plaintext.expose_secret());
            } else {
                let slug = tenant.expect("clap requires --tenant without --operator");
                let role = role.as_deref().unwrap_or_default();
                let Some(role) = Role::parse(role) else {
                    anyhow::bail!(
                        "--role must be one of owner, admin, staff, viewer (got {role:?})"
                    );
                };
                let t = tenant_by_slug(store.as_ref(), &slug).await?;
                let (key, view) = crate::admin::keys::issue(
                    store.as_ref(),
                    t.id,
                    role,
                    &name,
                    &super::cli_actor(),
                    expires,
                    now,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                eprintln!(
                    "created {} key {} for {slug}; it is shown once, below:",
                    role.as_str(),
                    view.id
                );
                println!("{}", key.expose_secret());
            }
        }
        ApiKeyCommand::List { tenant } => {
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            for k in store.list_tenant_keys(t.id).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}  pk_{}_…  {:<7} {:<8} {}  last used {}",
                    k.id,
                    k.prefix,
                    k.role.map(Role::as_str).unwrap_or("-"),
                    state,
                    k.name,
                    k.last_used_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into())
                );
            }
        }
        ApiKeyCommand::Revoke { tenant, id } => {
            let t = tenant_by_slug(store.as_ref(), &tenant).await?;
            let audit = crate::domain::audit::AuditEntry::new(
                &super::cli_actor(),
                "api_key.revoke",
                format!("api_key:{id}"),
                None,
                None,
                now,
            );
            if !store.revoke_tenant_key(t.id, id, &audit, now).await? {
                anyhow::bail!(
                    "{tenant} has no active key {id}; see `parley api-key list --tenant {tenant}`"
                );
            }
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
