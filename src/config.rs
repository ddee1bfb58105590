//! Configuration from the environment (`DATABASE_URL`, `PARLEY_*`, and `_FILE`
//! variants for secrets), validated at start with messages that say how to fix it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{self, KeyRing};

/// The database used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/parley.db";
/// Meta's Graph API, pinned to the version parley is tested against.
pub const DEFAULT_WHATSAPP_API_BASE: &str = "https://graph.facebook.com/v25.0";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A database URL whose `Debug`/`Display` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_sqlite(&self) -> bool {
        self.expose().starts_with("sqlite:")
    }

    pub fn is_postgres(&self) -> bool {
        let u = self.expose();
        u.starts_with("postgres:") || u.starts_with("postgresql:")
    }

    /// The database file of a SQLite URL (`None` for in-memory or other backends).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let u = self.expose();
        if !self.is_sqlite() || u.contains(":memory:") || u.contains("mode=memory") {
            return None;
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(u).ok()?;
        Some(opts.get_filename().to_path_buf())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.expose();
        // scheme://user:password@host → scheme://user:****@host
        match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &u[s + 3..at];
                let user = creds.split(':').next().unwrap_or("");
                let masked = if creds.contains(':') { ":****" } else { "" };
                write!(f, "{}{}{}{}", &u[..s + 3], user, masked, &u[at..])
            }
            _ => f.write_str(u),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object a line, for log collectors.
    Json,
}

/// Everything parley reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub master_key: Option<SecretString>,
    pub previous_master_keys: Vec<SecretString>,
    pub whatsapp_api_base: String,
    /// Pipeline read receipts on shared HTTP/1.1 connections to a plain-HTTP base
    /// (`PARLEY_WHATSAPP_PIPELINE_RECEIPTS`, default on).
    pub pipeline_receipts: bool,
    pub log_format: LogFormat,
    /// `tracing` filter directives; `None` = the command's default.
    pub log_filter: Option<String>,
    /// Apply pending migrations when a command opens the database.
    pub auto_migrate: bool,
    /// How long a tenant's loaded context may be served from memory.
    pub cache_ttl: Duration,
    /// How often cached tenants are compared with the database's revisions.
    pub cache_sync_interval: Duration,
    /// How often idle workers look for work they were not woken for.
    pub poll_interval: Duration,
    /// How long a busy worker waits between two batches so that the next batch, and so
    /// the next transaction, carries more messages (0: never wait).
    pub batch_linger: Duration,
    /// Inbox (pipeline) batches in work at once per process, and the sender's batches
    /// waiting for the database.
    pub worker_tasks: usize,
    /// Batches of replies on their way to the provider at once per process: each waits
    /// one Graph API round trip (100–300 ms from most places) with its sends in flight.
    pub send_tasks: usize,
    /// Nice value asked for the SQLite writer thread (Linux; 0 leaves it alone).
    pub sqlite_writer_nice: i32,
    /// How long a claimed message stays with its worker before another may take it.
    pub work_lease: Duration,
    /// First retry delay of a failed send (doubled per attempt, with jitter).
    pub retry_base: Duration,
    /// Send attempts before a message is given up (dead-lettered).
    pub max_send_attempts: i64,
    /// Run the inbox and outbox workers in this process (off: webhooks and API only).
    pub run_workers: bool,
    /// Connecting to a tenant's LLM provider may take this long.
    pub llm_connect_timeout: Duration,
    /// One LLM call may take this long in all; then the tenant's fallback is sent.
    pub llm_timeout: Duration,
    /// LLM calls in flight at once (across tenants).
    pub llm_concurrency: usize,
    /// The SMTP relay for email notifications (`PARLEY_SMTP_URL`, may hold a password)
    /// and the sender address (`PARLEY_SMTP_FROM`); `None` = no email.
    pub smtp: Option<(SecretString, String)>,
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match var(name)? {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got {v:?}")),
        None => Ok(default),
    }
}

