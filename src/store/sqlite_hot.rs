//! The SQLite write path of the conversation loop, on a connection and a thread of
//! its own.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every statement is a
//! trip there and back: the transaction waits between statements until the calling
//! task is scheduled again, and under load that wait, not SQLite, limited how many
//! messages the single writer could take. Here the whole transaction runs as one piece
//! of synchronous code (rusqlite, each statement prepared once per batch) on the
//! writer's own thread, which `serve` gives a higher priority
//! (`PARLEY_SQLITE_WRITER_NICE`): it is the one serial resource, and a busy machine
//! that descheduled it in mid-transaction held up everything else. Same SQL and
//! same stored forms as the sqlx code in `messages.rs`, which PostgreSQL (and an
//! in-memory SQLite database) keeps using: ids as 16-byte blobs, times as RFC 3339
//! text, JSON as text, booleans as 0/1. The claims share their text with it; the other
//! statements here are single-row forms of its multi-row ones, so a change to one
//! must be made to the other (the same tests run both). Every other write goes
//! through sqlx's writer; the two connections meet only in SQLite's busy timeout, and
//! those writes are rare.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use sqlx::types::Json;
use uuid::Uuid;

use super::conversations::{CONVERSATION_COLS, ConversationState};
use super::messages::{
    ClaimedInbound, ClaimedOutbound, ConversationKey, DecideNow, Deciding, Handoff, InboundRecord,
    QuotaAsk, RANK_SQL, SendOutcome, SendResult, StatusRecord, StoredLeased,
    TAKE_QUOTA_SQL_NO_RETURNING, TurnRecord, claim_inbound_sql, claim_outbound_sql, delivery_rank,
    finish_or_leave, first_refused, lease_candidates, prepare_or_leave, raw_worth_keeping,
    sent_per_tenant, usage_per_tenant,
};
use super::rows::{InboundRow, OutboundRow};
use super::{StoreError, StoreResult};
use crate::domain::{Channel, TenantId};

/// Work for the writer thread: runs with its connection (`None` once closed).
type Job = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

/// Whether the writer's connection goes through the `sqlite-wal-batch` VFS, which hands
/// a commit's log frames to the kernel in a few large writes instead of two calls a
/// frame (README, Storage): yes unless `PARLEY_SQLITE_WAL_BATCH=0`.
fn gather_wal_writes() -> anyhow::Result<bool> {
    match std::env::var("PARLEY_SQLITE_WAL_BATCH").as_deref() {
        Err(_) | Ok("1") => Ok(true),
        Ok("0") => Ok(false),
        Ok(v) => anyhow::bail!("PARLEY_SQLITE_WAL_BATCH must be 1 (the default) or 0, got {v:?}"),
    }
}

