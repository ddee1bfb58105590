//! The WhatsApp conversation loop end to end, on both backends, with wiremock as
//! Meta: signed webhooks in, the right tenant's FAQ answer out, exactly once, through
//! retries, Meta errors and restarts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::meta::*;
use common::{Db, TestApp, TestDb, bundle, key_ring, test_config};
use parley::crypto::KeyRing;
use parley::provisioning::apply_bundle;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const A: &str = "100000000000001";
const B: &str = "100000000000002";

struct World {
    db: TestDb,
    keys: Arc<KeyRing>,
    meta: MockServer,
    app: TestApp,
}

impl World {
    /// Two tenants (acme on A, bolt on B) with different FAQs and tokens; Meta accepts.
    async fn new(kind: Db) -> Option<World> {
        Self::with(kind, true, |_| {}).await
    }

    async fn with(kind: Db, accept: bool, tweak: impl Fn(&mut serde_json::Value)) -> Option<World> {
        Self::configured(kind, accept, tweak, |_| {}).await
    }

    /// Two tenants as `new`, and an app that stores webhooks but runs no workers (as
    /// if it died right after each 200), its leases `lease` long.
    async fn idle(kind: Db, lease: Duration) -> Option<World> {
        Self::configured(
            kind,
            true,
            |_| {},
            |c| {
                c.run_workers = false;
                c.work_lease = lease;
            },
        )
        .await
    }

    async fn configured(
        kind: Db,
        accept: bool,
        tweak: impl Fn(&mut serde_json::Value),
        configure: impl Fn(&mut parley::config::Config),
    ) -> Option<World> {
        let db = TestDb::new(kind).await?;
        let (keys, _) = key_ring();
        let keys = Arc::new(keys);
        let store = db.store().await;
        for (slug, pnid) in [("acme", A), ("bolt", B)] {
            let mut b = bundle(slug, pnid, &format!("EAAG-{slug}-token-0001"));
            // This suite is about the loop itself: answer at any hour, FAQ or fallback
            // only (tests/orchestration.rs covers quiet hours and the LLM).
            b["settings"]["quiet_hours"]["policy"] = json!("reply");
            b["settings"]["ai_responses"] = json!(false);
            tweak(&mut b);
            apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
                .await
                .unwrap();
        }
        let meta = MockServer::start().await;
        if accept {
            meta_accepting_everything(&meta).await;
        }
        let mut config = test_config(&db.url);
        config.whatsapp_api_base = format!("{}/v25.0", meta.uri());
        configure(&mut config);
        let app = TestApp::spawn_with(&db, keys.clone(), config).await;
        Some(World {
            db,
            keys,
            meta,
            app,
        })
    }

    async fn post(&self, slug: &str, body: &str, signature: Option<String>) -> reqwest::Response {
        post_to(&self.app, slug, body, signature).await
    }

    /// Posts `body` signed with `slug`'s app secret.
    async fn post_signed(&self, slug: &str, body: &str) -> reqwest::Response {
        post_signed_to(&self.app, slug, body).await
    }

    async fn tenant(&self, slug: &str) -> parley::domain::Tenant {
        self.app
            .state
            .store
            .find_tenant_by_slug(slug)
            .await
            .unwrap()
            .unwrap()
    }

    async fn log(&self, slug: &str) -> Vec<parley::store::messages::LoggedMessage> {
        let t = self.tenant(slug).await;
        self.app
            .state
            .store
            .list_messages(t.id, 1000)
            .await
            .unwrap()
    }

    async fn decisions(&self, slug: &str) -> Vec<String> {
        let t = self.tenant(slug).await;
        let d = self
            .app
            .state
            .store
            .list_decisions(t.id, 1000)
            .await
            .unwrap();
        d.into_iter().map(|d| d.reason).collect()
    }
}

