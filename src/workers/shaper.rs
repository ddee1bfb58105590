//! Outbound rate shaping: a token bucket per business number (Meta allows 80 msg/s
//! per number by default), so a burst of replies is spread instead of throttled.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by sending number. Per process: with several instances,
/// give each a share of the number's rate (README, "Sending").
#[derive(Default)]
pub struct RateShaper {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateShaper {
    /// Waits until `key` may send one more message at `per_second`.
    pub async fn acquire(&self, key: &str, per_second: f64) {
        let per_second = per_second.max(0.1);
        loop {
            let wait = {
                let mut map = self.buckets.lock().expect("shaper lock");
                let now = Instant::now();
                let b = map.entry(key.to_string()).or_insert(Bucket {
                    tokens: per_second,
                    last: now,
                });
                let elapsed = now.duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * per_second).min(per_second);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_above_the_rate_is_spread_over_time() {
        let s = RateShaper::default();
        let start = Instant::now();
        for _ in 0..30 {
            s.acquire("100000000000001", 10.0).await;
        }
        // 10 at once (a full bucket), then 20 more at 10/s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
        // Another number has its own bucket.
        let t = Instant::now();
        s.acquire("100000000000002", 10.0).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
