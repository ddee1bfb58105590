//! Wiring: the shared application state and `run`, the one entry point that serves
//! HTTP on a given listener until `shutdown` resolves (tests bind 127.0.0.1:0).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use tokio::sync::Notify;

use crate::cache::TenantCache;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::KeyRing;
use crate::store::{self, Store};
use crate::workers::followers::Followers;
use crate::workers::ingest::Ingest;
use crate::workers::shaper::RateShaper;

/// What every handler and worker shares: one reference-counted [`AppParts`], so a
/// clone (axum makes one per request, each read receipt task another) is one atomic
/// increment instead of one per part (cloning ~20 `Arc`s was ~1.5 % of parley's CPU at
/// 6500 msg/s).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub store: Arc<dyn Store>,
    pub cache: TenantCache,
    pub keys: Arc<KeyRing>,
    pub config: Arc<Config>,
    /// The client for the Graph API at `PARLEY_WHATSAPP_API_BASE` (one connection
    /// pool, timeouts).
    pub graph: crate::channels::whatsapp::GraphClient,
    pub clock: Arc<dyn Clock>,
    /// Wakes the inbox worker when a webhook stored something.
    pub wake_pipeline: Arc<Notify>,
    /// Wakes the sender when the pipeline queued a reply.
    pub wake_sender: Arc<Notify>,
    /// Whose stored messages wait behind one of theirs in work here (wakes the
    /// pipeline when it is written).
    pub inbox_followers: Arc<Followers>,
    /// Whose queued replies wait behind one being sent here (wakes the sender when it
    /// is recorded).
    pub outbox_followers: Arc<Followers>,
    pub shaper: Arc<RateShaper>,
    /// Stores webhook events with group commit.
    pub ingest: Ingest,
    /// One client for every tenant's LLM calls.
    pub llm: crate::llm::LlmClient,
    /// Bounds the LLM calls in flight.
    pub llm_slots: Arc<tokio::sync::Semaphore>,
    /// Bounds the batches of messages the webhook handed straight to the pipeline;
    /// shutdown waits for them.
    pub pipe_slots: Arc<tokio::sync::Semaphore>,
    /// Bounds the batches of replies the pipeline leased and is sending itself
    /// (`PARLEY_SEND_TASKS`, as the sender's own batches); shutdown waits for them.
    pub send_slots: Arc<tokio::sync::Semaphore>,
    /// Bounds the read receipts going out on tasks of their own
    /// (`workers::sender::READ_RECEIPTS`); shutdown waits for them.
    pub receipt_slots: Arc<tokio::sync::Semaphore>,
    /// The SMTP relay for email notifications, when configured.
    pub email: Option<crate::channels::email::EmailSender>,
    /// Wakes the notifier when an email notification was queued.
    pub wake_notifier: Arc<Notify>,
    /// Failed admin API authentications, per key prefix and per address.
    pub auth_failures: crate::api::admin::auth::FailureLimiter,
}

/// Opens the database named in `config`, applying pending migrations if
/// `PARLEY_AUTO_MIGRATE` is on (the default).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(config.database_url.expose())
        .await
        .with_context(|| format!("opening the database {}", config.database_url))?;
    if config.auto_migrate {
        store::migrate_up_each(store.as_ref(), |m, took| match took {
            None => {
                tracing::info!(version = m.version, name = %m.description, "applying a migration")
            }
            Some(t) => tracing::info!(
                version = m.version,
                seconds = t.as_secs_f64(),
                "migration applied"
            ),
        })
        .await
        .context("applying database migrations (set PARLEY_AUTO_MIGRATE=false to skip)")?;
    }
    Ok(store)
}

