//! Time rules for when parley may speak: a tenant's quiet hours, judged on the tenant's
//! own wall clock, and WhatsApp's 24-hour customer service window. Pure: the caller
//! passes "now".

use std::cmp::Ordering;

use chrono::{DateTime, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::QuietHours;

/// Where a tenant stands with respect to its quiet hours at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuietState {
    Open,
    /// Inside quiet hours. `ends_at`: the first instant at which the tenant's local clock
    /// reaches `end` (after now). `night`: the local date on which this quiet period
    /// started (its `start` side), so "one notice per conversation per night" can key on
    /// it.
    Quiet {
        ends_at: DateTime<Utc>,
        night: NaiveDate,
    },
}

/// Whether `now` falls within the quiet hours `q` of a tenant in time zone `tz`.
///
/// The range is `[start, end)` in local wall-clock time and spans midnight when
/// `start > end`; `start == end` is never quiet. Around DST changes the local time of
/// `now` decides, so an hour repeated in autumn can be quiet twice. When `end` does not
/// exist on its day (spring forward), the period ends when the clock jumps past it; when
/// it exists twice (fall back), at the first occurrence after `now`.
///
/// `ends_at` is less than 24 h of wall-clock time ahead, so at most 25 h in zones whose
/// clocks go back by an hour at most (Antarctica/Troll goes back by two). If the whole
/// open stretch between two quiet periods falls into a DST gap, the state at `ends_at` is
/// already the next quiet period (with a later `night`).
pub fn quiet_state(q: &QuietHours, tz: Tz, now: DateTime<Utc>) -> QuietState {
    let local = now.with_timezone(&tz).naive_local();
    let (date, time) = (local.date(), local.time());
    // `None` also at the far ends of chrono's calendar, where a date cannot be stepped.
    let night = match q.start.cmp(&q.end) {
        Ordering::Less if (q.start..q.end).contains(&time) => Some(date),
        Ordering::Greater if time >= q.start => Some(date),
        Ordering::Greater if time < q.end => date.pred_opt(),
        _ => None,
    };
    let Some(night) = night else {
        return QuietState::Open;
    };
    let end_date = if q.start < q.end {
        Some(night)
    } else {
        night.succ_opt()
    };
    match end_date.and_then(|d| first_instant_at(tz, d.and_time(q.end), now)) {
        Some(ends_at) => QuietState::Quiet { ends_at, night },
        None => QuietState::Open,
    }
}

/// The first instant after `now` at which the local clock in `tz` reads `target` or, if
/// `target` falls into a DST gap, jumps past it. `now`'s local time is before `target`.
fn first_instant_at(tz: Tz, target: NaiveDateTime, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&target) {
        MappedLocalTime::Single(t) => Some(t.to_utc()),
        // When `now` is inside the repeated hour, its first pass is already over.
        MappedLocalTime::Ambiguous(first, _) if first.to_utc() > now => Some(first.to_utc()),
        MappedLocalTime::Ambiguous(_, second) => Some(second.to_utc()),
        MappedLocalTime::None => end_of_gap(tz, target, now),
    }
}

/// How far ahead of `now` the end of a DST gap is searched for: a quiet period lasts less
/// than 24 h of wall-clock time, and no time zone turns its clock back by anything near a
/// day.
const GAP_SEARCH_SPAN_SECONDS: i64 = 48 * 3600;

