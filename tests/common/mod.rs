//! Test support: a fresh database per test on SQLite (a temp file) and on PostgreSQL
//! (a fresh schema on the server named by PARLEY_TEST_POSTGRES_URL), and a macro that
//! runs one async test body on both.
#![allow(dead_code)]

use std::sync::Arc;

pub mod logs;
pub mod meta;
pub mod smtp;

use parley::crypto::{KeyRing, generate_key_b64};
use parley::store::{self, Store};
use secrecy::SecretString;

/// The backends a test can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    /// SQLite in memory (`sqlite::memory:`): one connection, no hot writer, so the
    /// message loop runs on the store's shared sqlx statements. Raw SQL (`exec`,
    /// `count`) cannot reach it; one store lives as long as the `TestDb`.
    SqliteMemory,
}

/// A fresh, empty database that lives as long as this value.
pub struct TestDb {
    pub kind: Db,
    pub url: String,
    pub dir: tempfile::TempDir,
    schema: Option<(String, String)>,
    /// The in-memory database's one store (a second would be another database).
    memory: tokio::sync::OnceCell<Arc<dyn Store>>,
}

/// The PostgreSQL server for tests, if configured. Set means required: an unreachable
/// server fails the test, it is never skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("PARLEY_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    if url.is_none() && std::env::var_os("PARLEY_TEST_REQUIRE_POSTGRES").is_some() {
        panic!("PARLEY_TEST_REQUIRE_POSTGRES is set but PARLEY_TEST_POSTGRES_URL is not");
    }
    url
}

impl TestDb {
    /// `None` only for PostgreSQL when PARLEY_TEST_POSTGRES_URL is not set.
    pub async fn new(kind: Db) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            Db::Sqlite => {
                let url = format!("sqlite://{}/parley.db", dir.path().display());
                Some(TestDb {
                    kind,
                    url,
                    dir,
                    schema: None,
                    memory: Default::default(),
                })
            }
            Db::SqliteMemory => Some(TestDb {
                kind,
                url: "sqlite::memory:".into(),
                dir,
                schema: None,
                memory: Default::default(),
            }),
            Db::Postgres => {
                let Some(base) = postgres_url() else {
                    eprintln!(
                        "PARLEY_TEST_POSTGRES_URL is not set: this PostgreSQL test did not run"
                    );
                    return None;
                };
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PARLEY_TEST_POSTGRES_URL is set but unreachable: {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options[search_path]={schema}");
                Some(TestDb {
                    kind,
                    url,
                    dir,
                    schema: Some((base, schema)),
                    memory: Default::default(),
                })
            }
        }
    }

    /// A store on this database with every migration applied.
    /// In memory, every call returns the same store.
    pub async fn store(&self) -> Arc<dyn Store> {
        let open = || async {
            let s = store::connect(&self.url).await.expect("connect test store");
            s.migrate_up().await.expect("migrate test store");
            s
        };
        if self.kind == Db::SqliteMemory {
            return self.memory.get_or_init(open).await.clone();
        }
        open().await
    }

    /// Runs raw SQL on this database, for tests that must reach under the store
    /// (tampering with a ciphertext, counting rows after a cascade).
    pub async fn exec(&self, sql: &str) -> u64 {
        match self.kind {
            Db::SqliteMemory => panic!("raw SQL cannot reach an in-memory test database"),
            Db::Sqlite => {
                let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            Db::Postgres => {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        }
    }

    /// Counts rows with raw SQL (`SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str) -> i64 {
        match self.kind {
            Db::SqliteMemory => panic!("raw SQL cannot reach an in-memory test database"),
            Db::Sqlite => {
                let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Db::Postgres => {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.schema.take() {
            // Best effort, on its own thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&base).await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA {schema} CASCADE"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A key ring with one fresh key, and that key in base64.
pub fn key_ring() -> (KeyRing, SecretString) {
    let k = generate_key_b64();
    (KeyRing::new(&k, &[]).unwrap(), k)
}

/// A complete bundle for tenant `slug` with its own phone number id and token.
pub fn bundle(slug: &str, phone_number_id: &str, token: &str) -> serde_json::Value {
    serde_json::json!({
        "slug": slug,
        "name": format!("Tenant {slug}"),
        "timezone": "Europe/Berlin",
        "whatsapp": {
            "phone_number_id": phone_number_id,
            "business_account_id": "200000000000001",
            "access_token": token,
            "app_secret": format!("appsecret-{slug}-0123456789"),
            "verify_token": format!("verify-{slug}-0123456789"),
            "token_expires_at": "2027-01-01T00:00:00Z"
        },
        "ai": {"provider": "openrouter", "model": "meta-llama/llama-3.1-8b-instruct", "api_key": format!("sk-or-{slug}-abcdefghijklmnop")},
        "settings": {
            "confidence_threshold": 0.6,
            "max_messages_per_hour": 100,
            "max_messages_per_user_per_day": null,
            "quiet_hours": {"start": "22:00", "end": "07:30", "policy": "after_hours_message"},
            "escalation": {"categories": ["refund", "complaint"], "phone": "+4915112345678", "email": "owner@example.com",
                           "acknowledgement": "A colleague will take over."},
            "handoff_idle_minutes": 90,
            "after_hours_message": "We are closed; we answer at 07:30.",
            "llm_monthly_token_budget": 500000,
            "window_template": {"name": "reply_later", "language": "en_US"}
        },
        "templates": [
            {"name": "default", "system_prompt": format!("You are the assistant of {slug}."), "tone": "friendly", "max_response_length": 600, "is_default": true},
            {"name": "formal", "system_prompt": "Be formal.", "is_default": false}
        ],
        "faqs": [
            {"question": "What are your opening hours?", "answer": format!("9-18 ({slug})"), "examples": ["when are you open"], "category": "hours"},
            {"question": "Do you deliver?", "answer": format!("Yes ({slug})"), "priority": 3},
            {"question": "Thanks!", "answer": "You're welcome!", "kind": "canned_reply"}
        ]
    })
}

/// Runs each named `async fn(Db)` as two tests, `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::common::postgres_url().is_some() {
                        super::$name($crate::common::Db::Postgres).await
                    } else {
                        eprintln!("PARLEY_TEST_POSTGRES_URL is not set: the PostgreSQL run of this test did not run");
                    }
                }
            }
        )*
    };
}