/// Waits until `cond` holds on the tenant's log (at most 15 s).
async fn wait_log(
    w: &World,
    slug: &str,
    cond: impl Fn(&[parley::store::messages::LoggedMessage]) -> bool,
) {
    for _ in 0..300 {
        if cond(&w.log(slug).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached; log: {:#?}", w.log(slug).await);
}

/// The tenant's first reply in its message log.
async fn reply(w: &World, slug: &str) -> parley::store::messages::LoggedMessage {
    let log = w.log(slug).await;
    log.into_iter()
        .find(|m| m.direction == "out")
        .expect("a reply was queued")
}

/// Waits until the tenant's reply reaches `state` (sent, failed, …).
async fn wait_reply_state(w: &World, slug: &str, state: &str) {
    wait_log(w, slug, |l| {
        l.iter().any(|m| m.direction == "out" && m.state == state)
    })
    .await;
}

/// For the crash tests: the world's own app is retired, and an instance that stores
/// webhooks but runs no workers (as if it died right after each 200) has stored one
/// acme message `wamid`. Returns it and its configuration (lease `lease`).
async fn stored_but_not_processed(
    w: &World,
    wamid: &str,
    lease: Duration,
) -> (TestApp, parley::config::Config) {
    w.app.state.store.close().await;
    let mut cfg = test_config(&w.db.url);
    cfg.whatsapp_api_base = format!("{}/v25.0", w.meta.uri());
    cfg.run_workers = false;
    cfg.work_lease = lease;
    let first = TestApp::spawn_with(&w.db, w.keys.clone(), cfg.clone()).await;
    let body = text_webhook(A, "15551230001", wamid, "Do you deliver?");
    assert_eq!(post_signed_to(&first, "acme", &body).await.status(), 200);
    (first, cfg)
}

/// Posts `body` to `app`'s webhook for `slug`, with `signature` as
/// `X-Hub-Signature-256` if given.
async fn post_to(
    app: &TestApp,
    slug: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(app.url(&format!("/webhooks/whatsapp/{slug}")))
        .header("content-type", "application/json")
        // A request nobody answers fails the test instead of hanging it.
        .timeout(Duration::from_secs(30))
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    req.send().await.unwrap()
}

/// Posts `body` signed with `slug`'s app secret.
async fn post_signed_to(app: &TestApp, slug: &str, body: &str) -> reqwest::Response {
    let signature = sign(&format!("appsecret-{slug}-0123456789"), body);
    post_to(app, slug, body, Some(signature)).await
}

/// A question each tenant has an FAQ for, from one customer of each (acme's answer is
/// "9-18 (acme)", bolt's "Yes (bolt)").
const ONE_QUESTION_EACH: [(&str, &str, &str, &str, &str); 2] = [
    (
        "acme",
        A,
        "15551230001",
        "wamid.IN.1",
        "what are your opening hours",
    ),
    ("bolt", B, "15551230002", "wamid.IN.2", "Do you deliver?"),
];

/// Posts each (tenant slug, its number, customer, message id, text) as a signed text
/// webhook; each must be acknowledged.
async fn post_each(w: &World, messages: &[(&str, &str, &str, &str, &str)]) {
    for (slug, pnid, from, wamid, text) in messages {
        let r = w
            .post_signed(slug, &text_webhook(pnid, from, wamid, text))
            .await;
        assert_eq!(r.status(), 200);
    }
}

async fn each_tenant_gets_its_own_faq_answer_with_its_own_token_and_number(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let r = w
        .post_signed(
            "acme",
            &text_webhook(
                A,
                "15551230001",
                "wamid.IN.1",
                "what are your opening hours",
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = w
        .post_signed(
            "bolt",
            &text_webhook(B, "15551230002", "wamid.IN.2", "Do you deliver?"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let to_a = sent
        .iter()
        .find(|s| s.to == "+15551230001")
        .expect("acme's customer answered");
    assert_eq!(to_a.phone_number_id, A);
    assert_eq!(to_a.authorization, "Bearer EAAG-acme-token-0001");
    assert_eq!(to_a.text, "9-18 (acme)");
    let to_b = sent
        .iter()
        .find(|s| s.to == "+15551230002")
        .expect("bolt's customer answered");
    assert_eq!(to_b.phone_number_id, B);
    assert_eq!(to_b.authorization, "Bearer EAAG-bolt-token-0001");
    assert_eq!(to_b.text, "Yes (bolt)");
    // The inbound messages were marked read, each through its own number.
    let reads = read_receipts(&w.meta).await;
    assert!(
        reads.contains(&"wamid.IN.1".to_string()) && reads.contains(&"wamid.IN.2".to_string()),
        "{reads:?}"
    );
    // The log and the decision say why.
    wait_reply_state(&w, "acme", "sent").await;
    let out = reply(&w, "acme").await;
    assert_eq!(out.body.as_deref(), Some("9-18 (acme)"));
    assert!(
        out.provider_message_id
            .as_deref()
            .unwrap()
            .starts_with("wamid.OUT")
    );
    assert!(out.faq_id.is_some());
    assert_eq!(w.decisions("acme").await, ["faq_match"]);
    assert_eq!(
        w.log("bolt")
            .await
            .iter()
            .filter(|m| m.direction == "in")
            .count(),
        1
    );
}

async fn the_same_webhook_delivered_three_times_gets_one_reply(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let body = text_webhook(A, "15551230001", "wamid.IN.dup", "Do you deliver?");
    for _ in 0..3 {
        assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    }
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        w.log("acme")
            .await
            .iter()
            .filter(|m| m.direction == "in")
            .count(),
        1
    );
    // A retry long after the answer still gets no second one.
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    assert_eq!(wait_for_texts(&w.meta, 2).await.len(), 1);
}

async fn the_same_webhook_delivered_three_times_at_once_gets_one_reply(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let body = text_webhook(A, "15551230001", "wamid.IN.dup", "Do you deliver?");
    let (a, b, c) = tokio::join!(
        w.post_signed("acme", &body),
        w.post_signed("acme", &body),
        w.post_signed("acme", &body)
    );
    assert_eq!([a.status(), b.status(), c.status()], [200; 3]);
    wait_reply_state(&w, "acme", "sent").await;
    let log = w.log("acme").await;
    assert_eq!(log.iter().filter(|m| m.direction == "in").count(), 1);
    assert_eq!(log.iter().filter(|m| m.direction == "out").count(), 1);
    assert_eq!(wait_for_texts(&w.meta, 2).await.len(), 1);
}

async fn a_tenant_that_logs_no_message_text_keeps_none_once_answered(db: Db) {
    let Some(w) = World::with(db, true, |b| {
        if b["slug"] == "acme" {
            b["settings"]["logging"] = json!({"message_text": false});
        }
    })
    .await
    else {
        return;
    };
    for (slug, phone, wamid) in [
        ("acme", A, "wamid.IN.private"),
        ("bolt", B, "wamid.IN.kept"),
    ] {
        w.post_signed(
            slug,
            &text_webhook(phone, "15551230001", wamid, "Do you deliver?"),
        )
        .await;
    }
    assert_eq!(wait_for_texts(&w.meta, 2).await.len(), 2);
    wait_log(&w, "acme", |l| {
        l.iter().any(|m| m.direction == "in" && m.state == "done")
    })
    .await;
    wait_log(&w, "bolt", |l| {
        l.iter().any(|m| m.direction == "in" && m.state == "done")
    })
    .await;
    let inbound = |log: Vec<parley::store::messages::LoggedMessage>| {
        log.into_iter().find(|m| m.direction == "in").unwrap()
    };
    // acme's customer's words are gone (the reply went out); bolt keeps its log.
    assert_eq!(inbound(w.log("acme").await).body, None);
    assert_eq!(
        inbound(w.log("bolt").await).body.as_deref(),
        Some("Do you deliver?")
    );
    assert_eq!(
        w.db.count(
            "SELECT COUNT(*) FROM inbound_messages WHERE provider_message_id = 'wamid.IN.private' \
             AND body IS NULL AND raw = '{\"redacted\":true}'"
        )
        .await,
        1
    );
}

async fn fifty_concurrent_webhooks_get_fifty_replies_none_doubled(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let w = Arc::new(w);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let (slug, pnid) = if i.is_multiple_of(2) {
                ("acme", A)
            } else {
                ("bolt", B)
            };
            let body = text_webhook(
                pnid,
                &format!("1555000{i:04}"),
                &format!("wamid.C{i}"),
                "Do you deliver?",
            );
            w.post_signed(slug, &body).await.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let sent = wait_for_texts(&w.meta, 50).await;
    assert_eq!(sent.len(), 50);
    let mut recipients: Vec<&str> = sent.iter().map(|s| s.to.as_str()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 50, "one reply per customer");
    for s in &sent {
        let i: usize = s.to.strip_prefix("+1555000").unwrap().parse().unwrap();
        let slug = if i.is_multiple_of(2) { "acme" } else { "bolt" };
        assert_eq!(s.text, format!("Yes ({slug})"));
        assert_eq!(s.authorization, format!("Bearer EAAG-{slug}-token-0001"));
    }
    // Each tenant's usage counts its 25 messages, answers and replies once, in one row a
    // day, however the concurrent transactions spread their counts (usage slots).
    let today = w.app.state.clock.now().date_naive();
    for slug in ["acme", "bolt"] {
        let t = w.tenant(slug).await;
        let mut usage = Vec::new();
        for _ in 0..300 {
            usage = w
                .app
                .state
                .store
                .list_usage(t.id, today.pred_opt().unwrap(), today.succ_opt().unwrap())
                .await
                .unwrap();
            if usage.iter().map(|u| u.outbound).sum::<i64>() >= 25 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut days: Vec<_> = usage.iter().map(|u| u.day).collect();
        days.dedup();
        assert_eq!(days.len(), usage.len(), "one row a day: {usage:?}");
        let sum = |f: fn(&parley::store::conversations::UsageDay) -> i64| {
            usage.iter().map(f).sum::<i64>()
        };
        assert_eq!(
            (
                sum(|u| u.inbound),
                sum(|u| u.faq_answers),
                sum(|u| u.outbound),
                sum(|u| u.llm_calls)
            ),
            (25, 25, 25, 0),
            "{slug}: {usage:?}"
        );
    }
}

async fn meta_failing_twice_with_500_then_accepting_delivers_exactly_once(db: Db) {
    let Some(w) = World::with(db, false, |_| {}).await else {
        return;
    };
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{A}/messages")))
        .and(wiremock::matchers::body_partial_json(
            json!({"type": "text"}),
        ))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(meta_error(131000, "Something went wrong")),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&w.meta)
        .await;
    meta_accepting_everything(&w.meta).await;
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230001", "wamid.IN.r", "Do you deliver?"),
    )
    .await;
    wait_reply_state(&w, "acme", "sent").await;
    let reqs = w.meta.received_requests().await.unwrap();
    let texts = reqs
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("\"type\":\"text\""))
        .count();
    assert_eq!(texts, 3, "two failures and one success");
    let out = reply(&w, "acme").await;
    assert_eq!(out.attempts, 3);
    assert_eq!(wait_for_texts(&w.meta, 4).await.len(), 3);
}

async fn a_window_closed_error_is_recorded_as_failed_and_never_retried(db: Db) {
    let Some(w) = World::with(db, false, |_| {}).await else {
        return;
    };
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{A}/messages")))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(meta_error(131047, "Re-engagement message")),
        )
        .mount(&w.meta)
        .await;
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230001", "wamid.IN.w", "Do you deliver?"),
    )
    .await;
    wait_reply_state(&w, "acme", "failed").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = reply(&w, "acme").await;
    assert_eq!(
        (out.state.as_str(), out.error_code, out.attempts),
        ("failed", Some(131047), 1)
    );
    assert_eq!(out.delivery_status.as_deref(), Some("failed"));
    assert_eq!(
        w.meta.received_requests().await.unwrap().len(),
        1,
        "no retry"
    );
}

async fn an_expired_token_marks_the_tenant_and_stops_retrying(db: Db) {
    let Some(w) = World::with(db, false, |_| {}).await else {
        return;
    };
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(meta_error(190, "Error validating access token")),
        )
        .mount(&w.meta)
        .await;
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230001", "wamid.IN.t", "Do you deliver?"),
    )
    .await;
    wait_reply_state(&w, "acme", "failed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = w
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM channel_accounts WHERE token_status = 'expired' AND provider_account_id = '{A}'"
        ))
        .await;
    assert_eq!(expired, 1, "acme's token is marked expired");
    let sends = w.meta.received_requests().await.unwrap().len();
    assert_eq!(sends, 1, "no retry with a dead token");
}

async fn a_crash_after_the_200_and_before_the_send_still_replies_once_after_restart(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, mut cfg) =
        stored_but_not_processed(&w, "wamid.IN.crash", Duration::from_secs(30)).await;
    first.stop().await;
    assert!(sent_texts(&w.meta).await.is_empty());

    // Restart with workers.
    cfg.run_workers = true;
    let second = TestApp::spawn_with(&w.db, w.keys.clone(), cfg).await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "Yes (acme)");
    second.stop().await;
}

async fn work_claimed_by_a_crashed_worker_is_taken_up_after_its_lease(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, mut cfg) =
        stored_but_not_processed(&w, "wamid.IN.lease", Duration::from_secs(1)).await;
    // The "crashed" worker claimed it and never finished.
    let now = Utc::now();
    let claimed = first
        .state
        .store
        .claim_inbound(10, now, now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    first.stop().await;

    cfg.run_workers = true;
    let second = TestApp::spawn_with(&w.db, w.keys.clone(), cfg).await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "answered once the lease ran out");
    second.stop().await;
}

