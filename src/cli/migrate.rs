//! `parley migrate up | down | status`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::store;

#[derive(Subcommand, Debug)]
pub enum MigrateCommand {
    /// Apply every pending migration.
    #[command(
        after_help = "Example:\n  DATABASE_URL=postgres://parley@db/parley parley migrate up\n\n\
        `parley serve` and the tenant commands also do this at start unless PARLEY_AUTO_MIGRATE=false."
    )]
    Up,
    /// Revert the last applied migration (drops what it created: data in it is lost).
    #[command(
        after_help = "Example:\n  parley migrate down && parley migrate status\n\n\
        Run with PARLEY_AUTO_MIGRATE=false for the commands that follow if the database should\n\
        stay at the older version; otherwise the next command re-applies it."
    )]
    Down,
    /// List every migration and whether it is applied.
    #[command(after_help = "Example:\n  parley migrate status")]
    Status,
}

pub async fn run(cmd: MigrateCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = store::connect(config.database_url.expose()).await?;
    match cmd {
        MigrateCommand::Up => {
            let n = store::migrate_up_each(store.as_ref(), |m, took| match took {
                None => println!("applying {:04} {} ...", m.version, m.description),
                Some(t) => println!("  done in {:.1} s", t.as_secs_f64()),
            })
            .await?;
            println!("applied {n} migration(s); database is at the latest version");
        }
        MigrateCommand::Down => match store.migrate_down().await? {
            Some(m) => println!("reverted {} {}", m.version, m.description),
            None => println!("nothing to revert: no migration is applied"),
        },
        MigrateCommand::Status => {
            for m in store.migration_status().await? {
                let state = if m.applied { "applied" } else { "pending" };
                println!("{:04} {:<8} {}", m.version, state, m.description);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
