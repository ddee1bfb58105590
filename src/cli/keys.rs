//! `parley keys generate | rotate | status`.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::app::open_store;
use crate::config::Config;
use crate::crypto;
use crate::provisioning::rotate_keys;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a new random master key (base64 of 32 bytes).
    #[command(after_help = "Example:\n  export PARLEY_MASTER_KEY=$(parley keys generate)")]
    Generate,
    /// Re-seal every tenant secret under the active key (PARLEY_MASTER_KEY).
    #[command(after_help = "Example: rotating the master key\n\
        1. keep the current key:  OLD=$PARLEY_MASTER_KEY\n\
        2. make a new one:        export PARLEY_MASTER_KEY=$(parley keys generate)\n\
        3. give the old one too:  export PARLEY_PREVIOUS_MASTER_KEYS=$OLD\n\
        4. re-seal:               parley keys rotate\n\
        5. when it reports every secret under the new key, drop PARLEY_PREVIOUS_MASTER_KEYS\n\
           and restart the servers with the new PARLEY_MASTER_KEY.\n\
        Safe to run again; a secret that cannot be opened is named and left as it is.")]
    Rotate,
    /// Show how many secrets each key seals, and which keys this process holds.
    #[command(after_help = "Example:\n  parley keys status")]
    Status,
}

pub async fn run(cmd: KeysCommand, config: Config) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate => {
            println!("{}", crypto::generate_key_b64().expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Status => {
            let store = open_store(&config).await?;
            let keys = config.key_ring()?;
            println!("active key: {}", keys.active_key_id());
            for (id, n) in store.count_secrets_by_key().await? {
                let known = if id == keys.active_key_id() {
                    "active"
                } else if keys.key_ids().contains(&id) {
                    "previous"
                } else {
                    "NOT IN KEY RING"
                };
                println!("{id}  {n:>6} secret(s)  {known}");
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate => {
            let store = open_store(&config).await?;
            let keys = config.key_ring()?;
            eprintln!("re-sealing secrets under key {}", keys.active_key_id());
            let mut last_shown = 0;
            let report = rotate_keys(store.as_ref(), &keys, chrono::Utc::now(), |done, total| {
                if done == total || done - last_shown >= 100 {
                    last_shown = done;
                    eprint!("\r  {done}/{total} secrets checked");
                    let _ = std::io::stderr().flush();
                }
            })
            .await?;
            eprintln!();
            println!(
                "{} re-sealed, {} already under the active key, {} failed (of {})",
                report.rotated,
                report.already_current,
                report.failures.len(),
                report.total
            );
            if report.failures.is_empty() {
                println!(
                    "every secret is sealed under key {}; previous keys are no longer needed",
                    keys.active_key_id()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                for f in &report.failures {
                    eprintln!("error: {f}");
                }
                eprintln!(
                    "those secrets were left unchanged: add the key they were sealed with to \
                     PARLEY_PREVIOUS_MASTER_KEYS and run `parley keys rotate` again, or re-apply \
                     the tenant's bundle with the secret"
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