async fn bad_requests_get_their_documented_status_and_store_nothing(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let body = text_webhook(A, "15551230001", "wamid.IN.bad", "Do you deliver?");
    // Forged and missing signatures.
    assert_eq!(
        w.post("acme", &body, Some(sign("not-the-secret", &body)))
            .await
            .status(),
        401
    );
    assert_eq!(w.post("acme", &body, None).await.status(), 401);
    assert_eq!(
        w.post("acme", &body, Some("sha256=zz".into()))
            .await
            .status(),
        401
    );
    // Signed by acme but posted to bolt's path: bolt's secret does not verify it.
    assert_eq!(
        w.post(
            "bolt",
            &body,
            Some(sign("appsecret-acme-0123456789", &body))
        )
        .await
        .status(),
        401
    );
    // Unknown tenant.
    let r = w.post_signed("nobody", &body).await;
    assert_eq!(r.status(), 404);
    let err: serde_json::Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    // Malformed JSON with a valid signature.
    let r = w.post_signed("acme", "{\"object\": [").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_payload"
    );
    // Oversized body.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let r = w.post_signed("acme", &big).await;
    assert_eq!(r.status(), 413);
    // Nothing stored, nothing sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.log("acme").await.is_empty());
    assert!(w.log("bolt").await.is_empty());
    assert!(sent_texts(&w.meta).await.is_empty());
}

async fn an_unknown_message_type_is_kept_and_gets_the_non_text_reply(db: Db) {
    let Some(w) = World::with(db, true, |b| {
        b["settings"]["non_text_reply"] = json!("Please send text.");
    })
    .await
    else {
        return;
    };
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": A},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551230001"}],
            "messages": [{"from": "15551230001", "id": "wamid.IN.hologram", "timestamp": Utc::now().timestamp().to_string(),
                          "type": "hologram", "hologram": {"depth": 3}, "brand_new_field": true}]
        }}]}]
    })
    .to_string();
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "Please send text.");
    let log = w.log("acme").await;
    let inbound = log.iter().find(|m| m.direction == "in").unwrap();
    assert_eq!(inbound.kind, "hologram");
    assert_eq!(w.decisions("acme").await, ["non_text"]);
}

async fn events_for_another_phone_number_are_not_processed_as_this_tenant(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    // Signed with acme's secret, posted to acme, but the entry is bolt's number.
    let body = text_webhook(B, "15551230009", "wamid.IN.foreign", "Do you deliver?");
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(w.log("acme").await.is_empty());
    assert!(w.log("bolt").await.is_empty());
    assert!(sent_texts(&w.meta).await.is_empty());
}

async fn statuses_move_forward_only_whatever_their_order(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230001", "wamid.IN.s", "Do you deliver?"),
    )
    .await;
    wait_reply_state(&w, "acme", "sent").await;
    let wamid = reply(&w, "acme").await.provider_message_id.unwrap();
    for status in ["read", "delivered", "sent", "read", "delivered"] {
        let r = w
            .post_signed("acme", &status_webhook(A, &wamid, status, "15551230001"))
            .await;
        assert_eq!(r.status(), 200);
    }
    let out = reply(&w, "acme").await;
    assert_eq!(out.delivery_status.as_deref(), Some("read"));
    // Raw SQL cannot reach the in-memory store; the order above is what it checks.
    if w.db.kind != Db::SqliteMemory {
        let rows = w.db.count("SELECT COUNT(*) FROM message_statuses").await;
        assert_eq!(rows, 3, "one row per (message, status)");
    }
}

async fn below_the_threshold_the_fallback_is_sent_and_a_disabled_bot_stays_silent(db: Db) {
    let Some(w) = World::with(db, true, |b| {
        if b["slug"] == "bolt" {
            b["settings"]["bot_enabled"] = json!(false);
        }
    })
    .await
    else {
        return;
    };
    w.post_signed(
        "acme",
        &text_webhook(
            A,
            "15551230001",
            "wamid.IN.f",
            "Can I bring my pet llama to the concert?",
        ),
    )
    .await;
    w.post_signed(
        "bolt",
        &text_webhook(B, "15551230002", "wamid.IN.g", "Do you deliver?"),
    )
    .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].to, "+15551230001",
        "Meta wants + and the country code"
    );
    assert!(
        sent[0].text.starts_with("Thanks for your message!"),
        "{}",
        sent[0].text
    );
    assert_eq!(w.decisions("acme").await, ["below_threshold"]);
    assert_eq!(w.decisions("bolt").await, ["bot_disabled"]);
}

async fn the_per_customer_daily_limit_is_shared_and_enforced(db: Db) {
    let Some(w) = World::with(db, true, |b| {
        b["settings"]["max_messages_per_user_per_day"] = json!(1);
    })
    .await
    else {
        return;
    };
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230001", "wamid.IN.l1", "Do you deliver?"),
    )
    .await;
    wait_for_texts(&w.meta, 1).await;
    w.post_signed(
        "acme",
        &text_webhook(
            A,
            "15551230001",
            "wamid.IN.l2",
            "What are your opening hours?",
        ),
    )
    .await;
    w.post_signed(
        "acme",
        &text_webhook(A, "15551230002", "wamid.IN.l3", "Do you deliver?"),
    )
    .await;
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let mut decisions = w.decisions("acme").await;
    decisions.sort();
    assert_eq!(decisions, ["faq_match", "faq_match", "rate_limited"]);
}

async fn a_batch_counts_its_replies_against_the_hourly_limit_in_order(db: Db) {
    let Some(w) = World::with(db, true, |b| {
        b["settings"]["max_messages_per_hour"] = json!(3);
    })
    .await
    else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    // Five customers write while the workers are off, then one pipeline batch takes
    // them all: the first three (in arrival order) are answered, the rest rate limited.
    let (first, _cfg) = stored_but_not_processed(&w, "wamid.IN.h1", Duration::from_secs(60)).await;
    for i in 2..=5 {
        let body = text_webhook(
            A,
            &format!("1555123000{i}"),
            &format!("wamid.IN.h{i}"),
            "Do you deliver?",
        );
        assert_eq!(post_signed_to(&first, "acme", &body).await.status(), 200);
    }
    let state = &first.state;
    let claimed = parley::workers::pipeline::claim(state).await.unwrap();
    assert_eq!(claimed.len(), 5);
    parley::workers::pipeline::process(state, claimed)
        .await
        .unwrap();
    let mut decisions = state.store.list_decisions(tenant, 100).await.unwrap();
    decisions.sort_by_key(|d| d.inbound_message_id);
    let reasons: Vec<&str> = decisions.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "faq_match",
            "faq_match",
            "faq_match",
            "rate_limited",
            "rate_limited"
        ]
    );
    // Sent by the pipeline's own sender, or by the outbox worker's claim.
    parley::workers::sender::send_once(state).await.unwrap();
    let sent = wait_for_texts(&w.meta, 3).await;
    let mut to: Vec<&str> = sent.iter().map(|t| t.to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["+15551230001", "+15551230002", "+15551230003"]);
    let now = Utc::now();
    // The count is shared: the next reply this hour is limited too.
    assert!(
        !state
            .store
            .take_quota(tenant, "tenant_hour", hour_start(now), 3)
            .await
            .unwrap()
    );
    first.stop().await;
}

/// The start of `now`'s hour, the tenant's hourly counter window.
fn hour_start(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    use chrono::Timelike;
    now.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
}

async fn a_slow_read_receipt_does_not_hold_up_the_reply(db: Db) {
    let Some(w) = World::with(db, false, |_| {}).await else {
        return;
    };
    // Replies are accepted at once; read receipts get no answer for 30 s.
    mount_text_sends(&w.meta).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"status": "read"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true}))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&w.meta)
        .await;
    let body = text_webhook(A, "15551230001", "wamid.IN.slow", "Do you deliver?");
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    // Recorded as sent (with Meta's id) while its receipt is still unanswered: waiting
    // for it would take 30 s, and this gives up after 15.
    wait_reply_state(&w, "acme", "sent").await;
    let out = reply(&w, "acme").await;
    assert_eq!(out.state, "sent");
    assert!(out.provider_message_id.is_some());
    // The receipt goes out all the same, on its own task (received, not yet answered).
    assert_eq!(wait_for_read_receipts(&w.meta, 1).await, ["wamid.IN.slow"]);
}