/// The hot write path: its own connection to the database file, used for nothing
/// else, owned by a thread of its own (`parley-sqlite-writer`). Each transaction runs
/// there in one piece while the caller's task waits; the runtime threads carry on
/// meanwhile. A dedicated thread rather than a runtime thread: the writer is the one
/// serial resource of a SQLite deployment, and on a busy machine a runtime thread
/// holding it was descheduled for a third of the time it held it (benches/HISTORY.md, runs 9–11).
pub struct HotWriter {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HotWriter {
    /// Opens a writing connection to the database `file` (created and migrated by the
    /// sqlx pools already), with the same settings as theirs, and starts its thread.
    pub fn open(file: &Path) -> anyhow::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = if gather_wal_writes()? {
            let vfs = sqlite_wal_batch::register().map_err(anyhow::Error::msg)?;
            Connection::open_with_flags_and_vfs(file, flags, vfs)
        } else {
            Connection::open_with_flags(file, flags)
        }
        .with_context(|| format!("opening {} for the message loop", file.display()))?;
        db.busy_timeout(Duration::from_secs(10))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384; \
             PRAGMA wal_autocheckpoint = 40000;",
        )?;
        db.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("parley-sqlite-writer".into())
            .spawn(move || {
                let mut db = Some(db);
                while let Ok(job) = queue.recv() {
                    // A panicking job has rolled its transaction back (the transaction
                    // is dropped while unwinding) and its caller sees the writer gone
                    // for that one call; the next job runs normally.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut db)));
                }
            })
            .context("starting the SQLite writer thread")?;
        Ok(Self { jobs })
    }

    /// Runs `f` with the open connection on the writer thread, timed as `op`, and
    /// returns its result. Whatever `f` needs it owns: the caller may stop waiting (a
    /// dropped request) and `f` still runs to its end.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let asked = std::time::Instant::now();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db: &mut Option<Connection>| {
            let _timing = write_timing(op, asked, std::time::Instant::now());
            let out = match db.as_mut() {
                None => Err(StoreError::Unavailable("the store is closed".into())),
                Some(db) => f(db).map_err(store_error),
            };
            let _ = answer.send(out);
        });
        self.jobs.send(job).map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer thread; rolled back
    /// if `f` fails, and then still completes or rolls back as a whole if the caller
    /// stops waiting.
    async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run(op, move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on the writer's connection outside any transaction: reads that see
    /// every committed write, without a reader's own thread hop.
    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run(op, move |db| f(db)).await
    }

    /// The conversations of these customers (those that have one), as
    /// `ConversationStore::find_conversations`: one probe of the unique key each.
    pub async fn find_conversations(
        &self,
        keys: &[(TenantId, Channel, String)],
    ) -> StoreResult<Vec<((TenantId, Channel, String), ConversationState)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        self.read("find_conversations", move |db| conversations_of(db, keys))
            .await
    }

    /// Sets the writer thread's nice value (Linux: a per-thread attribute). A negative
    /// value needs `CAP_SYS_NICE` (root has it); without, this fails with a permission
    /// error and the thread keeps its priority.
    pub async fn set_nice(&self, nice: i32) -> std::io::Result<()> {
        let (done, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |_: &mut Option<Connection>| {
            let _ = done.send(set_thread_nice(nice));
        });
        let gone = || std::io::Error::other("the SQLite writer thread has stopped");
        self.jobs.send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// Closes the connection (after the writes already queued); later calls fail as
    /// unavailable.
    pub async fn close(&self) {
        let (done, closed) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db: &mut Option<Connection>| {
            db.take();
            let _ = done.send(());
        });
        if self.jobs.send(job).is_ok() {
            let _ = closed.await;
        }
    }

    /// Leases up to `limit` pending inbound messages, one per customer, oldest first
    /// (`claim_inbound_sql`, shared with the sqlx version).
    pub async fn claim_inbound(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedInbound>> {
        // SQLite numbers `$1` and `$2` by first appearance: bound positionally below.
        let sql = claim_inbound_sql(limit, "");
        let rows = self
            .write("claim_inbound", move |tx| {
                tx.prepare_cached(&sql)?
                    .query_map(rusqlite::params![ts(lease_until), ts(now)], inbound_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let mut out: Vec<ClaimedInbound> = rows
            .into_iter()
            .map(ClaimedInbound::try_from)
            .collect::<StoreResult<_>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Leases up to `limit` due outbound messages, one per customer (`claim_outbound_sql`,
    /// shared with the sqlx version).
    pub async fn claim_outbound(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedOutbound>> {
        let sql = claim_outbound_sql(limit, "");
        let rows = self
            .write("claim_outbound", move |tx| {
                tx.prepare_cached(&sql)?
                    .query_map(rusqlite::params![ts(lease_until), ts(now)], outbound_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(ClaimedOutbound::try_from).collect()
    }

    /// Stores a webhook's events; with `lease_until`, leases each new message that is
    /// its customer's only pending one and reads those customers' conversations; with
    /// `decide` too, decides the leased messages it can and writes their turns (leasing
    /// their replies until the given time), all in one transaction.
    pub async fn store_webhook(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: Option<DateTime<Utc>>,
        decide: Option<Deciding>,
    ) -> StoreResult<(usize, StoredLeased)> {
        // Each row is encoded into owned values before the writer is taken (the writer
        // thread then only runs SQLite), without copying the parsed records themselves.
        let rows = messages
            .iter()
            .map(|r| {
                use rusqlite::types::Value;
                let m = &r.message;
                Ok(vec![
                    Value::Blob(id(&r.tenant_id.0).to_vec()),
                    Value::Blob(id(&r.id).to_vec()),
                    Value::from(r.channel.as_str().to_string()),
                    Value::from(m.provider_message_id.clone()),
                    Value::from(m.provider_account_id.clone()),
                    Value::from(m.customer_id.clone()),
                    Value::from(m.customer_phone.clone()),
                    Value::from(m.customer_user_id.clone()),
                    Value::from(m.customer_name.clone()),
                    Value::from(m.kind.as_str().to_string()),
                    Value::from(m.text.clone()),
                    Value::from(m.reply_id.clone()),
                    Value::from(m.media.as_ref().map(json).transpose()?),
                    Value::from(m.context_message_id.clone()),
                    Value::from(raw_worth_keeping(m).then(|| json(&m.raw)).transpose()?),
                    Value::from(m.timestamp),
                    Value::from(ts(r.received_at)),
                ])
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(store_error)?;
        let statuses = statuses.to_vec();
        let lease = lease_until.map(ts);
        // The messages that may be leased (`lease_candidates`; none without a lease),
        // by index, with their customer's key, as a claim reads them back (see
        // `raw_worth_keeping`): handed out, and decided, as they are.
        let candidates: Vec<(usize, ConversationKey, ClaimedInbound)> = match lease {
            Some(_) => lease_candidates(messages)
                .into_iter()
                .map(|i| {
                    let r = &messages[i];
                    let key = (r.tenant_id, r.channel, r.message.customer_id.clone());
                    (i, key, ClaimedInbound::leased_from(r))
                })
                .collect(),
            None => Vec::new(),
        };
        let (new, leased, conversations, decided, replies) = self
            .write("store_webhook", move |tx| {
                // Which messages to lease: of the candidates, those new (not stored
                // before) with nothing of their customer's pending. Found before any
                // row is written, so that a message decided here is inserted already
                // done (one write of its row and its index entries, not an insert and
                // then an update).
                // The id of each message leased, by index.
                let mut leasing: Vec<Option<Uuid>> = vec![None; rows.len()];
                let mut leased = Vec::new();
                let mut leased_keys = Vec::new();
                {
                    let mut stored = tx.prepare_cached(
                        "SELECT 1 FROM inbound_messages WHERE tenant_id = ?1 AND channel = ?2 \
                         AND provider_message_id = ?3",
                    )?;
                    let mut waiting = tx.prepare_cached(
                        "SELECT 1 FROM inbound_messages WHERE tenant_id = ?1 AND channel = ?2 \
                         AND customer_id = ?3 AND state = 'pending' LIMIT 1",
                    )?;
                    for (i, (tenant, channel, customer), message) in candidates {
                        let tenant_id = id(&tenant.0);
                        if stored.exists(rusqlite::params![
                            tenant_id,
                            channel.as_str(),
                            message.message.provider_message_id
                        ])? || waiting.exists(rusqlite::params![
                            tenant_id,
                            channel.as_str(),
                            customer
                        ])? {
                            continue;
                        }
                        leasing[i] = Some(message.id);
                        leased.push(message);
                        leased_keys.push((tenant, channel, customer));
                    }
                }
                // What the pipeline looks up next, while the writer is here anyway.
                let conversations = conversations_of(tx, leased_keys)?;
                let (turns, now, reply_lease) = match decide.filter(|_| !leased.is_empty()) {
                    Some((decide, now, reply_lease)) => (
                        decide_now(tx, decide, &leased, &conversations)?,
                        now,
                        reply_lease,
                    ),
                    None => (Vec::new(), Utc::now(), None),
                };
                // The turns' contacts and conversations first: a decided message's row
                // names its conversation.
                let turn_conversations = turn_conversations(tx, &turns)?;
                let done: HashMap<Uuid, &TurnRecord> =
                    turns.iter().map(|t| (t.inbound_id, t)).collect();
                let at = ts(now);
                let mut insert = tx.prepare_cached(INSERT_INBOUND)?;
                let mut new = 0;
                for (i, mut row) in rows.into_iter().enumerate() {
                    use rusqlite::types::Value;
                    let lease_it = leasing[i].is_some();
                    let turn = leasing[i].and_then(|m| done.get(&m).copied());
                    let (claimed_until, state, processed_at, conversation) = match turn {
                        Some(t) => {
                            if !t.keep_text {
                                row[10] = Value::Null;
                                row[14] = Value::from(redacted_raw!().to_string());
                            }
                            let conversation = turn_conversations
                                .get(&(t.tenant_id, t.channel.as_str(), t.customer_id.as_str()))
                                .map(|c| Value::Blob(id(c).to_vec()));
                            (None, "done", Some(at.clone()), conversation)
                        }
                        None => (lease.clone().filter(|_| lease_it), "pending", None, None),
                    };
                    row.push(Value::from(claimed_until));
                    row.push(Value::from(i64::from(lease_it)));
                    row.push(Value::from(state.to_string()));
                    row.push(Value::from(processed_at));
                    row.push(conversation.unwrap_or(Value::Null));
                    row.extend(decision_values(turn)?);
                    let inserted = insert.execute(rusqlite::params_from_iter(row))?;
                    // Cannot happen (found new above, in this same transaction); were
                    // it to, the turn must not be written for a row that is not this.
                    if lease_it && inserted != 1 {
                        return Err(rusqlite::Error::StatementChangedRows(inserted));
                    }
                    new += inserted;
                }
                for s in &statuses {
                    apply_status(tx, s)?;
                }
                let replies =
                    write_turns(tx, &turns, &turn_conversations, now, reply_lease, false)?;
                // Left to the pipeline: the leased messages without a turn (every
                // prepared one has one; a message without would otherwise wait out
                // its lease).
                leased.retain(|m| !done.contains_key(&m.id));
                drop((insert, done, turn_conversations));
                Ok((new, leased, conversations, turns, replies))
            })
            .await?;
        Ok((
            new,
            StoredLeased {
                messages: leased,
                // Without a lease nothing was looked up: the pipeline does it.
                conversations: lease_until.map(|_| conversations),
                decided,
                replies,
            },
        ))
    }

    /// Writes the turns (`MessageStore::complete_inbound`); with `lease_until`, also
    /// leases the replies `complete_inbound_leasing` describes and returns them.
    pub async fn complete_inbound(
        &self,
        turns: &[TurnRecord],
        now: DateTime<Utc>,
        lease_until: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<ClaimedOutbound>> {
        if turns.is_empty() {
            return Ok(Vec::new());
        }
        let turns = turns.to_vec();
        self.write("complete_inbound", move |tx| {
            complete(tx, &turns, now, lease_until)
        })
        .await
    }

    /// Puts a claimed message back until `until` (`ConversationStore::defer_claim`).
    pub async fn defer_claim(
        &self,
        tenant: TenantId,
        message: Uuid,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write("defer_claim", move |tx| {
            tx.prepare_cached(
                "UPDATE inbound_messages SET claimed_until = ?3, attempts = attempts - 1 \
                 WHERE tenant_id = ?1 AND id = ?2 AND state = 'pending'",
            )?
            .execute(rusqlite::params![id(&tenant.0), id(&message), ts(until)])?;
            Ok(())
        })
        .await
    }

    /// Takes the chains' rate counters in one transaction (`MessageStore::take_quotas`),
    /// with the sqlx `take_quota`'s statement less its RETURNING.
    pub async fn take_quotas(&self, chains: Vec<Vec<QuotaAsk>>) -> StoreResult<Vec<Option<usize>>> {
        if chains.iter().all(Vec::is_empty) {
            return Ok(vec![None; chains.len()]);
        }
        self.write("take_quotas", move |tx| take_chains(tx, &chains))
            .await
    }

    pub async fn record_send_results(
        &self,
        results: &[SendResult],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if results.is_empty() {
            return Ok(());
        }
        let results = results.to_vec();
        self.write("record_send_results", move |tx| {
            record_results(tx, &results, now)
        })
        .await
    }
}

/// Takes the chains' rate counters (`MessageStore::take_quotas`), with the sqlx
/// `take_quota`'s statement less its RETURNING.
fn take_chains(
    tx: &Transaction<'_>,
    chains: &[Vec<QuotaAsk>],
) -> rusqlite::Result<Vec<Option<usize>>> {
    if chains.iter().all(Vec::is_empty) {
        return Ok(vec![None; chains.len()]);
    }
    let mut take = tx.prepare_cached(TAKE_QUOTA_SQL_NO_RETURNING)?;
    let mut take_one = |q: &QuotaAsk| {
        let changed = take.execute(rusqlite::params![
            id(&q.tenant.0),
            q.scope,
            ts(q.window_start),
            q.limit
        ])?;
        // A unit was taken if a row changed, unless the limit is below 1 (a new
        // counter then starts at 1, over it, as `TAKE_QUOTA_SQL`'s count says).
        Ok(changed == 1 && q.limit >= 1)
    };
    chains
        .iter()
        .map(|chain| first_refused(chain, &mut take_one))
        .collect()
}

/// Undoes `take_chains` within its transaction: one unit back to each counter a chain
/// took (those before the one it was refused at).
fn give_back(
    tx: &Transaction<'_>,
    chains: &[Vec<QuotaAsk>],
    reached: &[Option<usize>],
) -> rusqlite::Result<()> {
    let mut back = tx.prepare_cached(
        "UPDATE rate_counters SET count = count - 1 \
         WHERE tenant_id = ?1 AND scope = ?2 AND window_start = ?3",
    )?;
    for (chain, refused) in chains.iter().zip(reached) {
        for q in &chain[..refused.unwrap_or(chain.len()).min(chain.len())] {
            back.execute(rusqlite::params![
                id(&q.tenant.0),
                q.scope,
                ts(q.window_start)
            ])?;
        }
    }
    Ok(())
}

/// Records, when dropped, how long a write waited for the connection, held it, and
/// used the CPU meanwhile (`parley_sqlite_write_wait_seconds`,
/// `parley_sqlite_write_seconds`, `parley_sqlite_write_cpu_seconds`). Held time well
/// above CPU time means the thread holding the writer was not running: on a busy
/// machine, that is what caps the writer.
fn write_timing(
    op: &'static str,
    asked: std::time::Instant,
    started: std::time::Instant,
) -> impl Drop {
    struct Timing(
        &'static str,
        std::time::Instant,
        std::time::Instant,
        cpu_time::ThreadTime,
    );
    impl Drop for Timing {
        fn drop(&mut self) {
            metrics::histogram!("parley_sqlite_write_wait_seconds", "op" => self.0)
                .record(self.2.duration_since(self.1).as_secs_f64());
            metrics::histogram!("parley_sqlite_write_seconds", "op" => self.0)
                .record(self.2.elapsed().as_secs_f64());
            metrics::histogram!("parley_sqlite_write_cpu_seconds", "op" => self.0)
                .record(self.3.elapsed().as_secs_f64());
        }
    }
    Timing(op, asked, started, cpu_time::ThreadTime::now())
}

/// A time as sqlx stores it in SQLite (the claims compare these as text).
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn id(u: &Uuid) -> &[u8] {
    u.as_bytes().as_slice()
}

fn id_opt(u: &Option<Uuid>) -> Option<&[u8]> {
    u.as_ref().map(id)
}

fn json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(i)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Reads a time written by sqlx (RFC 3339) or by SQLite itself (`YYYY-MM-DD HH:MM:SS`).
fn time_at(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_time(&row.get::<_, String>(i)?, i)
}

fn parse_time(text: &str, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                format!("not a time: {text:?}").into(),
            )
        })
}

/// A time that may be NULL, as `time_at`.
fn time_opt_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(i)?
        .map(|t| parse_time(&t, i))
        .transpose()
}

/// A date as sqlx stores it in SQLite (`YYYY-MM-DD`).
fn date_opt_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<chrono::NaiveDate>> {
    row.get::<_, Option<String>>(i)?
        .map(|t| {
            chrono::NaiveDate::parse_from_str(&t, "%F").map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        })
        .transpose()
}

fn json_at<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<Json<T>>> {
    let text: Option<String> = row.get(i)?;
    text.map(|t| {
        serde_json::from_str(&t).map(Json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// The conversations of these customers (those that have one): one probe of the
/// unique key each.
fn conversations_of(
    db: &Connection,
    keys: Vec<ConversationKey>,
) -> rusqlite::Result<Vec<(ConversationKey, ConversationState)>> {
    let mut find = db.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLS} FROM conversations c \
         WHERE c.tenant_id = ?1 AND c.channel = ?2 AND c.customer_id = ?3"
    ))?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let found = find
            .query_row(
                rusqlite::params![id(&key.0.0), key.1.as_str(), key.2],
                |row| {
                    Ok(ConversationState {
                        id: uuid_at(row, 0)?,
                        status: row.get(1)?,
                        human_since: time_opt_at(row, 2)?,
                        human_activity_at: time_opt_at(row, 3)?,
                        handoff_reason: row.get(4)?,
                        after_hours_notice_night: date_opt_at(row, 5)?,
                    })
                },
            )
            .optional()?;
        if let Some(state) = found {
            out.push((key, state));
        }
    }
    Ok(out)
}

/// A row in the order of `INBOUND_COLS`.
fn inbound_row(row: &Row<'_>) -> rusqlite::Result<InboundRow> {
    Ok(InboundRow {
        tenant_id: uuid_at(row, 0)?,
        id: uuid_at(row, 1)?,
        channel: row.get(2)?,
        provider_message_id: row.get(3)?,
        provider_account_id: row.get(4)?,
        customer_id: row.get(5)?,
        customer_phone: row.get(6)?,
        customer_user_id: row.get(7)?,
        customer_name: row.get(8)?,
        kind: row.get(9)?,
        body: row.get(10)?,
        reply_id: row.get(11)?,
        media: json_at(row, 12)?,
        context_message_id: row.get(13)?,
        raw: json_at(row, 14)?,
        provider_timestamp: row.get(15)?,
        received_at: time_at(row, 16)?,
        attempts: row.get(17)?,
    })
}

/// A row in the order of `OUTBOUND_COLS`.
fn outbound_row(row: &Row<'_>) -> rusqlite::Result<OutboundRow> {
    Ok(OutboundRow {
        tenant_id: uuid_at(row, 0)?,
        id: uuid_at(row, 1)?,
        channel: row.get(2)?,
        provider_account_id: row.get(3)?,
        recipient: row.get(4)?,
        recipient_is_user_id: row.get(5)?,
        body: row.get(6)?,
        mark_read_message_id: row.get(7)?,
        attempts: row.get(8)?,
        purpose: row.get(9)?,
        window_closes_at: time_opt_at(row, 10)?,
        customer_id: row.get(11)?,
    })
}

#[cfg(target_os = "linux")]
fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // PRIO_PROCESS with a thread id: on Linux the nice value belongs to the thread.
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
        .map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::other("only supported on Linux"))
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".into())
}

fn store_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| e.to_string());
            match (f.code, f.extended_code) {
                (ErrorCode::ConstraintViolation, 2067 | 1555) => StoreError::Conflict(text),
                (ErrorCode::ConstraintViolation, 275) => StoreError::Invalid(text),
                (ErrorCode::ConstraintViolation, 787) => StoreError::NotFound("referenced row"),
                (ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _)
                | (ErrorCode::SystemIoFailure | ErrorCode::DiskFull, _) => {
                    StoreError::Unavailable(text)
                }
                _ => StoreError::Other(text),
            }
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// ?18 to ?22: the lease, attempts, state, and, for a row inserted done (decided in
/// the transaction that stores it), when it was processed and its conversation; ?23 to
/// ?26 its decision (`decision_values`), decided when it was processed.
const INSERT_INBOUND: &str = "INSERT INTO inbound_messages (tenant_id, id, channel, \
    provider_message_id, provider_account_id, customer_id, customer_phone, customer_user_id, \
    customer_name, kind, body, reply_id, media, context_message_id, raw, provider_timestamp, \
    received_at, claimed_until, attempts, state, processed_at, conversation_id, \
    decision_reason, decision_faq_id, decision_score, decision_detail, decided_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
    ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, CASE WHEN ?23 IS NULL THEN NULL ELSE ?21 END) \
    ON CONFLICT (tenant_id, channel, provider_message_id) DO NOTHING";

/// A turn's decision as the columns of its message's row (0014): reason, FAQ, score
/// and detail, all NULL without one (the tenant logs no decisions). The statements
/// take the time decided from the time processed.
fn decision_values(t: Option<&TurnRecord>) -> rusqlite::Result<[rusqlite::types::Value; 4]> {
    use rusqlite::types::Value;
    Ok(match t.and_then(|t| t.decision.as_ref()) {
        Some(d) => [
            Value::from(d.reason.clone()),
            Value::from(d.faq_id.map(|f| id(&f).to_vec())),
            Value::from(d.score),
            Value::from(d.detail.as_ref().map(json).transpose()?),
        ],
        None => [Value::Null, Value::Null, Value::Null, Value::Null],
    })
}

fn apply_status(tx: &Transaction<'_>, s: &StatusRecord) -> rusqlite::Result<()> {
    let st = &s.status;
    let code = st.errors.first().map(|e| e.code);
    let errors = (!st.errors.is_empty())
        .then(|| json(&st.errors))
        .transpose()?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO message_statuses (tenant_id, provider_message_id, status, provider_timestamp, \
             error_code, errors, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (tenant_id, provider_message_id, status) DO NOTHING",
        )?
        .execute(rusqlite::params![
            id(&s.tenant_id.0),
            st.provider_message_id,
            st.status,
            st.timestamp,
            code,
            errors,
            ts(s.received_at),
        ])?;
    if inserted == 1 {
        advance_delivery(
            tx,
            s.tenant_id,
            &st.provider_message_id,
            &st.status,
            code,
            s.received_at,
        )?;
    }
    Ok(())
}

/// Moves an outbound message's delivery status forward, never back.
fn advance_delivery(
    tx: &Transaction<'_>,
    tenant: TenantId,
    provider_message_id: &str,
    status: &str,
    code: Option<i64>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let rank = delivery_rank(status);
    if rank < 0 {
        return Ok(());
    }
    let new_status = if status == "played" { "read" } else { status };
    let failed = new_status == "failed";
    tx.prepare_cached(&format!(
        "UPDATE outbound_messages SET delivery_status = ?3, updated_at = ?4, \
         state = CASE WHEN ?5 THEN 'failed' ELSE state END, \
         error_code = COALESCE(?6, error_code) \
         WHERE tenant_id = ?1 AND provider_message_id = ?2 AND {RANK_SQL} < ?7"
    ))?
    .execute(rusqlite::params![
        id(&tenant.0),
        provider_message_id,
        new_status,
        ts(now),
        failed,
        code,
        rank,
    ])?;
    Ok(())
}

fn complete(
    tx: &Transaction<'_>,
    turns: &[TurnRecord],
    now: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
) -> rusqlite::Result<Vec<ClaimedOutbound>> {
    let conversations = turn_conversations(tx, turns)?;
    write_turns(tx, turns, &conversations, now, lease_until, true)
}

/// The conversation of each customer of `turns`, by key.
type TurnConversations<'a> = HashMap<(TenantId, &'static str, &'a str), Uuid>;

/// Decides the leased messages `decide` can, taking their rate counters, and returns
/// their turns. Deciding is in-memory work; should it panic, the webhook is still
/// stored and its messages left to the pipeline (no turns, and any counters taken for
/// them given back), rather than every webhook of the batch refused with it. (A
/// savepoint would do the same but copies every page the turns touch to a sub-journal
/// first: ~7 % of the CPU a message.)
fn decide_now(
    tx: &Transaction<'_>,
    mut decide: Box<dyn DecideNow>,
    leased: &[ClaimedInbound],
    conversations: &[(ConversationKey, ConversationState)],
) -> rusqlite::Result<Vec<TurnRecord>> {
    let Some(asked) = prepare_or_leave(decide.as_mut(), leased, conversations) else {
        return Ok(Vec::new());
    };
    let reached = take_chains(tx, &asked)?;
    match finish_or_leave(decide, reached.clone()) {
        Some(turns) => Ok(turns),
        None => {
            give_back(tx, &asked, &reached)?;
            Ok(Vec::new())
        }
    }
}

/// Upserts the contact and the conversation of each customer of `turns` (once per
/// customer, with the first turn's times, as the sqlx version does) and returns the
/// conversations' ids.
fn turn_conversations<'a>(
    tx: &Transaction<'_>,
    turns: &'a [TurnRecord],
) -> rusqlite::Result<TurnConversations<'a>> {
    let mut conversations: TurnConversations<'a> = HashMap::with_capacity(turns.len());
    if turns.is_empty() {
        return Ok(conversations);
    }
    let mut contact = tx.prepare_cached(
        "INSERT INTO contacts (tenant_id, channel, customer_id, phone, user_id, name, \
             first_seen_at, last_inbound_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
             phone = COALESCE(excluded.phone, contacts.phone), \
             user_id = COALESCE(excluded.user_id, contacts.user_id), \
             name = COALESCE(excluded.name, contacts.name), \
             last_inbound_at = CASE WHEN excluded.last_inbound_at > contacts.last_inbound_at \
             THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END",
    )?;
    // Without RETURNING, which SQLite runs through a temporary b-tree built afresh on
    // every execution: the id is read back by the same key instead (a page the upsert
    // has just visited).
    let mut conversation = tx.prepare_cached(
        "INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, last_message_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
         ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
         last_message_at = excluded.last_message_at",
    )?;
    let mut conversation_id = tx.prepare_cached(
        "SELECT id FROM conversations WHERE tenant_id = ?1 AND channel = ?2 AND customer_id = ?3",
    )?;
    let mut touch = tx.prepare_cached(
        "UPDATE conversations SET last_message_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
    )?;
    let mut create = tx.prepare_cached(
        "INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, last_message_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (tenant_id, channel, customer_id) DO NOTHING",
    )?;
    for t in turns {
        let key = (t.tenant_id, t.channel.as_str(), t.customer_id.as_str());
        if conversations.contains_key(&key) {
            continue;
        }
        let received = ts(t.received_at);
        contact.execute(rusqlite::params![
            id(&t.tenant_id.0),
            t.channel.as_str(),
            t.customer_id,
            t.customer_phone,
            t.customer_user_id,
            t.customer_name,
            received,
        ])?;
        // A known conversation is updated by id; an unknown one inserted with the id
        // chosen here. Only when neither takes (deleted, or made meanwhile by another
        // writer) the upsert runs and the id is read back by key.
        let known = match t.conversation_id {
            Some(c) => (touch.execute(rusqlite::params![id(&t.tenant_id.0), id(&c), received])?
                == 1)
                .then_some(c),
            None => {
                let fresh = Uuid::now_v7();
                let params = rusqlite::params![
                    id(&t.tenant_id.0),
                    id(&fresh),
                    t.channel.as_str(),
                    t.customer_id,
                    received,
                ];
                (create.execute(params)? == 1).then_some(fresh)
            }
        };
        let conv = match known {
            Some(c) => c,
            None => {
                conversation.execute(rusqlite::params![
                    id(&t.tenant_id.0),
                    id(&Uuid::now_v7()),
                    t.channel.as_str(),
                    t.customer_id,
                    received,
                ])?;
                conversation_id.query_row(
                    rusqlite::params![id(&t.tenant_id.0), t.channel.as_str(), t.customer_id],
                    |row| uuid_at(row, 0),
                )?
            }
        };
        conversations.insert(key, conv);
    }
    Ok(conversations)
}

/// Writes the turns' replies (leasing, with `lease_until`, the replies
/// `complete_inbound_leasing` describes, and returning them), extras and usage, in
/// `conversations` (`turn_conversations`); with `mark_done`, marks their messages done
/// with their decisions (not needed for rows inserted done, decision and all).
fn write_turns(
    tx: &Transaction<'_>,
    turns: &[TurnRecord],
    conversations: &TurnConversations<'_>,
    now: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    mark_done: bool,
) -> rusqlite::Result<Vec<ClaimedOutbound>> {
    if turns.is_empty() {
        return Ok(Vec::new());
    }
    let at = ts(now);
    let lease = lease_until.map(ts);
    let mut leased = Vec::new();
    let conv = |t: &TurnRecord| {
        conversations
            .get(&(t.tenant_id, t.channel.as_str(), t.customer_id.as_str()))
            .copied()
    };
    // ?18 and ?19: the lease (NULL and 0 for a reply left to the sender's claim).
    let mut outbound = tx.prepare_cached(
        "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, conversation_id, \
         inbound_message_id, channel, provider_account_id, recipient, recipient_is_user_id, \
         body, faq_id, mark_read_message_id, next_attempt_at, created_at, updated_at, \
         purpose, customer_id, window_closes_at, claimed_until, attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16, ?17, \
         ?18, ?19) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )?;
    // Whether a recipient has a pending message already (which goes first).
    let mut waiting = tx.prepare_cached(
        "SELECT 1 FROM outbound_messages WHERE tenant_id = ?1 AND channel = ?2 \
         AND customer_id = ?3 AND state = 'pending' LIMIT 1",
    )?;
    let mut recipients: std::collections::HashSet<(TenantId, Channel, &str)> =
        std::collections::HashSet::new();
    for t in turns {
        let conversation = conv(t);
        for o in &t.replies {
            // The sender's claim rule: a recipient's oldest pending message, once due;
            // and only to the turn's own customer, whose turns never run side by side
            // (a staff notification may come from two customers' turns at once).
            let first = recipients.insert((t.tenant_id, t.channel, o.customer_id.as_str()));
            let lease_it = lease.is_some()
                && first
                && o.customer_id == t.customer_id
                && o.next_attempt_at <= now
                && !waiting.exists(rusqlite::params![
                    id(&t.tenant_id.0),
                    t.channel.as_str(),
                    o.customer_id
                ])?;
            let inserted = outbound.execute(rusqlite::params![
                id(&t.tenant_id.0),
                id(&o.id),
                o.idempotency_key,
                id_opt(&conversation),
                id(&t.inbound_id),
                t.channel.as_str(),
                o.provider_account_id,
                o.recipient,
                o.recipient_is_user_id,
                o.body,
                id_opt(&o.faq_id),
                o.mark_read_message_id,
                ts(o.next_attempt_at),
                at,
                o.purpose,
                o.customer_id,
                ts_opt(o.window_closes_at),
                lease.as_deref().filter(|_| lease_it),
                i64::from(lease_it),
            ])?;
            if lease_it && inserted == 1 {
                leased.push(ClaimedOutbound::leased(t, o));
            }
        }
        turn_extras(tx, t, conversation, &at)?;
    }
    // Done, with the decision (`keep_first_decision`; inserted so when decided as it
    // was stored).
    if mark_done {
        let mut done = tx.prepare_cached(concat!(
            "UPDATE inbound_messages SET state = 'done', claimed_until = NULL, processed_at = ?3, \
             conversation_id = ?4, body = CASE WHEN ?5 THEN body ELSE NULL END, \
             raw = CASE WHEN ?5 THEN raw ELSE '",
            redacted_raw!(),
            "' END, ",
            keep_first_decision!("inbound_messages", "?6", "?7", "?8", "?9", "?3"),
            " WHERE tenant_id = ?1 AND id = ?2"
        ))?;
        for t in turns {
            use rusqlite::types::Value;
            let mut values = vec![
                Value::Blob(id(&t.tenant_id.0).to_vec()),
                Value::Blob(id(&t.inbound_id).to_vec()),
                Value::from(at.clone()),
                Value::from(conv(t).map(|c| id(&c).to_vec())),
                Value::from(t.keep_text),
            ];
            values.extend(decision_values(Some(t))?);
            done.execute(rusqlite::params_from_iter(values))?;
        }
    }
    // Slot 0 only (`usage_slot`): one writer, no concurrent transaction to spread over.
    let usage = usage_per_tenant(turns);
    let day = now.date_naive().format("%F").to_string();
    for (tenant, u) in usage {
        tx.prepare_cached(
            "INSERT INTO usage_daily (tenant_id, day, slot, inbound, faq_answers, llm_calls, tokens_in, tokens_out) \
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (tenant_id, day, slot) DO UPDATE SET inbound = usage_daily.inbound + excluded.inbound, \
             faq_answers = usage_daily.faq_answers + excluded.faq_answers, \
             llm_calls = usage_daily.llm_calls + excluded.llm_calls, \
             tokens_in = usage_daily.tokens_in + excluded.tokens_in, \
             tokens_out = usage_daily.tokens_out + excluded.tokens_out",
        )?
        .execute(rusqlite::params![
            id(&tenant.0),
            day,
            u.inbound,
            u.faq_answers,
            u.llm_calls,
            u.tokens_in,
            u.tokens_out,
        ])?;
    }
    Ok(leased)
}

/// The rarer parts of a turn: hand-offs, after-hours notices, notifications, merged
/// bursts.
fn turn_extras(
    tx: &Transaction<'_>,
    t: &TurnRecord,
    conversation: Option<Uuid>,
    at: &str,
) -> rusqlite::Result<()> {
    let tenant = id(&t.tenant_id.0);
    let channel = t.channel.as_str();
    match &t.handoff {
        Some(Handoff::ToHuman { reason }) => {
            tx.prepare_cached(
                "UPDATE conversations SET status = 'human', human_since = ?4, human_activity_at = ?4, \
                 handoff_reason = ?5 WHERE tenant_id = ?1 AND channel = ?2 AND customer_id = ?3",
            )?
            .execute(rusqlite::params![tenant, channel, t.customer_id, at, reason])?;
        }
        Some(Handoff::ToBot) => {
            tx.prepare_cached(
                "UPDATE conversations SET status = 'bot', human_since = NULL, human_activity_at = NULL, \
                 handoff_reason = NULL WHERE tenant_id = ?1 AND channel = ?2 AND customer_id = ?3",
            )?
            .execute(rusqlite::params![tenant, channel, t.customer_id])?;
        }
        None => {}
    }
    if let Some(night) = t.notice_night {
        tx.prepare_cached(
            "UPDATE conversations SET after_hours_notice_night = ?4 \
             WHERE tenant_id = ?1 AND channel = ?2 AND customer_id = ?3",
        )?
        .execute(rusqlite::params![
            tenant,
            channel,
            t.customer_id,
            night.format("%F").to_string()
        ])?;
    }
    for n in &t.notifications {
        let send_at = (n.via == "email" && n.state == "queued").then(|| ts(n.send_at));
        tx.prepare_cached(
            "INSERT INTO notifications (tenant_id, id, inbound_message_id, customer_id, category, via, \
             target, outbound_message_id, state, detail, created_at, updated_at, subject, body, \
             next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
        )?
        .execute(rusqlite::params![
            tenant,
            id(&n.id),
            id(&t.inbound_id),
            t.customer_id,
            n.category,
            n.via,
            n.target,
            id_opt(&n.outbound_message_id),
            n.state,
            n.detail,
            at,
            n.subject,
            n.body,
            send_at,
        ])?;
    }
    for merged in &t.merged {
        tx.prepare_cached(
            "UPDATE inbound_messages SET state = 'done', claimed_until = NULL, processed_at = ?3, \
             merged_into = ?4, conversation_id = ?5 WHERE tenant_id = ?1 AND id = ?2",
        )?
        .execute(rusqlite::params![
            tenant,
            id(merged),
            at,
            id(&t.inbound_id),
            id_opt(&conversation),
        ])?;
    }
    Ok(())
}

fn record_results(
    tx: &Transaction<'_>,
    results: &[SendResult],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let at = ts(now);
    let mut sent = tx.prepare_cached(
        "UPDATE outbound_messages SET state = 'sent', claimed_until = NULL, sent_at = ?3, \
         updated_at = ?3, provider_message_id = ?4, \
         delivery_status = CASE WHEN delivery_status = 'queued' THEN 'sent' ELSE delivery_status END \
         WHERE tenant_id = ?1 AND id = ?2",
    )?;
    let mut early_statuses = tx.prepare_cached(
        "SELECT status, error_code FROM message_statuses \
         WHERE tenant_id = ?1 AND provider_message_id = ?2",
    )?;
    for r in results {
        let tenant = id(&r.tenant_id.0);
        match &r.outcome {
            SendOutcome::Sent {
                provider_message_id,
            } => {
                sent.execute(rusqlite::params![
                    tenant,
                    id(&r.id),
                    at,
                    provider_message_id
                ])?;
                // Statuses that arrived before we learnt the id.
                let early: Vec<(String, Option<i64>)> = early_statuses
                    .query_map(rusqlite::params![tenant, provider_message_id], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (status, code) in early {
                    advance_delivery(tx, r.tenant_id, provider_message_id, &status, code, now)?;
                }
            }
            SendOutcome::Unsendable { reason } => {
                tx.prepare_cached(
                    "UPDATE outbound_messages SET state = 'unsendable', claimed_until = NULL, \
                     error_message = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND id = ?2",
                )?
                .execute(rusqlite::params![tenant, id(&r.id), reason, at])?;
            }
            SendOutcome::Retry {
                at: retry_at,
                code,
                message,
            } => {
                tx.prepare_cached(
                    "UPDATE outbound_messages SET next_attempt_at = ?3, claimed_until = NULL, \
                     error_code = ?4, error_message = ?5, updated_at = ?6 \
                     WHERE tenant_id = ?1 AND id = ?2",
                )?
                .execute(rusqlite::params![
                    tenant,
                    id(&r.id),
                    ts(*retry_at),
                    code,
                    message,
                    at
                ])?;
            }
            SendOutcome::Failed { code, message } | SendOutcome::Dead { code, message } => {
                let state = if matches!(r.outcome, SendOutcome::Failed { .. }) {
                    "failed"
                } else {
                    "dead"
                };
                tx.prepare_cached(
                    "UPDATE outbound_messages SET state = ?3, delivery_status = 'failed', \
                     claimed_until = NULL, error_code = ?4, error_message = ?5, updated_at = ?6 \
                     WHERE tenant_id = ?1 AND id = ?2",
                )?
                .execute(rusqlite::params![
                    tenant,
                    id(&r.id),
                    state,
                    code,
                    message,
                    at
                ])?;
            }
        }
    }
    let day = now.date_naive().format("%F").to_string();
    for (tenant, n) in sent_per_tenant(results) {
        tx.prepare_cached(
            "INSERT INTO usage_daily (tenant_id, day, slot, outbound) VALUES (?1, ?2, 0, ?3) \
             ON CONFLICT (tenant_id, day, slot) DO UPDATE SET outbound = usage_daily.outbound + excluded.outbound",
        )?
        .execute(rusqlite::params![id(&tenant.0), day, n])?;
    }
    Ok(())
}
