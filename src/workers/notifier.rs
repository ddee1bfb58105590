//! The email worker: sends queued escalation emails through the SMTP relay, retries
//! a relay that is down with backoff, and records each outcome on its notification.

use crate::app::AppState;
use crate::store::StoreError;

/// Most emails claimed at once.
pub const BATCH: i64 = 32;

/// Claims, sends and records one batch; returns how many it handled.
pub async fn notify_once(state: &AppState) -> Result<usize, StoreError> {
    let Some(email) = &state.email else {
        return Ok(0);
    };
    let now = state.clock.now();
    let lease = super::lease_until(now, state.config.work_lease);
    let jobs = state
        .store
        .claim_email_notifications(BATCH, now, lease)
        .await?;
    for job in &jobs {
        let result = email.send(&job.target, &job.subject, &job.body).await;
        let now = state.clock.now();
        let (outcome, detail, retry_at) = match result {
            Ok(()) => ("sent", None, None),
            Err(e) if e.permanent || job.attempts >= state.config.max_send_attempts => {
                ("failed", Some(e.message), None)
            }
            Err(e) => (
                "queued",
                Some(e.message),
                Some(now + super::sender::backoff(job.attempts, state.config.retry_base)),
            ),
        };
        metrics::counter!("parley_notifications_total", "via" => "email", "outcome" => outcome)
            .increment(1);
        state
            .store
            .record_email_attempt(
                job.tenant_id,
                job.id,
                outcome,
                detail.as_deref(),
                retry_at,
                now,
            )
            .await?;
    }
    Ok(jobs.len())
}