/// A count of batches in work at once (`PARLEY_WORKER_TASKS`, `PARLEY_SEND_TASKS`):
/// a whole number from 1 to 64.
fn tasks(name: &str, default: usize) -> anyhow::Result<usize> {
    let n: usize = number(name, default)?;
    if !(1..=64).contains(&n) {
        bail!("{name} must be between 1 and 64, got {n}");
    }
    Ok(n)
}

/// Reads a variable, or the file named by `NAME_FILE` (trailing newline dropped).
fn var(name: &str) -> anyhow::Result<Option<String>> {
    let direct = std::env::var(name).ok().filter(|v| !v.is_empty());
    let file_var = format!("{name}_FILE");
    let file = std::env::var(&file_var).ok().filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => bail!("both {name} and {file_var} are set; set only one"),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let v = std::fs::read_to_string(&path)
                .with_context(|| format!("{file_var}: cannot read {path}"))?;
            Ok(Some(v.trim_end_matches(['\n', '\r']).to_string()))
        }
        (None, None) => Ok(None),
    }
}

fn parse_bool(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, got {v:?}"),
    }
}

impl Config {
    /// Reads and checks the environment; the error says what to change.
    pub fn from_env() -> anyhow::Result<Self> {
        let database_url = DatabaseUrl::new(
            var("DATABASE_URL")?.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
        );
        if !database_url.is_sqlite() && !database_url.is_postgres() {
            bail!(
                "DATABASE_URL must start with sqlite: or postgres:, e.g. {DEFAULT_DATABASE_URL} \
                 or postgres://parley@localhost/parley"
            );
        }
        let bind_s = var("PARLEY_BIND")?.unwrap_or_else(|| DEFAULT_BIND.to_string());
        let bind = bind_s.parse().map_err(|_| {
            anyhow::anyhow!("PARLEY_BIND must be address:port, e.g. 0.0.0.0:8080; got {bind_s:?}")
        })?;
        let master_key = var("PARLEY_MASTER_KEY")?.map(SecretString::from);
        if let Some(k) = &master_key {
            crypto::decode_key(k).map_err(|e| {
                anyhow::anyhow!("PARLEY_MASTER_KEY {e}; make a new one with `parley keys generate`")
            })?;
        }
        let previous_master_keys: Vec<SecretString> = var("PARLEY_PREVIOUS_MASTER_KEYS")?
            .map(|v| {
                v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        for (i, k) in previous_master_keys.iter().enumerate() {
            crypto::decode_key(k)
                .map_err(|e| anyhow::anyhow!("PARLEY_PREVIOUS_MASTER_KEYS: key #{} {e}", i + 1))?;
        }
        let whatsapp_api_base = var("PARLEY_WHATSAPP_API_BASE")?
            .unwrap_or_else(|| DEFAULT_WHATSAPP_API_BASE.to_string())
            .trim_end_matches('/')
            .to_string();
        if crate::channels::whatsapp::check_base(&whatsapp_api_base).is_err() {
            bail!(
                "PARLEY_WHATSAPP_API_BASE must be an http(s) URL, e.g. {DEFAULT_WHATSAPP_API_BASE}"
            );
        }
        let log_format = match var("PARLEY_LOG_FORMAT")?.as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("PARLEY_LOG_FORMAT must be json or pretty, got {other:?}"),
        };
        let log_filter = var("PARLEY_LOG")?.or(std::env::var("RUST_LOG").ok());
        let pipeline_receipts = match var("PARLEY_WHATSAPP_PIPELINE_RECEIPTS")? {
            Some(v) => parse_bool("PARLEY_WHATSAPP_PIPELINE_RECEIPTS", &v)?,
            None => true,
        };
        let auto_migrate = match var("PARLEY_AUTO_MIGRATE")? {
            Some(v) => parse_bool("PARLEY_AUTO_MIGRATE", &v)?,
            None => true,
        };
        let cache_ttl = Duration::from_secs(number("PARLEY_CACHE_TTL_SECONDS", 30)?);
        let poll_interval = Duration::from_millis(number("PARLEY_POLL_INTERVAL_MS", 500)?.max(10));
        // SQLite's one writer gains most from larger transactions (every commit writes
        // each page it touched). On PostgreSQL, where the server is the limit, 20 ms
        // held its per-tenant usage rows too long (benches/HISTORY.md, run 15); since the
        // wait counts from the first request's arrival and a message is decided in the
        // transaction that stores it, 10 ms took the server's CPU at 2000 msg/s from
        // ~1.3 cores to ~0.9 against 3 ms (run 34); with a batch's writes in a few
        // statements (run 45), 40 ms let parley's highest passing step rise from 2200
        // to 3000 msg/s on that run's machine. Only a heavy load waits that long (the
        // linger is 0.5 ms per message of the last batch, up to this).
        let batch_linger = Duration::from_millis(number(
            "PARLEY_BATCH_LINGER_MS",
            if database_url.is_postgres() { 40 } else { 20 },
        )?);
        if batch_linger > Duration::from_secs(1) {
            bail!("PARLEY_BATCH_LINGER_MS must be at most 1000 (milliseconds)");
        }
        // PostgreSQL's batches wait on round trips, SQLite's on one writer: more help there.
        let worker_tasks = tasks(
            "PARLEY_WORKER_TASKS",
            if database_url.is_postgres() { 4 } else { 2 },
        )?;
        // Sending waits on the provider, not on the database: 8 batches of up to 256
        // replies keep ~13,000 replies a second going with Meta answering in 150 ms.
        let send_tasks = tasks("PARLEY_SEND_TASKS", 8)?;
        let sqlite_writer_nice: i32 = match var("PARLEY_SQLITE_WRITER_NICE")? {
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| (-20..=19).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "PARLEY_SQLITE_WRITER_NICE must be a nice value from -20 to 19, got {v:?}"
                    )
                })?,
            None => -10,
        };
        let cache_sync_interval =
            Duration::from_millis(number("PARLEY_CACHE_SYNC_MS", 1000)?.max(50));
        let work_lease = Duration::from_secs(number("PARLEY_WORK_LEASE_SECONDS", 30)?.max(1));
        let retry_base = Duration::from_millis(number("PARLEY_RETRY_BASE_MS", 1000)?);
        let max_send_attempts: i64 = number("PARLEY_MAX_SEND_ATTEMPTS", 8)?;
        if max_send_attempts < 1 {
            bail!("PARLEY_MAX_SEND_ATTEMPTS must be at least 1");
        }
        let llm_connect_timeout =
            Duration::from_millis(number("PARLEY_LLM_CONNECT_TIMEOUT_MS", 5000)?.max(1));
        let llm_timeout = Duration::from_millis(number("PARLEY_LLM_TIMEOUT_MS", 20_000)?.max(1));
        if llm_timeout >= work_lease {
            bail!(
                "PARLEY_LLM_TIMEOUT_MS ({} ms) must be shorter than PARLEY_WORK_LEASE_SECONDS ({} s), \
                 or a slow model would let another worker take the same message",
                llm_timeout.as_millis(),
                work_lease.as_secs()
            );
        }
        let llm_concurrency: usize = number("PARLEY_LLM_CONCURRENCY", 64)?;
        if llm_concurrency < 1 {
            bail!("PARLEY_LLM_CONCURRENCY must be at least 1");
        }
        let smtp = match (var("PARLEY_SMTP_URL")?, var("PARLEY_SMTP_FROM")?) {
            (Some(url), Some(from)) => {
                let url = SecretString::from(url);
                crate::channels::email::EmailSender::new(&url, &from)
                    .map_err(anyhow::Error::msg)?;
                Some((url, from))
            }
            (Some(_), None) => bail!(
                "PARLEY_SMTP_URL is set but PARLEY_SMTP_FROM is not; set the sender, e.g. PARLEY_SMTP_FROM=\"parley <alerts@example.com>\""
            ),
            (None, Some(_)) => bail!("PARLEY_SMTP_FROM is set but PARLEY_SMTP_URL is not"),
            (None, None) => None,
        };
        let run_workers = match var("PARLEY_WORKERS")? {
            Some(v) => parse_bool("PARLEY_WORKERS", &v)?,
            None => true,
        };
        Ok(Self {
            run_workers,
            database_url,
            bind,
            master_key,
            previous_master_keys,
            whatsapp_api_base,
            pipeline_receipts,
            log_format,
            log_filter,
            auto_migrate,
            cache_ttl,
            cache_sync_interval,
            poll_interval,
            batch_linger,
            worker_tasks,
            send_tasks,
            sqlite_writer_nice,
            work_lease,
            retry_base,
            max_send_attempts,
            llm_connect_timeout,
            llm_timeout,
            llm_concurrency,
            smtp,
        })
    }

    /// The key ring: from `PARLEY_MASTER_KEY`, or on SQLite from a key file beside the
    /// database (generated on first use). PostgreSQL requires the variable.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        let active = match (&self.master_key, self.database_url.sqlite_file()) {
            (Some(k), _) => k.clone(),
            (None, Some(db)) => local_key(&db)?,
            (None, None) if self.database_url.is_sqlite() => {
                tracing::warn!(
                    "PARLEY_MASTER_KEY is not set: using a throw-away key for this in-memory database"
                );
                crypto::generate_key_b64()
            }
            (None, None) => bail!(
                "PARLEY_MASTER_KEY is not set. On PostgreSQL parley needs a master key to seal \
                 tenant secrets: run `parley keys generate`, keep the value in your secret store, \
                 and set PARLEY_MASTER_KEY (or PARLEY_MASTER_KEY_FILE) for every instance"
            ),
        };
        KeyRing::new(&active, &self.previous_master_keys)
            .map_err(|e| anyhow::anyhow!("master key {e}"))
    }
}