async fn meta_verification_answers_the_challenge_only_with_the_right_token(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let http = reqwest::Client::new();
    let url = w.app.url("/webhooks/whatsapp/acme");
    let r = http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "verify-acme-0123456789"),
            ("hub.challenge", "1158201444"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "1158201444");
    let r = http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "verify-bolt-0123456789"),
            ("hub.challenge", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(w.app.url("/webhooks/whatsapp/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn a_disabled_tenant_gets_404_and_a_database_outage_gets_503(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let t = w.tenant("bolt").await;
    w.app
        .state
        .store
        .set_tenant_active(t.id, false, Utc::now())
        .await
        .unwrap();
    w.app.state.cache.invalidate(t.id).await;
    let body = text_webhook(B, "15551230002", "wamid.IN.d", "Do you deliver?");
    assert_eq!(w.post_signed("bolt", &body).await.status(), 404);

    // Warm acme's cache, then take the database away: Meta must get a 503, never a 200.
    let body = text_webhook(A, "15551230001", "wamid.IN.down", "Do you deliver?");
    w.app.state.cache.get_by_slug("acme").await.unwrap();
    w.app.state.store.close().await;
    let r = w.post_signed("acme", &body).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "unavailable"
    );
}

async fn one_customers_messages_are_answered_in_order(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let questions = ["Do you deliver?", "What are your opening hours?", "Thanks!"];
    for (i, q) in questions.iter().enumerate() {
        let body = text_webhook(A, "15551230001", &format!("wamid.IN.o{i}"), q);
        assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    }
    let sent = wait_for_texts(&w.meta, 3).await;
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Yes (acme)", "9-18 (acme)", "You're welcome!"]);
}

/// A customer's next reply waits for the one in flight: the second message is stored
/// and decided at once, its reply queued behind the first and sent only once Meta has
/// answered the first (which it holds for 5 s here).
async fn a_customers_next_reply_waits_for_the_one_in_flight(db: Db) {
    let Some(w) = World::with(db, false, |_| {}).await else {
        return;
    };
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"text": {"body": "Yes (acme)"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": "15551230001", "wa_id": "15551230001"}],
                    "messages": [{"id": "wamid.OUT.slow"}]
                }))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&w.meta)
        .await;
    mount_text_sends(&w.meta).await;
    mount_read_receipts(&w.meta).await;
    let first = text_webhook(A, "15551230001", "wamid.IN.f1", "Do you deliver?");
    assert_eq!(w.post_signed("acme", &first).await.status(), 200);
    let started = std::time::Instant::now();
    while sent_texts(&w.meta).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the first reply never went"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = text_webhook(
        A,
        "15551230001",
        "wamid.IN.f2",
        "What are your opening hours?",
    );
    assert_eq!(w.post_signed("acme", &second).await.status(), 200);
    wait_log(&w, "acme", |l| {
        l.iter().filter(|m| m.direction == "out").count() == 2
    })
    .await;
    // Queued, and given time to go if it were not held back: still only the first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sent_texts(&w.meta).await.len(),
        1,
        "the second reply went while the first was in flight"
    );
    let log = w.log("acme").await;
    let first_reply = log
        .iter()
        .find(|m| m.direction == "out" && m.body.as_deref() == Some("Yes (acme)"))
        .expect("the first reply is logged");
    assert_eq!(
        first_reply.state, "pending",
        "Meta has not answered the first yet"
    );
    let sent = wait_for_texts(&w.meta, 2).await;
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Yes (acme)", "9-18 (acme)"]);
}

/// A customer whose contact is stored without a conversation (left so by hand, or by a
/// writer of an older version) is answered, once. PostgreSQL's storing transaction
/// inserts a customer it has found no conversation for without `ON CONFLICT`; here the
/// contact's key fails it, and the webhook is stored again for the pipeline.
async fn a_contact_without_a_conversation_is_answered_once(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    let id = match w.db.kind {
        Db::Postgres => format!("'{}'", tenant.0),
        Db::Sqlite | Db::SqliteMemory => format!("x'{}'", tenant.0.simple()),
    };
    w.db.exec(&format!(
        "INSERT INTO contacts (tenant_id, channel, customer_id, first_seen_at, \
         last_inbound_at) VALUES ({id}, 'whatsapp', '15551230077', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
    ))
    .await;
    let body = text_webhook(A, "15551230077", "wamid.IN.lone", "Do you deliver?");
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].text, "Yes (acme)");
    assert_eq!(sent[0].to, "+15551230077");
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM conversations WHERE customer_id = '15551230077'")
            .await,
        1
    );
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM contacts WHERE customer_id = '15551230077'")
            .await,
        1
    );
    // Meta's retry of the same webhook gets no second answer.
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    assert_eq!(wait_for_texts(&w.meta, 2).await.len(), 1);
    if w.db.kind == Db::Postgres {
        // It went the second way (the counter is the process's, shared by the tests
        // running beside this one; none of the others stores a webhook twice).
        let metrics = reqwest::get(w.app.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let retries: f64 = metrics
            .lines()
            .find(|l| l.starts_with("parley_store_retries_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(retries >= 1.0, "stored again: {metrics}");
    }
}

/// A customer's next message waits for the one before it (one at a time per customer),
/// but not for the poll: once a message is done, its customer's next one is taken up at
/// once. Served by an instance whose poll would take a minute.
async fn a_customers_next_message_does_not_wait_for_the_poll(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    w.app.state.store.close().await;
    let mut cfg = test_config(&w.db.url);
    cfg.whatsapp_api_base = format!("{}/v25.0", w.meta.uri());
    cfg.poll_interval = Duration::from_secs(60);
    let app = TestApp::spawn_with(&w.db, w.keys.clone(), cfg).await;
    // Three messages stored together (one webhook with all three, as Meta may send):
    // the first is taken up, the other two wait for it, then for each other.
    let at = Utc::now().timestamp();
    let bodies: Vec<serde_json::Value> = [
        ("wamid.IN.n0", "Do you deliver?"),
        ("wamid.IN.n1", "What are your opening hours?"),
        ("wamid.IN.n2", "Thanks!"),
    ]
    .iter()
    .map(|(wamid, q)| {
        serde_json::from_str(&text_webhook_at(A, "15551230001", wamid, q, at)).unwrap()
    })
    .collect();
    let mut body = bodies[0].clone();
    let messages = body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap();
    for b in &bodies[1..] {
        messages.push(b["entry"][0]["changes"][0]["value"]["messages"][0].clone());
    }
    assert_eq!(
        post_signed_to(&app, "acme", &body.to_string())
            .await
            .status(),
        200
    );
    let started = std::time::Instant::now();
    while sent_texts(&w.meta).await.len() < 3 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent_texts(&w.meta).await;
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Yes (acme)", "9-18 (acme)", "You're welcome!"],
        "within 10 s, the poll being 60 s"
    );
    app.stop().await;
}

/// The claims' one-at-a-time rule, seen from the store: a customer's second message is
/// not taken while the first is pending, nor a recipient's second reply while the
/// first is, however long the customer's history; another customer is not held up.
async fn claims_take_each_customers_oldest_pending_message_only(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    // A customer with a history: answered messages must not slow or block the claim.
    for i in 0..30 {
        let body = text_webhook(A, "15551230009", &format!("wamid.IN.h{i}"), "Thanks!");
        assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    }
    wait_for_texts(&w.meta, 30).await;
    let (app, _cfg) = stored_but_not_processed(&w, "wamid.IN.x0", Duration::from_secs(60)).await;
    for (wamid, from, q) in [
        ("wamid.IN.x1", "15551230001", "What are your opening hours?"),
        ("wamid.IN.y0", "15551230009", "Do you deliver?"),
    ] {
        let body = text_webhook(A, from, wamid, q);
        assert_eq!(post_signed_to(&app, "acme", &body).await.status(), 200);
    }
    let store = &app.state.store;
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let first = store.claim_inbound(256, now, lease).await.unwrap();
    let mut got: Vec<&str> = first
        .iter()
        .map(|m| m.message.provider_message_id.as_str())
        .collect();
    got.sort();
    assert_eq!(got, ["wamid.IN.x0", "wamid.IN.y0"]);
    assert!(
        store
            .claim_inbound(256, now, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // Once the leases run out the same two are claimable again, and only they.
    let later = lease + chrono::Duration::seconds(1);
    let again = store
        .claim_inbound(256, later, later + chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    // Processing in turn: x0 and y0, then x1.
    let state = &app.state;
    let mut handled = Vec::new();
    loop {
        let mut turns = Vec::new();
        for m in store
            .claim_inbound(
                256,
                later + chrono::Duration::seconds(61),
                later + chrono::Duration::seconds(120),
            )
            .await
            .unwrap()
        {
            turns.push(m.message.provider_message_id.clone());
            let turn = decide(state, &m, now).await;
            store.complete_inbound(&[turn], now).await.unwrap();
        }
        if turns.is_empty() {
            break;
        }
        turns.sort();
        handled.push(turns);
    }
    assert_eq!(
        handled,
        [vec!["wamid.IN.x0", "wamid.IN.y0"], vec!["wamid.IN.x1"]]
    );
    // The outbox: x0's reply and y0's go first; x1's waits for x0's.
    let out = store.claim_outbound(256, now, lease).await.unwrap();
    let mut to: Vec<String> = out
        .iter()
        .map(|o| format!("{} {}", o.recipient.trim_start_matches('+'), o.body))
        .collect();
    to.sort();
    assert_eq!(to, ["15551230001 Yes (acme)", "15551230009 Yes (acme)"]);
    assert!(
        store
            .claim_outbound(256, now, lease)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_customer_known_only_by_business_scoped_id_is_answered_by_that_id(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": A},
            "contacts": [{"profile": {"name": "Zed", "username": "zed"}, "user_id": "US.13491208655302741918"}],
            "messages": [{"from_user_id": "US.13491208655302741918", "id": "wamid.IN.bsuid",
                          "timestamp": Utc::now().timestamp().to_string(), "type": "text", "text": {"body": "Do you deliver?"}}]
        }}]}]
    })
    .to_string();
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "US.13491208655302741918");
    assert_eq!(sent[0].text, "Yes (acme)");
    let log = w.log("acme").await;
    assert!(
        log.iter()
            .all(|m| m.customer_id == "US.13491208655302741918"),
        "{log:?}"
    );
}