impl AppState {
    /// Connects the store, loads the key ring and builds the caches.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Before any HTTPS client is built (they would fail without roots).
        crate::channels::whatsapp::check_system_roots()?;
        let store = open_store(&config).await?;
        let keys = Arc::new(config.key_ring()?);
        Ok(Self::with_parts(config, store, keys))
    }

    /// Builds the state from parts that are already open.
    pub fn with_parts(config: Config, store: Arc<dyn Store>, keys: Arc<KeyRing>) -> Self {
        Self::with_clock(config, store, keys, Arc::new(SystemClock))
    }

    /// As [`AppState::with_parts`], with a clock of the caller's (tests set the time).
    pub fn with_clock(
        config: Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let cache = TenantCache::new(store.clone(), keys.clone(), config.cache_ttl);
        // As many idle connections kept as there may be Graph API calls in flight (every
        // sending task's batch and every read receipt): with fewer, each burst of sends
        // closed the connections it had opened beyond the bound and the next burst
        // opened them again (~250 new connections a second at 5000 msg/s, README,
        // Benchmark). Idle ones still close after the pool's idle timeout (90 s).
        let graph_calls = config.send_tasks * crate::workers::sender::IN_FLIGHT
            + crate::workers::sender::READ_RECEIPTS;
        let graph =
            crate::channels::whatsapp::GraphClient::new(&config.whatsapp_api_base, graph_calls)
                .expect("PARLEY_WHATSAPP_API_BASE is checked when the config is read")
                .pipelining_receipts(config.pipeline_receipts);
        let wake_pipeline = Arc::new(Notify::new());
        let writers = match store.backend() {
            crate::store::Backend::Sqlite => 1,
            crate::store::Backend::Postgres => 4,
        };
        let inbox_followers = Arc::new(Followers::new(wake_pipeline.clone()));
        let wake_sender = Arc::new(Notify::new());
        let outbox_followers = Arc::new(Followers::new(wake_sender.clone()));
        let ingest = Ingest::spawn(
            store.clone(),
            wake_pipeline.clone(),
            inbox_followers.clone(),
            writers,
            config.batch_linger,
        );
        let llm = crate::llm::LlmClient::new(config.llm_connect_timeout, config.llm_timeout);
        let llm_slots = Arc::new(tokio::sync::Semaphore::new(config.llm_concurrency));
        let email = config.smtp.as_ref().map(|(url, from)| {
            crate::channels::email::EmailSender::new(url, from)
                .expect("PARLEY_SMTP_URL and PARLEY_SMTP_FROM are checked when the config is read")
        });
        let send_slots = Arc::new(tokio::sync::Semaphore::new(config.send_tasks));
        let pipe_slots = Arc::new(tokio::sync::Semaphore::new(config.worker_tasks));
        let receipt_slots = Arc::new(tokio::sync::Semaphore::new(
            crate::workers::sender::READ_RECEIPTS,
        ));
        Self(Arc::new(AppParts {
            graph,
            pipe_slots,
            receipt_slots,
            llm,
            llm_slots,
            send_slots,
            email,
            wake_notifier: Arc::new(Notify::new()),
            auth_failures: Default::default(),
            ingest,
            store,
            cache,
            keys,
            config: Arc::new(config),
            clock,
            wake_pipeline,
            wake_sender,
            inbox_followers,
            outbox_followers,
            shaper: Arc::new(RateShaper::default()),
        }))
    }
}

/// Serves the HTTP API on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?state.store.backend(), "parley is listening");
    let nice = state.config.sqlite_writer_nice;
    if nice != 0 {
        match state.store.favour_writer(nice).await {
            Ok(true) => tracing::info!(nice, "SQLite writer thread priority raised"),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                nice,
                error = %e,
                "cannot change the SQLite writer thread's priority (a negative nice value needs \
                 CAP_SYS_NICE); it runs at normal priority (PARLEY_SQLITE_WRITER_NICE=0 silences this)"
            ),
        }
    }
    let (stop_workers, stop) = tokio::sync::watch::channel(false);
    let workers = crate::workers::spawn_all(&state, stop);
    let app = crate::api::router(state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
    let _ = stop_workers.send(true);
    for w in workers {
        let _ = w.await;
    }
    // Messages handed to the pipeline, then replies it is still sending itself, then
    // read receipts on their way: let them finish and be recorded.
    let _ = state
        .pipe_slots
        .acquire_many(state.config.worker_tasks as u32)
        .await;
    let _ = state
        .send_slots
        .acquire_many(state.config.send_tasks as u32)
        .await;
    let _ = state
        .receipt_slots
        .acquire_many(crate::workers::sender::READ_RECEIPTS as u32)
        .await;
    state.store.close().await;
    served?;
    tracing::info!("parley stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