/// The key file used on SQLite when no key is configured: `<db folder>/master.key`.
pub fn local_key_path(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("master.key")
}

fn local_key(db: &Path) -> anyhow::Result<SecretString> {
    let path = local_key_path(db);
    if path.exists() {
        let v = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the master key file {}", path.display()))?;
        let key = SecretString::from(v.trim().to_string());
        crypto::decode_key(&key)
            .map_err(|e| anyhow::anyhow!("the master key file {} {e}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            "PARLEY_MASTER_KEY is not set: using the master key file next to the database; \
             anyone who can read the data folder can open the secrets. Set PARLEY_MASTER_KEY in production"
        );
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = crypto::generate_key_b64();
    write_private(&path, key.expose_secret())?;
    tracing::warn!(
        path = %path.display(),
        "PARLEY_MASTER_KEY is not set: GENERATED A NEW MASTER KEY into the data folder. \
         Back it up: without it the stored tenant secrets cannot be opened. \
         Set PARLEY_MASTER_KEY in production"
    );
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating the master key file {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{contents}\n"))
        .with_context(|| format!("creating the master key file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_never_prints_its_password() {
        let u = DatabaseUrl::new("postgres://parley:hunter2@db.internal:5432/parley");
        assert_eq!(
            u.to_string(),
            "postgres://parley:****@db.internal:5432/parley"
        );
        assert!(!format!("{u:?}").contains("hunter2"));
    }

    #[test]
    fn the_sqlite_file_is_found_in_the_url() {
        let u = DatabaseUrl::new("sqlite://data/parley.db");
        assert_eq!(u.sqlite_file().unwrap(), PathBuf::from("data/parley.db"));
        assert!(DatabaseUrl::new("sqlite::memory:").sqlite_file().is_none());
    }
}