async fn a_reply_in_flight_at_a_crash_is_sent_after_restart(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, mut cfg) =
        stored_but_not_processed(&w, "wamid.IN.flight", Duration::from_secs(1)).await;
    // The pipeline ran and queued the reply (every sending slot busy, so it left the
    // reply to the sender); the sender claimed it and died mid-send.
    let busy = first
        .state
        .send_slots
        .clone()
        .acquire_many_owned(first.state.config.send_tasks as u32)
        .await
        .unwrap();
    assert_eq!(
        parley::workers::pipeline::process_once(&first.state)
            .await
            .unwrap(),
        1
    );
    let now = Utc::now();
    let claimed = first
        .state
        .store
        .claim_outbound(10, now, now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // (Shutdown waits for every sending slot.)
    drop(busy);
    first.stop().await;
    assert!(sent_texts(&w.meta).await.is_empty());

    cfg.run_workers = true;
    let second = TestApp::spawn_with(&w.db, w.keys.clone(), cfg).await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "sent once after the lease ran out");
    second.stop().await;
}

/// The pipeline's decision for one claimed message, as a turn ready to be written.
async fn decide(
    state: &parley::app::AppState,
    m: &parley::store::messages::ClaimedInbound,
    now: chrono::DateTime<Utc>,
) -> parley::store::messages::TurnRecord {
    let ctx = state.cache.get(m.tenant_id).await.unwrap().unwrap();
    let input = parley::runtime::TurnInput {
        msg: m,
        text: m.message.text.clone().unwrap_or_default(),
        conversation: None,
        merged: Vec::new(),
        read_through: None,
        email_enabled: false,
    };
    let (step, handoff) = parley::runtime::gate(&ctx, &m.message, &input.text, None, now);
    let parley::runtime::Step::Done(outcome) = step else {
        panic!("FAQ answers need no model")
    };
    parley::runtime::finish(state.store.as_ref(), &ctx, &input, outcome, handoff, now)
        .await
        .unwrap()
}

/// A message decided twice (a second worker took it once the first one's lease ran
/// out, and both wrote their turns) keeps its first decision, as it keeps its first
/// reply; a second turn without a decision (the tenant turned decision logging off
/// meanwhile) does not wipe it. The decision is columns of the message's row (0014).
async fn a_message_decided_twice_keeps_its_first_decision_and_reply(db: Db) {
    let Some(w) = World::idle(db, Duration::from_secs(60)).await else {
        return;
    };
    let body = text_webhook(A, "15551230001", "wamid.IN.twice", "Do you deliver?");
    assert_eq!(w.post_signed("acme", &body).await.status(), 200);
    let state = &w.app.state;
    let claimed = parley::workers::pipeline::claim(state).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let now = Utc::now();
    let first = decide(state, &claimed[0], now).await;
    assert_eq!(first.decision.as_ref().unwrap().reason, "faq_match");
    let mut second = first.clone();
    let d = second.decision.as_mut().unwrap();
    d.reason = "below_threshold".into();
    d.faq_id = None;
    d.score = Some(0.1);
    for reply in &mut second.replies {
        reply.id = uuid::Uuid::now_v7();
        reply.body = "a second answer".into();
    }
    let mut third = first.clone();
    third.decision = None;
    third.replies.clear();
    let later = now + chrono::Duration::seconds(61);
    state.store.complete_inbound(&[first], now).await.unwrap();
    state
        .store
        .complete_inbound(&[second], later)
        .await
        .unwrap();
    state.store.complete_inbound(&[third], later).await.unwrap();
    let t = claimed[0].tenant_id;
    let decisions = state.store.list_decisions(t, 100).await.unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].reason, "faq_match");
    assert!(decisions[0].faq_id.is_some());
    assert_eq!(decisions[0].inbound_message_id, claimed[0].id);
    let replies: Vec<String> = state
        .store
        .list_messages(t, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.direction == "out")
        .map(|m| m.body.unwrap_or_default())
        .collect();
    assert_eq!(replies, ["Yes (acme)"]);
}

/// The conversation a turn was decided with is a hint to the writer: a turn decided
/// before the customer's conversation existed, or with one that has gone, still joins
/// the one there is; one decided with it is attached to it. Never a second
/// conversation for one customer.
async fn a_turn_joins_the_customers_one_conversation_whatever_it_was_decided_with(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, _) = stored_but_not_processed(&w, "wamid.IN.conv1", Duration::from_secs(60)).await;
    for wamid in ["wamid.IN.conv2", "wamid.IN.conv3", "wamid.IN.conv4"] {
        let body = text_webhook(A, "15551230001", wamid, "Do you deliver?");
        assert_eq!(post_signed_to(&first, "acme", &body).await.status(), 200);
    }
    let state = &first.state;
    let store = &state.store;
    let key = (
        state
            .cache
            .get_by_slug("acme")
            .await
            .unwrap()
            .unwrap()
            .tenant
            .id,
        parley::domain::Channel::Whatsapp,
        "15551230001".to_string(),
    );
    let mut conversation = None;
    for hint in ["none", "stale", "gone", "known"] {
        // One message a turn: each is its customer's oldest pending one in turn.
        let claimed = parley::workers::pipeline::claim(state).await.unwrap();
        assert_eq!(claimed.len(), 1, "{hint}");
        let now = Utc::now();
        let mut turn = decide(state, &claimed[0], now).await;
        turn.conversation_id = match hint {
            // The first message: there is none yet.
            "none" => None,
            // Decided as if the conversation did not exist yet: it does now.
            "stale" => None,
            // A conversation that is no longer there.
            "gone" => Some(uuid::Uuid::now_v7()),
            _ => conversation,
        };
        store.complete_inbound(&[turn], now).await.unwrap();
        let found = store
            .find_conversations(std::slice::from_ref(&key))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{hint}");
        let id = found[0].1.id;
        assert_eq!(*conversation.get_or_insert(id), id, "{hint}");
    }
    assert_eq!(w.db.count("SELECT COUNT(*) FROM conversations").await, 1);
    assert_eq!(
        w.db.count(
            "SELECT COUNT(*) FROM inbound_messages WHERE state = 'done' AND conversation_id IS NOT NULL"
        )
        .await,
        4
    );
    assert_eq!(
        w.db.count("SELECT COUNT(DISTINCT conversation_id) FROM inbound_messages")
            .await,
        1
    );
    first.stop().await;
}

