//! When a turn's messages go out: now, or at the end of the tenant's quiet hours, with
//! or without an after-hours notice first (see README, "Quiet hours").

use chrono::{DateTime, NaiveDate, Utc};

use super::Outcome;
use crate::cache::TenantContext;
use crate::domain::QuietPolicy;
use crate::domain::quiet::{QuietState, quiet_state};
use crate::store::conversations::ConversationState;

/// The timing of one turn's messages.
#[derive(Clone, Debug, PartialEq)]
pub struct SendPlan {
    pub send_at: DateTime<Utc>,
    /// An after-hours notice to send now, and the night it is for.
    pub notice: Option<(NaiveDate, String)>,
    /// Replaces the decision's reason when quiet hours changed what happens.
    pub reason: Option<&'static str>,
}

/// Plans `outcome`'s messages under the tenant's quiet hours. Emergencies are never
/// held back.
pub fn plan(
    ctx: &TenantContext,
    conv: Option<&ConversationState>,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> SendPlan {
    let now_plan = SendPlan {
        send_at: now,
        notice: None,
        reason: None,
    };
    let Some(q) = &ctx.settings.quiet_hours else {
        return now_plan;
    };
    let sends_something = outcome.reply.is_some() || outcome.escalate.is_some();
    if !sends_something || outcome.escalate.as_deref() == Some("emergency") {
        return now_plan;
    }
    let tz: chrono_tz::Tz = ctx.tenant.timezone.parse().unwrap_or(chrono_tz::UTC);
    let QuietState::Quiet { ends_at, night } = quiet_state(q, tz, now) else {
        return now_plan;
    };
    match q.policy {
        QuietPolicy::Reply => now_plan,
        QuietPolicy::Defer => SendPlan {
            send_at: ends_at,
            notice: None,
            reason: Some("quiet_hours_deferred"),
        },
        QuietPolicy::AfterHoursMessage => {
            let noticed = conv.and_then(|c| c.after_hours_notice_night) == Some(night);
            SendPlan {
                send_at: ends_at,
                notice: (!noticed).then(|| (night, ctx.settings.after_hours_text().to_string())),
                reason: Some(if noticed {
                    "quiet_hours_deferred"
                } else {
                    "after_hours_notice"
                }),
            }
        }
    }
}