/// The instant at which the local clock jumps over the non-existent local time `target`.
///
/// The tz database offers no list of transitions, so bisect on whole seconds (transitions
/// fall on whole seconds) between `now`, whose local time is before `target`, and a point
/// far enough ahead to be past it. This needs the local clock not to fall back below
/// `target` again within the span, which holds next to every gap in the tz database.
fn end_of_gap(tz: Tz, target: NaiveDateTime, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let reached = |secs: i64| {
        DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&tz).naive_local() >= target)
    };
    let mut before = now.timestamp();
    let mut after = before.checked_add(GAP_SEARCH_SPAN_SECONDS)?;
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if reached(mid)? {
            after = mid;
        } else {
            before = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// The 24-hour customer service window of WhatsApp: free-form messages are allowed only
/// until 24 h after the customer's last message.
pub const SERVICE_WINDOW: Duration = Duration::hours(24);

/// Whether a free-form message may be sent at `now`, given when the customer last wrote
/// (`None`: never, so only a template may open the conversation).
pub fn window_open(last_inbound_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    // A difference, not `last + 24 h`, so no date near chrono's limits can overflow.
    last_inbound_at.is_some_and(|last| now.signed_duration_since(last) < SERVICE_WINDOW)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;
    use chrono_tz::{Africa, America, Asia, Australia, Europe, Pacific};
    use proptest::prelude::*;

    use super::*;
    use crate::domain::QuietPolicy;

    fn hours(start: &str, end: &str) -> QuietHours {
        let time = |s| NaiveTime::parse_from_str(s, "%H:%M").expect("HH:MM");
        QuietHours {
            start: time(start),
            end: time(end),
            policy: QuietPolicy::Defer,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("RFC 3339 instant")
    }

    /// A local wall-clock time that exists exactly once in `tz`.
    fn local(tz: Tz, s: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("local time");
        tz.from_local_datetime(&naive)
            .single()
            .expect("unambiguous local time")
            .to_utc()
    }

    fn quiet(ends_at: &str, night: &str) -> QuietState {
        QuietState::Quiet {
            ends_at: utc(ends_at),
            night: night.parse().expect("date"),
        }
    }

    /// Checks `quiet_state` at each local clock against the expected verdict.
    fn assert_states(q: &QuietHours, tz: Tz, cases: &[(&str, QuietState)]) {
        for (clock, expected) in cases {
            let now = local(tz, clock);
            assert_eq!(quiet_state(q, tz, now), *expected, "at {clock} in {tz}");
        }
    }

    #[test]
    fn a_range_over_midnight_is_quiet_from_start_until_just_before_end() {
        let q = hours("22:00", "08:00");
        let night = quiet("2026-03-11T08:00:00Z", "2026-03-10");
        assert_states(
            &q,
            Tz::UTC,
            &[
                ("2026-03-10 12:00:00", QuietState::Open),
                ("2026-03-10 21:59:59", QuietState::Open),
                ("2026-03-10 22:00:00", night),
                ("2026-03-10 23:30:00", night),
                ("2026-03-11 00:00:00", night),
                ("2026-03-11 03:00:00", night),
                ("2026-03-11 07:59:59", night),
                ("2026-03-11 08:00:00", QuietState::Open),
                ("2026-03-11 13:00:00", QuietState::Open),
            ],
        );
    }

    #[test]
    fn a_same_day_range_is_quiet_between_its_times_and_its_night_is_that_date() {
        let q = hours("01:00", "05:00");
        let night = quiet("2026-03-11T05:00:00Z", "2026-03-11");
        assert_states(
            &q,
            Tz::UTC,
            &[
                ("2026-03-10 23:00:00", QuietState::Open),
                ("2026-03-11 00:59:59", QuietState::Open),
                ("2026-03-11 01:00:00", night),
                ("2026-03-11 04:59:59", night),
                ("2026-03-11 05:00:00", QuietState::Open),
                ("2026-03-11 22:00:00", QuietState::Open),
            ],
        );
    }

    #[test]
    fn equal_start_and_end_is_never_quiet() {
        let q = hours("08:00", "08:00");
        for clock in [
            "2026-03-11 07:59:59",
            "2026-03-11 08:00:00",
            "2026-03-11 20:00:00",
        ] {
            assert_eq!(
                quiet_state(&q, Tz::UTC, local(Tz::UTC, clock)),
                QuietState::Open
            );
        }
    }

    #[test]
    fn a_new_york_tenant_is_judged_by_its_own_clock_not_by_utc() {
        let q = hours("22:00", "08:00");
        let ny = America::New_York;
        // 02:00 UTC is quiet in London but only 21:00 the evening before in New York.
        let now = utc("2026-01-15T02:00:00Z");
        assert_eq!(quiet_state(&q, ny, now), QuietState::Open);
        assert_ne!(quiet_state(&q, Tz::UTC, now), QuietState::Open);
        assert_states(
            &q,
            ny,
            &[
                (
                    "2026-01-14 23:00:00",
                    quiet("2026-01-15T13:00:00Z", "2026-01-14"),
                ),
                ("2026-01-15 08:00:00", QuietState::Open),
                (
                    "2026-07-01 07:59:59",
                    quiet("2026-07-01T12:00:00Z", "2026-06-30"),
                ),
            ],
        );
    }

    #[test]
    fn a_kolkata_tenant_at_plus_five_thirty_is_quiet_from_half_past_four_utc() {
        let q = hours("22:00", "08:00");
        let night = quiet("2026-06-16T02:30:00Z", "2026-06-15");
        let cases = [
            ("2026-06-15T16:29:59Z", QuietState::Open),
            ("2026-06-15T16:30:00Z", night),
            ("2026-06-15T20:00:00Z", night),
            ("2026-06-16T02:29:59Z", night),
            ("2026-06-16T02:30:00Z", QuietState::Open),
        ];
        for (now, expected) in cases {
            assert_eq!(
                quiet_state(&q, Asia::Kolkata, utc(now)),
                expected,
                "at {now}"
            );
        }
    }

    #[test]
    fn berlin_nights_across_the_clock_changes_end_at_eight_local_time() {
        let q = hours("22:00", "08:00");
        let berlin = Europe::Berlin;
        // Spring forward: 23:00 CET, then 03:00 CEST just after the jump; 08:00 CEST is 06:00 UTC.
        let spring = quiet("2026-03-29T06:00:00Z", "2026-03-28");
        assert_states(
            &q,
            berlin,
            &[
                ("2026-03-28 23:00:00", spring),
                ("2026-03-29 03:00:00", spring),
                ("2026-03-29 08:00:00", QuietState::Open),
            ],
        );
        // Fall back: 08:00 CET is 07:00 UTC, also from inside the repeated hour.
        let autumn = quiet("2026-10-25T07:00:00Z", "2026-10-24");
        assert_states(&q, berlin, &[("2026-10-24 23:00:00", autumn)]);
        for now in [
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T06:59:59Z",
        ] {
            assert_eq!(quiet_state(&q, berlin, utc(now)), autumn, "at {now}");
        }
        assert_eq!(
            quiet_state(&q, berlin, utc("2026-10-25T07:00:00Z")),
            QuietState::Open
        );
    }

    #[test]
    fn new_york_nights_across_the_clock_changes_end_at_eight_local_time() {
        let q = hours("22:00", "08:00");
        let ny = America::New_York;
        assert_states(
            &q,
            ny,
            &[
                (
                    "2026-03-07 22:00:00",
                    quiet("2026-03-08T12:00:00Z", "2026-03-07"),
                ),
                (
                    "2026-10-31 22:00:00",
                    quiet("2026-11-01T13:00:00Z", "2026-10-31"),
                ),
            ],
        );
    }

    #[test]
    fn an_end_in_the_spring_forward_gap_ends_when_the_clock_jumps_past_it() {
        let q = hours("22:00", "02:30");
        // Berlin jumps from 02:00 CET to 03:00 CEST at 01:00 UTC.
        let berlin_night = quiet("2026-03-29T01:00:00Z", "2026-03-28");
        let berlin = Europe::Berlin;
        assert_eq!(
            quiet_state(&q, berlin, utc("2026-03-28T22:00:00Z")),
            berlin_night
        );
        assert_eq!(
            quiet_state(&q, berlin, utc("2026-03-29T00:59:59Z")),
            berlin_night
        );
        assert_eq!(
            quiet_state(&q, berlin, utc("2026-03-29T01:00:00Z")),
            QuietState::Open
        );
        // New York jumps from 02:00 EST to 03:00 EDT at 07:00 UTC.
        let ny_night = quiet("2026-03-08T07:00:00Z", "2026-03-07");
        let ny = America::New_York;
        assert_eq!(quiet_state(&q, ny, utc("2026-03-08T05:00:00Z")), ny_night);
        assert_eq!(
            quiet_state(&q, ny, utc("2026-03-08T07:00:00Z")),
            QuietState::Open
        );
    }

    #[test]
    fn a_start_in_the_spring_forward_gap_begins_when_the_clock_jumps_past_it() {
        let q = hours("02:30", "06:00");
        let berlin = Europe::Berlin;
        let before = utc("2026-03-29T00:59:59Z");
        assert_eq!(quiet_state(&q, berlin, before), QuietState::Open);
        let night = quiet("2026-03-29T04:00:00Z", "2026-03-29");
        assert_eq!(quiet_state(&q, berlin, utc("2026-03-29T01:00:00Z")), night);
    }

    #[test]
    fn an_end_in_the_repeated_autumn_hour_ends_at_its_first_pass_and_the_second_pass_is_quiet_again()
     {
        let q = hours("22:00", "02:30");
        let berlin = Europe::Berlin;
        // 02:00–03:00 runs twice: first CEST (00:00–01:00 UTC), then CET (01:00–02:00 UTC).
        let first = quiet("2026-10-25T00:30:00Z", "2026-10-24");
        let second = quiet("2026-10-25T01:30:00Z", "2026-10-24");
        let cases = [
            ("2026-10-24T22:00:00Z", first),
            ("2026-10-25T00:29:59Z", first),
            ("2026-10-25T00:30:00Z", QuietState::Open),
            ("2026-10-25T01:00:00Z", second),
            ("2026-10-25T01:30:00Z", QuietState::Open),
        ];
        for (now, expected) in cases {
            assert_eq!(quiet_state(&q, berlin, utc(now)), expected, "at {now}");
        }
    }

    #[test]
    fn the_service_window_closes_exactly_24_hours_after_the_last_inbound_message() {
        let last = utc("2026-05-01T10:00:00Z");
        assert!(window_open(Some(last), last));
        assert!(window_open(Some(last), utc("2026-05-02T09:59:59Z")));
        assert!(!window_open(Some(last), utc("2026-05-02T10:00:00Z")));
        assert!(!window_open(Some(last), utc("2026-05-03T10:00:00Z")));
    }

    #[test]
    fn the_service_window_is_closed_when_the_customer_never_wrote() {
        assert!(!window_open(None, utc("2026-05-01T10:00:00Z")));
    }

    /// Zones with daylight saving time of every shape: ±1 h, 30 min (Lord Howe), a gap at
    /// midnight (São Paulo 2018), Chatham's +12:45, Morocco's Ramadan switch, and Samoa
    /// skipping 30 December 2011 altogether. Zones whose clocks go back by more than an
    /// hour (Antarctica/Troll today; Casey, Vostok and Mendoza in the past) are left out:
    /// a quiet period there can last 24 h plus that step, beyond the 25 h checked here.
    const ZONES: [Tz; 12] = [
        Tz::UTC,
        Europe::Berlin,
        America::New_York,
        Asia::Kolkata,
        Australia::Lord_Howe,
        America::Sao_Paulo,
        America::Santiago,
        America::St_Johns,
        Pacific::Chatham,
        Africa::Casablanca,
        Asia::Tehran,
        Pacific::Apia,
    ];

    /// Days on which `ZONES[i]` changes its clocks, where random instants rarely land.
    const CHANGES: [(usize, &str); 14] = [
        (1, "2026-03-29"),
        (1, "2026-10-25"),
        (2, "2026-03-08"),
        (2, "2026-11-01"),
        (4, "2026-04-05"),
        (4, "2026-10-04"),
        (5, "2018-11-04"),
        (5, "2019-02-17"),
        (6, "2026-04-05"),
        (8, "2026-09-27"),
        (9, "2026-02-15"),
        (9, "2026-03-22"),
        (10, "2021-09-22"),
        (11, "2011-12-30"),
    ];

    /// A zone and an instant: anywhere in 2000–2037, or (mostly) near a clock change.
    fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Utc>)> {
        let anywhere = (0..ZONES.len(), 946_684_800i64..2_145_916_800)
            .prop_map(|(zone, secs)| (ZONES[zone], secs));
        let near_change = (0..CHANGES.len(), -36 * 3600i64..36 * 3600).prop_map(|(i, delta)| {
            let (zone, day) = CHANGES[i];
            let midnight = day
                .parse::<NaiveDate>()
                .expect("date")
                .and_time(NaiveTime::MIN);
            (ZONES[zone], midnight.and_utc().timestamp() + delta)
        });
        prop_oneof![1 => anywhere, 3 => near_change]
            .prop_map(|(tz, secs)| (tz, DateTime::from_timestamp(secs, 0).expect("in range")))
    }

    /// Any second of the day, or a quarter hour (where clocks change and tenants configure).
    fn time_of_day() -> impl Strategy<Value = NaiveTime> {
        prop_oneof![0u32..86_400, (0u32..96).prop_map(|quarter| quarter * 900)].prop_map(|secs| {
            NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).expect("within a day")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16_384))]

        #[test]
        fn a_quiet_period_ends_within_25_hours_and_is_open_at_its_end(
            (tz, now) in zone_and_instant(),
            start in time_of_day(),
            end in time_of_day(),
        ) {
            let q = QuietHours { start, end, policy: QuietPolicy::Defer };
            if let QuietState::Quiet { ends_at, night } = quiet_state(&q, tz, now) {
                prop_assert!(ends_at > now);
                prop_assert!(ends_at - now <= Duration::hours(25));
                if let QuietState::Quiet { night: next, .. } = quiet_state(&q, tz, ends_at) {
                    // Documented exception: the whole open stretch fell into a DST gap, so
                    // the next quiet period has already begun.
                    let next_start = night.succ_opt().expect("date").and_time(start);
                    prop_assert!(next > night);
                    prop_assert!(ends_at.with_timezone(&tz).naive_local() >= next_start);
                }
            }
        }
    }
}