async fn a_reply_the_pipeline_leased_for_itself_at_a_crash_is_sent_once_after_restart(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, mut cfg) =
        stored_but_not_processed(&w, "wamid.IN.handed", Duration::from_secs(1)).await;
    // The pipeline's steps by hand, up to its transaction, which leases the reply for
    // sending at once; then the process dies before the send.
    let state = &first.state;
    let store = &state.store;
    let claimed = parley::workers::pipeline::claim(state).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(1);
    let turn = decide(state, &claimed[0], now).await;
    let leased = store
        .complete_inbound_leasing(&[turn], now, lease)
        .await
        .unwrap();
    // Leased in the same transaction...
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].body, "Yes (acme)");
    assert_eq!(leased[0].attempts, 1);
    // ...so the sender's claim leaves it alone while the lease runs.
    assert!(
        store
            .claim_outbound(10, now, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // The same customer's next message: its reply waits for the first one, so it is
    // not leased for sending at once.
    let body = text_webhook(
        A,
        "15551230001",
        "wamid.IN.next",
        "What are your opening hours?",
    );
    assert_eq!(post_signed_to(&first, "acme", &body).await.status(), 200);
    let claimed = parley::workers::pipeline::claim(state).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let turn = decide(state, &claimed[0], now).await;
    assert!(
        store
            .complete_inbound_leasing(&[turn], now, lease)
            .await
            .unwrap()
            .is_empty()
    );
    first.stop().await;
    assert!(sent_texts(&w.meta).await.is_empty());

    cfg.run_workers = true;
    let second = TestApp::spawn_with(&w.db, w.keys.clone(), cfg).await;
    let sent = wait_for_texts(&w.meta, 2).await;
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Yes (acme)", "9-18 (acme)"], "each once, in order");
    second.stop().await;
}

async fn a_staff_notification_is_never_leased_with_the_turn_and_goes_through_the_claim(db: Db) {
    let Some(w) = World::with(db, true, |_| {}).await else {
        return;
    };
    let (first, _cfg) =
        stored_but_not_processed(&w, "wamid.IN.alert", Duration::from_secs(60)).await;
    let state = &first.state;
    let store = &state.store;
    let claimed = parley::workers::pipeline::claim(state).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let now = Utc::now();
    let mut turn = decide(state, &claimed[0], now).await;
    // The same turn also queues a message to a staff number (as an escalation does).
    let mut alert = turn.replies[0].clone();
    alert.id = uuid::Uuid::now_v7();
    alert.idempotency_key = format!("notify:{}", turn.inbound_id);
    alert.recipient = "15559990000".into();
    alert.customer_id = "15559990000".into();
    alert.purpose = "notification";
    turn.replies.push(alert);
    let lease = now + chrono::Duration::seconds(60);
    let leased = store
        .complete_inbound_leasing(&[turn], now, lease)
        .await
        .unwrap();
    let to: Vec<&str> = leased.iter().map(|o| o.recipient.as_str()).collect();
    assert_eq!(to, ["15551230001"], "only the customer's reply is leased");
    let claimed = store.claim_outbound(10, now, lease).await.unwrap();
    let to: Vec<&str> = claimed.iter().map(|o| o.recipient.as_str()).collect();
    assert_eq!(
        to,
        ["15559990000"],
        "the staff message is left to the claim"
    );
    first.stop().await;
}

/// A text message from `from` to acme's number A, parsed as the webhook would store it.
fn inbound_record(
    tenant: parley::domain::TenantId,
    from: &str,
    wamid: &str,
    text: &str,
) -> parley::store::messages::InboundRecord {
    let body = text_webhook(A, from, wamid, text);
    let message = parley::channels::whatsapp::parse_webhook(body.as_bytes())
        .unwrap()
        .messages
        .remove(0);
    parley::store::messages::InboundRecord {
        tenant_id: tenant,
        id: uuid::Uuid::now_v7(),
        channel: parley::domain::Channel::Whatsapp,
        message,
        received_at: Utc::now(),
    }
}

async fn a_message_leased_as_it_is_stored_is_claimed_only_after_its_lease(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    // One customer has a message waiting (stored with the workers off).
    let (first, _cfg) =
        stored_but_not_processed(&w, "wamid.IN.earlier", Duration::from_secs(60)).await;
    let store = &first.state.store;
    let record = |from: &str, wamid: &str| inbound_record(tenant, from, wamid, "Do you deliver?");
    let ids = |m: &[parley::store::messages::ClaimedInbound]| {
        let mut ids: Vec<String> = m
            .iter()
            .map(|m| m.message.provider_message_id.clone())
            .collect();
        ids.sort();
        ids
    };
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    // A new customer's first message is leased as it is stored; the waiting
    // customer's next one is not (it goes after the one before it).
    let (new, leased) = store
        .store_webhook_leasing(
            &[
                record("15551239999", "wamid.IN.fresh"),
                record("15551230001", "wamid.IN.later"),
            ],
            &[],
            lease,
        )
        .await
        .unwrap();
    assert_eq!(new, 2);
    assert_eq!(ids(&leased.messages), ["wamid.IN.fresh"]);
    assert_eq!(leased.messages[0].attempts, 1);
    assert_eq!(
        leased.messages[0].message.text.as_deref(),
        Some("Do you deliver?")
    );
    // A new customer: no conversation yet, and the store says so.
    assert_eq!(leased.conversations.as_deref().map(<[_]>::len), Some(0));
    // The claim takes the waiting customer's oldest message, not the leased one.
    let claimed = store.claim_inbound(10, now, lease).await.unwrap();
    assert_eq!(ids(&claimed), ["wamid.IN.earlier"]);
    // Once the leases have run out, the leased message is claimed like any.
    let later = lease + chrono::Duration::seconds(1);
    let again = store
        .claim_inbound(10, later, later + chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(ids(&again), ["wamid.IN.earlier", "wamid.IN.fresh"]);
    // The same message again (a provider retry): nothing new, nothing leased.
    let (new, leased) = store
        .store_webhook_leasing(&[record("15551239999", "wamid.IN.fresh")], &[], lease)
        .await
        .unwrap();
    assert_eq!((new, leased.messages.len()), (0, 0));
    first.stop().await;
}

async fn the_recorded_meta_fixture_verifies_and_its_escaped_text_decodes(db: Db) {
    // Tenant acme uses the fixtures' fake app secret, so their recorded signatures verify.
    let Some(w) = World::with(db, true, |b| {
        if b["slug"] == "acme" {
            b["whatsapp"]["app_secret"] = json!("test_app_secret_0123456789abcdef");
            b["settings"]["window_template"] = json!({"name": "late_reply", "language": "es"});
        }
    })
    .await
    else {
        return;
    };
    // The recorded message is months old: its 24-hour window has closed, so the answer
    // must go out as the tenant's approved template.
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"type": "template"}),
        ))
        .respond_with(MetaAccepts(std::sync::atomic::AtomicU64::new(900)))
        .mount(&w.meta)
        .await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/meta_text.json"
    ))
    .unwrap();
    let signature = "sha256=45f0860a8e88752081a7e4fb967d21d8f48146160e25b12c687262d83114437b";
    let r = reqwest::Client::new()
        .post(w.app.url("/webhooks/whatsapp/acme"))
        .header("x-hub-signature-256", signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut templates = Vec::new();
    for _ in 0..300 {
        let reqs = w.meta.received_requests().await.unwrap_or_default();
        templates = reqs
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .filter(|b| b["type"] == "template")
            .collect::<Vec<_>>();
        if !templates.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0]["to"], "+15551230001");
    assert_eq!(templates[0]["template"]["name"], "late_reply");
    assert_eq!(
        templates[0]["template"]["components"][0]["parameters"][0]["text"],
        "9-18 (acme)"
    );
    assert!(
        sent_texts(&w.meta).await.is_empty(),
        "no free-form text outside the window"
    );
    let log = w.log("acme").await;
    let inbound = log.iter().find(|m| m.direction == "in").unwrap();
    assert_eq!(
        inbound.body.as_deref(),
        Some("Hola, \u{bf}abren el s\u{e1}bado? What are your opening hours?")
    );
    // The same bytes re-serialized no longer carry a valid signature.
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialized = serde_json::to_vec(&v).unwrap();
    let r = reqwest::Client::new()
        .post(w.app.url("/webhooks/whatsapp/acme"))
        .header("x-hub-signature-256", signature)
        .body(reserialized)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// On SQLite, the transaction that stores a webhook also decides and queues the turns
/// that need nothing else (`pipeline::DecideStored`): when Meta gets its 200, the
/// answer is already queued. A customer with an earlier message waiting, and an
/// escalation, are left to the pipeline; a provider retry decides nothing again.
async fn a_plain_faq_question_is_answered_in_the_transaction_that_stores_it(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    let (first, _cfg) =
        stored_but_not_processed(&w, "wamid.IN.earlier", Duration::from_secs(60)).await;
    let store = &first.state.store;
    let ctx = first.state.cache.get(tenant).await.unwrap().unwrap();
    let record = |from: &str, wamid: &str, text: &str| inbound_record(tenant, from, wamid, text);
    let batch = [
        record("15551239999", "wamid.IN.plain", "Do you deliver?"),
        record(
            "15551238888",
            "wamid.IN.refund",
            "I want a refund for my bike",
        ),
        record(
            "15551230001",
            "wamid.IN.later",
            "What are your opening hours?",
        ),
        // The same webhook twice within one commit, and (forged or not) the same
        // message id from another customer: neither new, neither answered.
        record("15551239999", "wamid.IN.plain", "Do you deliver?"),
        record("15551237777", "wamid.IN.plain", "Do you deliver?"),
    ];
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let decide = || {
        Box::new(parley::workers::pipeline::DecideStored::new(
            [ctx.clone()],
            now,
            false,
        ))
    };
    let (new, stored) = store
        .store_webhook_deciding(&batch, &[], lease, decide(), now, Some(lease))
        .await
        .unwrap();
    assert_eq!(new, 3);
    let count = |sql: &'static str| w.db.count(sql);
    // The plain question: decided, its reply queued and leased to send at once.
    assert_eq!(stored.decided.len(), 1);
    assert_eq!(stored.decided[0].inbound_id, batch[0].id);
    assert_eq!(stored.replies.len(), 1);
    assert_eq!(stored.replies[0].body, "Yes (acme)");
    assert_eq!(stored.replies[0].recipient, "15551239999");
    // Stored done, in its conversation, as the pipeline would have left it.
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM inbound_messages m JOIN conversations c \
               ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
               AND c.customer_id = m.customer_id \
               WHERE m.provider_message_id = 'wamid.IN.plain' AND m.state = 'done' \
               AND m.processed_at IS NOT NULL AND m.claimed_until IS NULL \
               AND m.body = 'Do you deliver?'"
        )
        .await,
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM inbound_messages WHERE customer_id = '15551237777'").await,
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM inbound_messages WHERE decision_reason = 'faq_match' \
             AND decided_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM outbound_messages WHERE body = 'Yes (acme)' AND state = 'pending'"
        )
        .await,
        1
    );
    // The escalation goes to the pipeline (telling the staff reads the store);
    // the waiting customer's message stays behind the one before it.
    let left: Vec<&str> = stored
        .messages
        .iter()
        .map(|m| m.message.provider_message_id.as_str())
        .collect();
    assert_eq!(left, ["wamid.IN.refund"]);
    assert_eq!(
        count("SELECT COUNT(*) FROM inbound_messages WHERE state = 'pending'").await,
        3
    );
    // The hourly allowance counted the one reply.
    assert_eq!(
        count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM rate_counters").await,
        1
    );
    // Meta delivers the same webhook again: nothing new, nothing decided, one reply.
    let (new, again) = store
        .store_webhook_deciding(&batch[..1], &[], lease, decide(), now, Some(lease))
        .await
        .unwrap();
    assert_eq!((new, again.decided.len(), again.replies.len()), (0, 0, 0));
    assert_eq!(
        count("SELECT COUNT(*) FROM outbound_messages WHERE body = 'Yes (acme)'").await,
        1
    );
    first.stop().await;
}