/// Runs each named `async fn(Db)` as three tests: `NAME::sqlite`, `NAME::postgres`,
/// and `in_memory::NAME` on the in-memory store whose message loop runs on the shared sqlx
/// statements instead of SQLite's hot writer or PostgreSQL's array statements. Only for
/// tests that neither run raw SQL nor close the store and open it again.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!($($name),*);
        mod in_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::SqliteMemory).await
                }
            )*
        }
    };
}

/// A running app on 127.0.0.1:0 against a test database; stops when dropped.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub state: parley::app::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(
        db: &TestDb,
        keys: std::sync::Arc<KeyRing>,
        whatsapp_api_base: &str,
    ) -> TestApp {
        let mut config = test_config(&db.url);
        config.whatsapp_api_base = whatsapp_api_base.to_string();
        Self::spawn_with(db, keys, config).await
    }

    /// Spawns with a configuration of the caller's.
    pub async fn spawn_with(
        db: &TestDb,
        keys: std::sync::Arc<KeyRing>,
        config: parley::config::Config,
    ) -> TestApp {
        Self::spawn_with_clock(db, keys, config, Arc::new(parley::clock::SystemClock)).await
    }

    /// Spawns with a clock the test sets (quiet hours, delays, hand-off idle times).
    pub async fn spawn_with_clock(
        db: &TestDb,
        keys: std::sync::Arc<KeyRing>,
        config: parley::config::Config,
        clock: Arc<dyn parley::clock::Clock>,
    ) -> TestApp {
        let state = parley::app::AppState::with_clock(config, db.store().await, keys, clock);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(parley::app::run(state.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A configuration for tests: no environment read.
pub fn test_config(db_url: &str) -> parley::config::Config {
    parley::config::Config {
        database_url: parley::config::DatabaseUrl::new(db_url),
        bind: "127.0.0.1:0".parse().unwrap(),
        master_key: None,
        previous_master_keys: Vec::new(),
        whatsapp_api_base: "http://127.0.0.1:9/v25.0".into(),
        pipeline_receipts: true,
        log_format: parley::config::LogFormat::Pretty,
        log_filter: None,
        auto_migrate: true,
        cache_ttl: std::time::Duration::from_secs(30),
        cache_sync_interval: std::time::Duration::from_secs(1),
        poll_interval: std::time::Duration::from_millis(50),
        batch_linger: std::time::Duration::from_millis(3),
        // As in production: 4 loops per stage on PostgreSQL, 2 on SQLite.
        worker_tasks: if db_url.starts_with("postgres") { 4 } else { 2 },
        send_tasks: 8,
        sqlite_writer_nice: 0,
        work_lease: std::time::Duration::from_secs(30),
        llm_connect_timeout: std::time::Duration::from_secs(2),
        llm_timeout: std::time::Duration::from_millis(1500),
        llm_concurrency: 16,
        smtp: None,
        retry_base: std::time::Duration::from_millis(20),
        max_send_attempts: 5,
        run_workers: true,
    }
}
