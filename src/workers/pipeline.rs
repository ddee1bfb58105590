//! The inbox worker: claims stored inbound messages, decides each (runtime), and
//! writes decisions and outbox rows in one transaction per batch. Woken at once by
//! the webhook; a poll is the safety net (and picks up expired leases after a crash).

use crate::app::AppState;

/// Most messages claimed at once.
const BATCH: i64 = 256;

/// Claims and processes one batch; returns how many messages it handled.
pub async fn process_once(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let now = state.clock.now();
    let lease = now + chrono::Duration::from_std(state.config.work_lease).unwrap_or_default();
    let claimed = state.store.claim_inbound(BATCH, now, lease).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let mut turns = Vec::with_capacity(claimed.len());
    for msg in &claimed {
        let ctx = match state.cache.get(msg.tenant_id).await {
            Ok(Some(ctx)) => ctx,
            // Deleted meanwhile: its rows are gone with it.
            Ok(None) => continue,
            Err(e) => {
                // Left claimed: taken up again when the lease runs out.
                tracing::error!(tenant = %msg.tenant_id, error = %e, "pipeline: cannot load tenant");
                continue;
            }
        };
        let (turn, reason) = crate::runtime::process(state.store.as_ref(), &ctx, msg, now).await?;
        metrics::counter!("parley_decisions_total", "reason" => reason).increment(1);
        turns.push(turn);
    }
    let replies = turns.iter().filter(|t| t.reply.is_some()).count();
    state.store.complete_inbound(&turns, now).await?;
    if replies > 0 {
        state.wake_sender.notify_one();
    }
    Ok(claimed.len())
}