/// Two webhooks of one customer stored at the same moment (PostgreSQL stores them in
/// transactions side by side) are handled one after the other, the second seeing what
/// the first left: two plain questions are both decided as they are stored, but only
/// the first reply is leased to go at once (the second goes after it); two messages the
/// pipeline must decide (an escalation) are not both leased to it (the second waits
/// behind the first). Twenty customers of each at once, so that a race would show.
async fn two_messages_of_one_customer_stored_at_once_are_handled_one_after_the_other(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    let (first, _cfg) =
        stored_but_not_processed(&w, "wamid.IN.earlier", Duration::from_secs(60)).await;
    let store = first.state.store.clone();
    let ctx = first.state.cache.get(tenant).await.unwrap().unwrap();
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let stores = (0..80).map(|n| {
        let (store, ctx) = (store.clone(), ctx.clone());
        // Customers 1555124xxxx ask a plain question, 1555125xxxx want a refund.
        let (prefix, text) = if n < 40 {
            ("1555124", "Do you deliver?")
        } else {
            ("1555125", "I want a refund for my bike")
        };
        let record = inbound_record(
            tenant,
            &format!("{prefix}{:04}", n / 2),
            &format!("wamid.IN.race{n}"),
            text,
        );
        async move {
            let decide = parley::workers::pipeline::DecideStored::new([ctx], now, false);
            store
                .store_webhook_deciding(&[record], &[], lease, Box::new(decide), now, Some(lease))
                .await
                .unwrap()
        }
    });
    let stored = futures_util::future::join_all(stores).await;
    assert!(stored.iter().all(|(new, _)| *new == 1));
    let customers = |of: &dyn Fn(&parley::store::messages::StoredLeased) -> Vec<String>| {
        let mut all: Vec<String> = stored.iter().flat_map(|(_, s)| of(s)).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        (n, all.len())
    };
    // Plain questions: all 40 decided; one reply a customer leased.
    let decided = customers(&|s| s.decided.iter().map(|t| t.customer_id.clone()).collect());
    let replies = customers(&|s| s.replies.iter().map(|r| r.recipient.clone()).collect());
    assert_eq!((decided, replies), ((40, 20), (20, 20)));
    // Escalations: one message a customer leased to the pipeline, the other waiting.
    let leased = customers(&|s| {
        s.messages
            .iter()
            .map(|m| m.message.customer_id.clone())
            .collect()
    });
    assert_eq!(leased, (20, 20), "one message leased per customer");
    let count = |sql: &'static str| w.db.count(sql);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM inbound_messages \
             WHERE customer_id LIKE '1555124%' AND state = 'done'"
        )
        .await,
        40
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM inbound_messages WHERE customer_id LIKE '1555125%' \
             AND state = 'pending' AND claimed_until IS NULL"
        )
        .await,
        20
    );
    // The second reply of each customer waits, unleased, for the first to go.
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM outbound_messages WHERE customer_id LIKE '1555124%' \
             AND state = 'pending' AND claimed_until IS NULL"
        )
        .await,
        20
    );
    first.stop().await;
}

/// A decider that takes its rate counters and then panics while building the turns.
struct PanicsAfterCounting(parley::domain::TenantId);

impl parley::store::messages::DecideNow for PanicsAfterCounting {
    fn prepare(
        &mut self,
        leased: &[parley::store::messages::ClaimedInbound],
        _: &[(
            parley::store::messages::ConversationKey,
            parley::store::conversations::ConversationState,
        )],
    ) -> Vec<Option<Vec<parley::store::messages::QuotaAsk>>> {
        let ask = parley::store::messages::QuotaAsk {
            tenant: self.0,
            scope: "test_poison".into(),
            window_start: Utc::now(),
            limit: 100,
        };
        leased.iter().map(|_| Some(vec![ask.clone()])).collect()
    }

    fn finish(self: Box<Self>, _: Vec<Option<usize>>) -> Vec<parley::store::messages::TurnRecord> {
        panic!("a bug while deciding");
    }
}

/// Should deciding a webhook's messages in its transaction panic, the webhook is still
/// stored (no 503 for it and every webhook batched with it), its messages are left to
/// the pipeline, and the rate counters it took are undone.
async fn a_panic_while_deciding_in_the_storing_transaction_still_stores_the_webhook(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let tenant = w.tenant("acme").await.id;
    let record = inbound_record(tenant, "15551239999", "wamid.IN.poison", "Do you deliver?");
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let (new, stored) = w
        .app
        .state
        .store
        .store_webhook_deciding(
            &[record],
            &[],
            lease,
            Box::new(PanicsAfterCounting(tenant)),
            now,
            None,
        )
        .await
        .expect("stored despite the panic");
    assert_eq!(new, 1);
    assert!(stored.decided.is_empty() && stored.replies.is_empty());
    assert_eq!(
        w.db.count(
            "SELECT COUNT(*) FROM inbound_messages WHERE provider_message_id = 'wamid.IN.poison'"
        )
        .await,
        1
    );
    assert_eq!(
        w.db.count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM rate_counters WHERE scope = 'test_poison'")
            .await,
        0
    );
    // Leased as stored, for the pipeline to decide.
    assert_eq!(stored.messages.len(), 1);
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM inbound_messages WHERE state = 'pending'")
            .await,
        1
    );
}

/// Migrations 0011 (SQLite: the message loop's tables rebuilt with their keys id first;
/// nothing on PostgreSQL) to 0015 (0014: decisions as columns of their messages) keep an
/// operator's messages, replies and decisions, per tenant, on the way up and back down,
/// and the loop answers on the migrated schema.
async fn messages_and_decisions_survive_the_id_first_keys_both_ways(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    post_each(&w, &ONE_QUESTION_EACH).await;
    post_each(
        &w,
        &[("bolt", B, "15551230003", "wamid.IN.3", "purple elephants")],
    )
    .await;
    assert_eq!(wait_for_texts(&w.meta, 3).await.len(), 3);
    for slug in ["acme", "bolt"] {
        wait_log(&w, slug, |l| {
            l.iter()
                .filter(|m| m.direction == "out")
                .all(|m| m.state == "sent")
        })
        .await;
    }
    let World {
        db,
        keys,
        meta,
        app,
    } = w;
    let snapshot = |store: Arc<dyn parley::store::Store>| async move {
        let mut all = Vec::new();
        for slug in ["acme", "bolt"] {
            let t = store.find_tenant_by_slug(slug).await.unwrap().unwrap();
            all.push((
                store.list_messages(t.id, 1000).await.unwrap(),
                store.list_decisions(t.id, 1000).await.unwrap(),
            ));
        }
        all
    };
    // Below 0014 the decisions are rows of their own: each tenant's, by reason, each
    // naming one of that tenant's messages.
    let decision_rows = |slug: &str, reason: &str| {
        format!(
            "SELECT COUNT(*) FROM decisions d JOIN inbound_messages m \
             ON m.tenant_id = d.tenant_id AND m.id = d.inbound_message_id \
             WHERE d.reason = '{reason}' AND d.tenant_id = (SELECT id FROM tenants WHERE slug = '{slug}')"
        )
    };
    app.stop().await;
    let store = db.store().await;
    let before = snapshot(store.clone()).await;
    assert_eq!(before[0].0.len(), 2, "acme: one message, one reply");
    assert_eq!(before[1].0.len(), 4, "bolt: two messages, two replies");
    let reasons = |i: usize| {
        let mut r: Vec<String> = before[i].1.iter().map(|d| d.reason.clone()).collect();
        r.sort();
        r
    };
    assert_eq!(reasons(0), ["faq_match"], "acme: one decision");
    assert_eq!(
        reasons(1),
        ["below_threshold", "faq_match"],
        "bolt: two decisions"
    );
    for (version, what) in [
        (15, "0015"),
        (14, "0014"),
        (13, "0013"),
        (12, "0012"),
        (11, "0011"),
    ] {
        assert_eq!(
            store.migrate_down().await.unwrap().unwrap().version,
            version
        );
        for (i, slug) in ["acme", "bolt"].into_iter().enumerate() {
            let t = store.find_tenant_by_slug(slug).await.unwrap().unwrap();
            assert_eq!(
                store.list_messages(t.id, 1000).await.unwrap(),
                before[i].0,
                "{slug}'s messages after reverting {what}"
            );
            if version > 14 {
                assert_eq!(
                    store.list_decisions(t.id, 1000).await.unwrap(),
                    before[i].1,
                    "{slug}'s decisions after reverting {what}"
                );
                continue;
            }
            for reason in ["faq_match", "below_threshold"] {
                let n = reasons(i).iter().filter(|r| *r == reason).count();
                assert_eq!(
                    db.count(&decision_rows(slug, reason)).await,
                    n as i64,
                    "{slug}'s {reason} decisions after reverting {what}"
                );
            }
        }
    }
    store.migrate_up().await.unwrap();
    assert_eq!(
        snapshot(store.clone()).await,
        before,
        "after 0011 to 0015 again"
    );
    // The same message again is still a duplicate; a new one is answered.
    let app = TestApp::spawn(&db, keys, &format!("{}/v25.0", meta.uri())).await;
    for (wamid, text) in [
        ("wamid.IN.1", "what are your opening hours"),
        ("wamid.IN.4", "Do you deliver?"),
    ] {
        let r = post_signed_to(&app, "acme", &text_webhook(A, "15551230001", wamid, text)).await;
        assert_eq!(r.status(), 200);
    }
    let sent = wait_for_texts(&meta, 4).await;
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent.iter().filter(|s| s.text == "9-18 (acme)").count(), 1);
    app.stop().await;
}

/// The message loop's tables hold no foreign key to tenants on PostgreSQL (migration
/// 0012): deleting a tenant still takes every row of its conversations with it, and
/// leaves the other tenant's rows and conversation going.
async fn deleting_a_tenant_takes_its_conversations_and_leaves_the_others(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    post_each(&w, &ONE_QUESTION_EACH).await;
    for (slug, pnid, to) in [("acme", A, "15551230001"), ("bolt", B, "15551230002")] {
        wait_reply_state(&w, slug, "sent").await;
        let wamid = reply(&w, slug).await.provider_message_id.unwrap();
        let r = w
            .post_signed(slug, &status_webhook(pnid, &wamid, "delivered", to))
            .await;
        assert_eq!(r.status(), 200);
    }
    let tables = [
        "contacts",
        "conversations",
        "inbound_messages",
        "outbound_messages",
        "message_statuses",
        "usage_daily",
    ];
    let acme = w.tenant("acme").await;
    let mut bolts = Vec::new();
    for table in tables {
        let of = |slug: &str| {
            format!(
                "SELECT COUNT(*) FROM {table} \
                 WHERE tenant_id = (SELECT id FROM tenants WHERE slug = '{slug}')"
            )
        };
        assert!(
            w.db.count(&of("acme")).await >= 1,
            "{table} holds acme's rows"
        );
        let n = w.db.count(&of("bolt")).await;
        assert!(n >= 1, "{table} holds bolt's rows");
        bolts.push(n);
    }
    // As the operator API and `parley tenant delete` do it.
    w.app.state.store.delete_tenant(acme.id).await.unwrap();
    w.app.state.cache.invalidate(acme.id).await;
    let orphans = |table: &str| {
        format!("SELECT COUNT(*) FROM {table} WHERE tenant_id NOT IN (SELECT id FROM tenants)")
    };
    for (table, before) in tables.iter().zip(&bolts) {
        assert_eq!(
            w.db.count(&orphans(table)).await,
            0,
            "{table} kept rows of the deleted tenant"
        );
        let left = w.db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(left, *before, "{table}: bolt's rows untouched");
    }
    // A write that raced the deletion (an instance that still knew acme): SQLite's keys
    // refuse it; on PostgreSQL it is stored, and the pipeline, meeting a message whose
    // tenant is gone, removes what is left of acme instead of claiming it forever.
    let late = inbound_record(acme.id, "15551230009", "wamid.IN.late", "Do you deliver?");
    let stored = w.app.state.store.store_webhook(&[late], &[]).await;
    if w.db.kind == Db::Sqlite {
        assert!(stored.is_err(), "SQLite's key refuses it");
    } else {
        assert_eq!(stored.unwrap(), 1, "PostgreSQL stores it");
        let mut left = -1;
        for _ in 0..300 {
            left = w.db.count(&orphans("inbound_messages")).await;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            left, 0,
            "the late message of the deleted tenant was removed"
        );
    }
    assert_eq!(w.log("bolt").await.len(), 2, "bolt: its message and reply");
    // acme's number is unknown now; bolt's customer is still answered.
    let r = w
        .post_signed(
            "acme",
            &text_webhook(A, "15551230001", "wamid.IN.3", "Do you deliver?"),
        )
        .await;
    assert_eq!(r.status(), 404);
    post_each(
        &w,
        &[("bolt", B, "15551230002", "wamid.IN.4", "Do you deliver?")],
    )
    .await;
    assert_eq!(wait_for_texts(&w.meta, 3).await.len(), 3);
}

on_both_backends!(
    an_expired_token_marks_the_tenant_and_stops_retrying,
    deleting_a_tenant_takes_its_conversations_and_leaves_the_others,
    claims_take_each_customers_oldest_pending_message_only,
    messages_and_decisions_survive_the_id_first_keys_both_ways,
    a_tenant_that_logs_no_message_text_keeps_none_once_answered,
    a_crash_after_the_200_and_before_the_send_still_replies_once_after_restart,
    work_claimed_by_a_crashed_worker_is_taken_up_after_its_lease,
    bad_requests_get_their_documented_status_and_store_nothing,
    events_for_another_phone_number_are_not_processed_as_this_tenant,
    a_batch_counts_its_replies_against_the_hourly_limit_in_order,
    a_slow_read_receipt_does_not_hold_up_the_reply,
    meta_verification_answers_the_challenge_only_with_the_right_token,
    a_disabled_tenant_gets_404_and_a_database_outage_gets_503,
    a_customers_next_reply_waits_for_the_one_in_flight,
    a_contact_without_a_conversation_is_answered_once,
    a_customers_next_message_does_not_wait_for_the_poll,
    a_turn_joins_the_customers_one_conversation_whatever_it_was_decided_with,
    a_customer_known_only_by_business_scoped_id_is_answered_by_that_id,
    a_reply_in_flight_at_a_crash_is_sent_after_restart,
    a_reply_the_pipeline_leased_for_itself_at_a_crash_is_sent_once_after_restart,
    a_message_leased_as_it_is_stored_is_claimed_only_after_its_lease,
    a_plain_faq_question_is_answered_in_the_transaction_that_stores_it,
    a_panic_while_deciding_in_the_storing_transaction_still_stores_the_webhook,
    two_messages_of_one_customer_stored_at_once_are_handled_one_after_the_other,
    a_staff_notification_is_never_leased_with_the_turn_and_goes_through_the_claim,
    the_recorded_meta_fixture_verifies_and_its_escaped_text_decodes,
);

// The in-memory store too: its message loop runs on the shared sqlx statements.
on_every_store!(
    each_tenant_gets_its_own_faq_answer_with_its_own_token_and_number,
    the_same_webhook_delivered_three_times_gets_one_reply,
    the_same_webhook_delivered_three_times_at_once_gets_one_reply,
    fifty_concurrent_webhooks_get_fifty_replies_none_doubled,
    meta_failing_twice_with_500_then_accepting_delivers_exactly_once,
    a_window_closed_error_is_recorded_as_failed_and_never_retried,
    below_the_threshold_the_fallback_is_sent_and_a_disabled_bot_stays_silent,
    the_per_customer_daily_limit_is_shared_and_enforced,
    a_message_decided_twice_keeps_its_first_decision_and_reply,
    one_customers_messages_are_answered_in_order,
    an_unknown_message_type_is_kept_and_gets_the_non_text_reply,
    statuses_move_forward_only_whatever_their_order,
);
