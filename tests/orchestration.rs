//! AI orchestration end to end, on both backends: wiremock as Meta and as each
//! tenant's LLM provider, a clock the tests set. LLM answers and their fallbacks,
//! escalation with notifications, hand-off to a person and back, quiet hours, delayed
//! replies across a restart, the 24-hour window, prompt versions and LLM budgets.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::meta::*;
use common::{Db, TestApp, TestDb, key_ring, test_config};
use parley::clock::ManualClock;
use parley::crypto::KeyRing;
use parley::provisioning::apply_bundle;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const A: &str = "100000000000001";
const B: &str = "100000000000002";
const STAFF: &str = "+4915112345678";

/// A tenant whose LLM is the mock at `llm`, with FAQs that do not cover most questions.
fn tenant_bundle(slug: &str, pnid: &str, llm: &str) -> Value {
    json!({
        "slug": slug,
        "name": format!("Shop {slug}"),
        "timezone": "Europe/Berlin",
        "whatsapp": {
            "phone_number_id": pnid,
            "access_token": format!("EAAG-{slug}-token-0001"),
            "app_secret": format!("appsecret-{slug}-0123456789"),
            "verify_token": format!("verify-{slug}-0123456789"),
        },
        "ai": {"provider": "compatible", "base_url": format!("{llm}/v1"),
               "model": format!("model-{slug}"), "api_key": format!("sk-{slug}-secret-key-000111")},
        "settings": {
            "confidence_threshold": 0.6,
            "escalation": {"categories": ["refund", "complaint", "emergency"], "phone": STAFF},
            "window_template": {"name": "staff_alert", "language": "en_US"},
        },
        "templates": [{"name": "Robin", "system_prompt": "You are {assistant_name} at {business_name} ({local_time}). Facts:\n{faq_context}", "tone": "cheerful", "max_response_length": 300, "is_default": true}],
        "faqs": [
            {"question": "What are your opening hours?", "answer": format!("9-18 ({slug})"), "examples": ["when are you open"]},
            {"question": "Do you deliver?", "answer": format!("We deliver citywide ({slug})")}
        ]
    })
}

/// An OpenAI-style chat completion whose content is `answer` as JSON.
fn completion(answer: Value, tokens_in: i64, tokens_out: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    }))
}

fn confident(answer: &str) -> ResponseTemplate {
    completion(
        json!({"answer": answer, "confidence": 0.92, "category": "general", "needs_human": false}),
        80,
        20,
    )
}

struct World {
    db: TestDb,
    keys: Arc<KeyRing>,
    meta: MockServer,
    llm: MockServer,
    clock: Arc<ManualClock>,
    app: Option<TestApp>,
    /// PARLEY_SMTP_URL for the app, if any.
    smtp: Option<String>,
}

/// 2026-11-18 (a Wednesday), 12:00 in Berlin: open hours.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 11, 0, 0).unwrap()
}

impl World {
    async fn new(kind: Db, tweak: impl Fn(&mut Value)) -> Option<World> {
        Self::with_smtp(kind, None, tweak).await
    }

    async fn with_smtp(
        kind: Db,
        smtp: Option<String>,
        tweak: impl Fn(&mut Value),
    ) -> Option<World> {
        let db = TestDb::new(kind).await?;
        let (keys, _) = key_ring();
        let keys = Arc::new(keys);
        let meta = MockServer::start().await;
        meta_accepting_everything(&meta).await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v25\.0/\d+/messages$"))
            .and(body_partial_json(json!({"type": "template"})))
            .respond_with(MetaAccepts(AtomicU64::new(500)))
            .mount(&meta)
            .await;
        let llm = MockServer::start().await;
        let store = db.store().await;
        for (slug, pnid) in [("acme", A), ("bolt", B)] {
            let mut b = tenant_bundle(slug, pnid, &llm.uri());
            tweak(&mut b);
            apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
                .await
                .unwrap();
        }
        let clock = Arc::new(ManualClock::new(noon()));
        let mut w = World {
            db,
            keys,
            meta,
            llm,
            clock,
            app: None,
            smtp,
        };
        w.start().await;
        Some(w)
    }

    async fn start(&mut self) {
        let mut config = test_config(&self.db.url);
        config.whatsapp_api_base = format!("{}/v25.0", self.meta.uri());
        config.smtp = self
            .smtp
            .clone()
            .map(|url| (url.into(), "parley alerts <alerts@parley.test>".to_string()));
        let app =
            TestApp::spawn_with_clock(&self.db, self.keys.clone(), config, self.clock.clone())
                .await;
        self.app = Some(app);
    }

    async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.start().await;
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().unwrap()
    }

    /// A text from `from` to tenant `slug`, sent "now" on the test clock.
    async fn say(&self, slug: &str, from: &str, wamid: &str, text: &str) {
        let ts = self.clock.now_ts();
        self.say_at(slug, from, wamid, text, ts).await
    }

    async fn say_at(&self, slug: &str, from: &str, wamid: &str, text: &str, ts: i64) {
        let pnid = if slug == "acme" { A } else { B };
        let body = text_webhook_at(pnid, from, wamid, text, ts);
        let resp = reqwest::Client::new()
            .post(self.app().url(&format!("/webhooks/whatsapp/{slug}")))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                sign(&format!("appsecret-{slug}-0123456789"), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn post_signed(&self, slug: &str, body: &str) {
        let resp = reqwest::Client::new()
            .post(self.app().url(&format!("/webhooks/whatsapp/{slug}")))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                sign(&format!("appsecret-{slug}-0123456789"), body),
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn tenant(&self, slug: &str) -> parley::domain::Tenant {
        let s = &self.app().state.store;
        s.find_tenant_by_slug(slug).await.unwrap().unwrap()
    }

    /// Waits until tenant `slug` has `n` decisions; returns their reasons.
    async fn decisions(
        &self,
        slug: &str,
        n: usize,
    ) -> Vec<parley::store::messages::StoredDecision> {
        let t = self.tenant(slug).await;
        let mut d = Vec::new();
        for _ in 0..300 {
            d = self
                .app()
                .state
                .store
                .list_decisions(t.id, 1000)
                .await
                .unwrap();
            if d.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(d.len(), n, "decisions: {d:?}");
        d
    }

    async fn reasons(&self, slug: &str, n: usize) -> Vec<String> {
        self.decisions(slug, n)
            .await
            .into_iter()
            .map(|d| d.reason)
            .collect()
    }

    /// Every LLM request body received so far.
    async fn llm_requests(&self) -> Vec<(String, Value)> {
        let reqs = self.llm.received_requests().await.unwrap_or_default();
        reqs.iter()
            .map(|r| {
                let auth = r
                    .headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                (auth, serde_json::from_slice(&r.body).unwrap())
            })
            .collect()
    }

    async fn conversation_status(&self, slug: &str, customer: &str) -> String {
        let t = self.tenant(slug).await;
        let list = self
            .app()
            .state
            .store
            .list_conversations(t.id, None, None, 100)
            .await
            .unwrap();
        list.into_iter()
            .find(|c| c.customer_id == customer)
            .map(|c| c.status)
            .unwrap_or_default()
    }

    /// Moves the test clock and wakes the workers (their poll would find the work too).
    fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.app().state.wake_pipeline.notify_one();
        self.app().state.wake_sender.notify_one();
    }
}

trait NowTs {
    fn now_ts(&self) -> i64;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> i64 {
        parley::clock::Clock::now(self).timestamp()
    }
}

fn mount_llm(server: &MockServer, response: ResponseTemplate) -> Mock {
    let _ = server;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(response)
}

/// Template sends Meta received: (to, template name, first body parameter).
async fn sent_templates(server: &MockServer) -> Vec<(String, String, String)> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| {
            let b: Value = serde_json::from_slice(&r.body).ok()?;
            (b["type"] == "template").then(|| {
                (
                    b["to"].as_str().unwrap_or("").to_string(),
                    b["template"]["name"].as_str().unwrap_or("").to_string(),
                    b["template"]["components"][0]["parameters"][0]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
        })
        .collect()
}

async fn wait_templates(server: &MockServer, n: usize) -> Vec<(String, String, String)> {
    wait_for(n, || sent_templates(server)).await
}

/// No text arrives within a short while (for "the bot stays silent").
async fn texts_after_pause(server: &MockServer) -> Vec<Sent> {
    tokio::time::sleep(Duration::from_millis(400)).await;
    sent_texts(server).await
}

// -------------------------------------------------------------------------------------

async fn a_confident_llm_answer_is_sent_with_only_that_tenants_key_model_prompt_and_faqs(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(&w.llm, confident("We fix flat tyres in 20 minutes."))
        .mount(&w.llm)
        .await;
    w.say(
        "acme",
        "15550001111",
        "wamid.a1",
        "Can you fix a flat tyre?",
    )
    .await;
    w.say(
        "bolt",
        "15550002222",
        "wamid.b1",
        "Can you fix a flat tyre?",
    )
    .await;
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|s| s.text == "We fix flat tyres in 20 minutes.")
    );
    assert_eq!(w.reasons("acme", 1).await, ["llm_answer"]);
    assert_eq!(w.reasons("bolt", 1).await, ["llm_answer"]);

    let reqs = w.llm_requests().await;
    assert_eq!(reqs.len(), 2);
    for (slug, other) in [("acme", "bolt"), ("bolt", "acme")] {
        let (auth, body) = reqs
            .iter()
            .find(|(a, _)| a.contains(slug))
            .unwrap_or_else(|| panic!("no request with {slug}'s key"));
        assert_eq!(auth, &format!("Bearer sk-{slug}-secret-key-000111"));
        assert_eq!(body["model"], format!("model-{slug}"));
        let all = body.to_string();
        assert!(
            !all.contains(other),
            "{slug}'s request mentions {other}: {all}"
        );
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(system.contains(&format!("Shop {slug}")), "{system}");
        assert!(
            system.contains(&format!("We deliver citywide ({slug})")),
            "{system}"
        );
        assert!(system.contains("Robin") && system.contains("cheerful"));
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "user");
        assert_eq!(last["content"], "Can you fix a flat tyre?");
    }
    // Usage is metered per tenant.
    let t = w.tenant("acme").await;
    let day = noon().date_naive();
    let usage = w
        .app()
        .state
        .store
        .list_usage(t.id, day, day)
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (
            usage[0].inbound,
            usage[0].llm_calls,
            usage[0].tokens_in,
            usage[0].tokens_out,
            usage[0].outbound
        ),
        (1, 1, 80, 20, 1)
    );
}

async fn a_faq_match_needs_no_llm_call(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(&w.llm, confident("unused")).mount(&w.llm).await;
    w.say("acme", "15550001111", "wamid.a1", "when are you open?")
        .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent[0].text, "9-18 (acme)");
    assert_eq!(w.reasons("acme", 1).await, ["faq_match"]);
    assert!(w.llm_requests().await.is_empty());
}

async fn an_unsure_llm_answer_escalates_notifies_staff_and_the_bot_stays_silent(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(
        &w.llm,
        completion(
            json!({"answer": "Maybe?", "confidence": 0.2, "category": "general", "needs_human": false}),
            50,
            5,
        ),
    )
    .mount(&w.llm)
    .await;
    w.say(
        "acme",
        "15550001111",
        "wamid.a1",
        "Can I bring my dog into the shop?",
    )
    .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+15550001111");
    assert_eq!(sent[0].text, parley::domain::DEFAULT_ESCALATION_ACK_TEXT);
    // The staff phone never wrote to the business: outside its window, the template.
    let templates = wait_templates(&w.meta, 1).await;
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(templates[0].0, STAFF);
    assert_eq!(templates[0].1, "staff_alert");
    assert!(
        templates[0].2.contains("Can I bring my dog"),
        "{templates:?}"
    );
    assert_eq!(w.reasons("acme", 1).await, ["llm_low_confidence"]);
    assert_eq!(w.conversation_status("acme", "15550001111").await, "human");
    let t = w.tenant("acme").await;
    let mut notes = Vec::new();
    for _ in 0..100 {
        notes = w
            .app()
            .state
            .store
            .list_notifications(t.id, 10)
            .await
            .unwrap();
        if notes.iter().all(|n| n.state == "sent") && !notes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].via.as_str(), notes[0].state.as_str()),
        ("whatsapp", "sent")
    );
    assert_eq!(notes[0].category, "low_confidence");

    // While a person handles it, the bot says nothing.
    w.say("acme", "15550001111", "wamid.a2", "Hello??").await;
    assert_eq!(w.reasons("acme", 2).await[1], "human_handling");
    assert_eq!(texts_after_pause(&w.meta).await.len(), 1);
    assert_eq!(w.llm_requests().await.len(), 1);
}

async fn keywords_escalate_at_once_without_asking_the_llm(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(&w.llm, confident("unused")).mount(&w.llm).await;
    w.say(
        "acme",
        "15550001111",
        "wamid.a1",
        "I want my money back for the broken bike",
    )
    .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent[0].text, parley::domain::DEFAULT_ESCALATION_ACK_TEXT);
    assert_eq!(w.reasons("acme", 1).await, ["escalated:refund"]);
    assert!(w.llm_requests().await.is_empty());
    assert_eq!(wait_templates(&w.meta, 1).await.len(), 1);
}

async fn llm_errors_timeouts_and_garbage_fall_back_and_the_conversation_keeps_working(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    let fallback = parley::domain::DEFAULT_FALLBACK_TEXT;
    let cases = [
        ("server error", ResponseTemplate::new(500).set_body_string("oops"), "llm_http_error"),
        // The test config gives the LLM 1.5 s in all.
        ("timeout", confident("late").set_delay(Duration::from_secs(4)), "llm_timeout"),
        (
            "garbage",
            ResponseTemplate::new(200).set_body_json(json!({"choices": [{"index": 0,
                "message": {"role": "assistant", "content": "I think yes!!"}, "finish_reason": "stop"}]})),
            "llm_malformed_output",
        ),
    ];
    for (i, (name, response, code)) in cases.into_iter().enumerate() {
        w.llm.reset().await;
        mount_llm(&w.llm, response).mount(&w.llm).await;
        w.say(
            "acme",
            "15550001111",
            &format!("wamid.e{i}"),
            "Do you rent tandems?",
        )
        .await;
        let sent = wait_for_texts(&w.meta, i + 1).await;
        assert_eq!(sent.len(), i + 1, "{name}");
        assert_eq!(sent[i].text, fallback, "{name}");
        let d = w.decisions("acme", i + 1).await;
        assert_eq!(d[i].reason, "llm_error", "{name}");
        assert_eq!(d[i].detail.as_ref().unwrap()["error"], code, "{name}");
    }
    // Still the bot's conversation: the next question gets its answer.
    w.llm.reset().await;
    mount_llm(&w.llm, confident("Yes, tandems are 30 EUR a day."))
        .mount(&w.llm)
        .await;
    w.say("acme", "15550001111", "wamid.ok", "Do you rent tandems?")
        .await;
    let sent = wait_for_texts(&w.meta, 4).await;
    assert_eq!(sent[3].text, "Yes, tandems are 30 EUR a day.");
    assert_eq!(w.conversation_status("acme", "15550001111").await, "bot");
}

async fn a_spent_monthly_budget_means_no_llm_call(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["llm_monthly_token_budget"] = json!(100);
    })
    .await
    else {
        return;
    };
    mount_llm(&w.llm, confident("First answer."))
        .mount(&w.llm)
        .await;
    w.say("acme", "15550001111", "wamid.1", "Can you fix a flat tyre?")
        .await;
    wait_for_texts(&w.meta, 1).await;
    // 80 + 20 tokens used: the budget of 100 is spent.
    w.say("acme", "15550001111", "wamid.2", "Do you sell helmets?")
        .await;
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent[1].text, parley::domain::DEFAULT_FALLBACK_TEXT);
    let d = w.decisions("acme", 2).await;
    assert_eq!(d[1].reason, "budget_exhausted");
    assert_eq!(d[1].detail.as_ref().unwrap()["used_tokens"], 100);
    assert_eq!(w.llm_requests().await.len(), 1);
    // FAQs still answer.
    w.say("acme", "15550001111", "wamid.3", "Do you deliver?")
        .await;
    let sent = wait_for_texts(&w.meta, 3).await;
    assert_eq!(sent[2].text, "We deliver citywide (acme)");
}

async fn publishing_a_prompt_version_changes_the_system_prompt_and_rollback_restores_it(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(&w.llm, confident("ok")).mount(&w.llm).await;
    let t = w.tenant("acme").await;
    let store = w.app().state.store.clone();
    let now = Utc::now();
    let v1 = store
        .create_prompt_version(
            t.id,
            "system",
            "VERSION-ONE for {business_name}",
            None,
            "alice",
            now,
        )
        .await
        .unwrap();
    // Created, not published: the built-in prompt is still live.
    w.say("acme", "15550001111", "wamid.0", "Can you fix a flat tyre?")
        .await;
    wait_for_texts(&w.meta, 1).await;
    let v2 = store
        .create_prompt_version(t.id, "system", "VERSION-TWO", Some("shorter"), "bob", now)
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    let mut seen = Vec::new();
    for (i, publish) in [1, 2, 1].into_iter().enumerate() {
        store
            .publish_prompt_version(t.id, "system", publish, "alice", now)
            .await
            .unwrap();
        w.app().state.cache.invalidate(t.id).await;
        w.say(
            "acme",
            "15550001111",
            &format!("wamid.p{i}"),
            "Can you fix a flat tyre?",
        )
        .await;
        wait_for_texts(&w.meta, i + 2).await;
        let reqs = w.llm_requests().await;
        seen.push(
            reqs[i + 1].1["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let first = w.llm_requests().await[0].1["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first.starts_with("You are Robin"), "{first}");
    assert!(
        seen[0].starts_with("VERSION-ONE for Shop acme"),
        "{}",
        seen[0]
    );
    assert!(seen[1].starts_with("VERSION-TWO"), "{}", seen[1]);
    assert!(
        seen[2].starts_with("VERSION-ONE for Shop acme"),
        "{}",
        seen[2]
    );
    let pubs = store
        .list_prompt_publications(t.id, "system")
        .await
        .unwrap();
    assert_eq!(
        pubs.iter().map(|p| p.version).collect::<Vec<_>>(),
        [1, 2, 1],
        "newest first"
    );
    assert_eq!(pubs[0].published_by, "alice");
    // Another tenant's versions are not this one's.
    let b = w.tenant("bolt").await;
    assert!(
        store
            .list_prompt_versions(b.id, "system")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .publish_prompt_version(b.id, "system", 1, "mallory", now)
            .await,
        Err(parley::store::StoreError::NotFound(_))
    ));
}

async fn quiet_hours_defer_replies_until_morning_but_not_emergencies(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["quiet_hours"] = json!({"start": "22:00", "end": "07:30", "policy": "defer"});
    })
    .await
    else {
        return;
    };
    // 23:15 in Berlin (CET, UTC+1).
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 18, 22, 15, 0).unwrap());
    w.say("acme", "15550001111", "wamid.q1", "when are you open?")
        .await;
    let d = w.decisions("acme", 1).await;
    assert_eq!(d[0].reason, "quiet_hours_deferred");
    let detail = d[0].detail.as_ref().unwrap();
    assert_eq!(detail["answer_reason"], "faq_match");
    assert_eq!(
        detail["send_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 19, 6, 30, 0).unwrap()
    );
    // An emergency is not held back.
    w.say(
        "acme",
        "15550003333",
        "wamid.q2",
        "Emergency: I crashed and I'm injured",
    )
    .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+15550003333");
    assert_eq!(w.reasons("acme", 2).await[1], "escalated:emergency");
    // Morning: the deferred answer goes out.
    w.advance(chrono::Duration::hours(8) + chrono::Duration::minutes(20));
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[1].to.as_str(), sent[1].text.as_str()),
        ("+15550001111", "9-18 (acme)")
    );
}

async fn quiet_hours_reply_policy_answers_at_once(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["quiet_hours"] = json!({"start": "22:00", "end": "07:30", "policy": "reply"});
    })
    .await
    else {
        return;
    };
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 18, 23, 0, 0).unwrap());
    w.say("acme", "15550001111", "wamid.r1", "when are you open?")
        .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent[0].text, "9-18 (acme)");
    assert_eq!(w.reasons("acme", 1).await, ["faq_match"]);
}

async fn after_hours_notice_goes_once_per_night_and_answers_wait_for_morning(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["quiet_hours"] =
            json!({"start": "22:00", "end": "08:00", "policy": "after_hours_message"});
        b["settings"]["after_hours_message"] = json!("We're closed, back at 8!");
    })
    .await
    else {
        return;
    };
    // 01:30 in Berlin on the night the clocks go forward (2026-03-29, 02:00 → 03:00):
    // quiet until 08:00 CEST = 06:00 UTC.
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap());
    w.say("acme", "15550001111", "wamid.n1", "when are you open?")
        .await;
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "We're closed, back at 8!");
    let d = w.decisions("acme", 1).await;
    assert_eq!(d[0].reason, "after_hours_notice");
    assert_eq!(
        d[0].detail.as_ref().unwrap()["send_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 29, 6, 0, 0).unwrap()
    );
    // 04:00 CEST, same night: no second notice.
    w.advance(chrono::Duration::hours(1) + chrono::Duration::minutes(30));
    w.say("acme", "15550001111", "wamid.n2", "Do you deliver?")
        .await;
    assert_eq!(w.reasons("acme", 2).await[1], "quiet_hours_deferred");
    assert_eq!(texts_after_pause(&w.meta).await.len(), 1);
    // 08:01 CEST: both answers.
    w.advance(chrono::Duration::hours(4) + chrono::Duration::minutes(1));
    let sent = wait_for_texts(&w.meta, 3).await;
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "We're closed, back at 8!",
            "9-18 (acme)",
            "We deliver citywide (acme)"
        ]
    );
    // The next night, a new notice.
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 29, 21, 0, 0).unwrap());
    w.say("acme", "15550001111", "wamid.n3", "Do you deliver?")
        .await;
    let sent = wait_for_texts(&w.meta, 4).await;
    assert_eq!(sent[3].text, "We're closed, back at 8!");
}

async fn outside_the_24_hour_window_the_template_is_used_or_the_reply_is_recorded_unsendable(
    kind: Db,
) {
    let Some(w) = World::new(kind, |b| {
        if b["slug"] == "bolt" {
            b["settings"]
                .as_object_mut()
                .unwrap()
                .remove("window_template");
        }
    })
    .await
    else {
        return;
    };
    // Meta delivers, 25 hours late, a message the customer sent yesterday.
    let yesterday = w.clock.now_ts() - 25 * 3600;
    w.say_at(
        "acme",
        "15550001111",
        "wamid.w1",
        "when are you open?",
        yesterday,
    )
    .await;
    w.say_at(
        "bolt",
        "15550002222",
        "wamid.w2",
        "when are you open?",
        yesterday,
    )
    .await;
    let templates = wait_templates(&w.meta, 1).await;
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(
        templates[0],
        (
            "+15550001111".into(),
            "staff_alert".into(),
            "9-18 (acme)".into()
        )
    );
    for _ in 0..100 {
        if w
            .db
            .count("SELECT COUNT(*) FROM outbound_messages WHERE state = 'unsendable' AND error_message LIKE 'window_closed%'")
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM outbound_messages WHERE state = 'unsendable' AND error_message LIKE 'window_closed%'")
            .await,
        1
    );
    assert!(
        sent_texts(&w.meta).await.is_empty(),
        "no free-form text outside the window"
    );
}

async fn handoff_pauses_the_bot_until_released_or_idle(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["handoff_idle_minutes"] = json!(30);
    })
    .await
    else {
        return;
    };
    mount_llm(&w.llm, confident("unused")).mount(&w.llm).await;
    w.say(
        "acme",
        "15550001111",
        "wamid.h1",
        "I have a complaint about my repair",
    )
    .await;
    wait_for_texts(&w.meta, 1).await;
    assert_eq!(w.conversation_status("acme", "15550001111").await, "human");
    w.say("acme", "15550001111", "wamid.h2", "when are you open?")
        .await;
    assert_eq!(w.reasons("acme", 2).await[1], "human_handling");
    // An admin releases it: the bot answers again.
    let t = w.tenant("acme").await;
    assert!(
        w.app()
            .state
            .store
            .release_conversation(
                t.id,
                parley::domain::Channel::Whatsapp,
                "15550001111",
                "test",
                noon()
            )
            .await
            .unwrap()
    );
    w.say("acme", "15550001111", "wamid.h3", "when are you open?")
        .await;
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent[1].text, "9-18 (acme)");
    // Escalated again; after 30 idle minutes the bot takes over by itself.
    w.say("acme", "15550001111", "wamid.h4", "another complaint!")
        .await;
    wait_for_texts(&w.meta, 3).await;
    w.advance(chrono::Duration::minutes(31));
    w.say("acme", "15550001111", "wamid.h5", "Do you deliver?")
        .await;
    let sent = wait_for_texts(&w.meta, 4).await;
    assert_eq!(sent[3].text, "We deliver citywide (acme)");
    assert_eq!(w.conversation_status("acme", "15550001111").await, "bot");
    // A release of another tenant's conversation finds nothing.
    let b = w.tenant("bolt").await;
    assert!(
        !w.app()
            .state
            .store
            .release_conversation(
                b.id,
                parley::domain::Channel::Whatsapp,
                "15550001111",
                "test",
                noon()
            )
            .await
            .unwrap()
    );
}

fn echo_webhook(pnid: &str, to: &str, wamid: &str, text: &str, ts: i64) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "smb_message_echoes",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": pnid},
            "message_echoes": [{"from": "15550000001", "to": to, "id": wamid, "timestamp": ts.to_string(),
                "type": "text", "text": {"body": text}}]}}]}]})
    .to_string()
}

async fn a_delayed_reply_survives_a_restart_and_a_human_reply_cancels_one(kind: Db) {
    let Some(mut w) = World::new(kind, |b| {
        b["settings"]["response_delay_seconds"] = json!(120);
    })
    .await
    else {
        return;
    };
    w.say("acme", "15550001111", "wamid.d1", "when are you open?")
        .await;
    w.decisions("acme", 1).await;
    assert!(
        texts_after_pause(&w.meta).await.is_empty(),
        "not before the delay"
    );
    w.restart().await;
    w.advance(chrono::Duration::seconds(121));
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1, "sent once after the restart");
    assert_eq!(sent[0].text, "9-18 (acme)");

    // A second question; the owner answers it from the WhatsApp app first.
    w.say("acme", "15550001111", "wamid.d2", "Do you deliver?")
        .await;
    w.decisions("acme", 2).await;
    let ts = w.clock.now_ts();
    w.post_signed(
        "acme",
        &echo_webhook(A, "15550001111", "wamid.ECHO1", "Yes, I'll drop it by.", ts),
    )
    .await;
    assert_eq!(w.conversation_status("acme", "15550001111").await, "human");
    w.advance(chrono::Duration::seconds(121));
    assert_eq!(
        texts_after_pause(&w.meta).await.len(),
        1,
        "the bot's reply was cancelled"
    );
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM outbound_messages WHERE state = 'cancelled'")
            .await,
        1
    );
    // The echo is logged as the business's message, once even if Meta repeats it.
    w.post_signed(
        "acme",
        &echo_webhook(A, "15550001111", "wamid.ECHO1", "Yes, I'll drop it by.", ts),
    )
    .await;
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM outbound_messages WHERE purpose = 'human'")
            .await,
        1
    );
}

async fn a_burst_of_messages_is_answered_once(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["settings"]["burst_window_seconds"] = json!(5);
    })
    .await
    else {
        return;
    };
    mount_llm(
        &w.llm,
        confident("Yes, 30 EUR a day, and helmets are included."),
    )
    .mount(&w.llm)
    .await;
    w.say("acme", "15550001111", "wamid.b1", "hi").await;
    w.advance(chrono::Duration::seconds(2));
    w.say("acme", "15550001111", "wamid.b2", "do you rent tandems?")
        .await;
    w.advance(chrono::Duration::seconds(2));
    w.say("acme", "15550001111", "wamid.b3", "with helmets?")
        .await;
    assert!(texts_after_pause(&w.meta).await.is_empty(), "still typing");
    w.advance(chrono::Duration::seconds(6));
    let sent = wait_for_texts(&w.meta, 1).await;
    assert_eq!(sent.len(), 1);
    let reqs = w.llm_requests().await;
    assert_eq!(reqs.len(), 1);
    let last = reqs[0].1["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], "hi\ndo you rent tandems?\nwith helmets?");
    assert_eq!(w.reasons("acme", 1).await, ["llm_answer"]);
    assert_eq!(
        w.db.count(
            "SELECT COUNT(*) FROM inbound_messages WHERE state = 'done' AND merged_into IS NOT NULL"
        )
        .await,
        2
    );
    // One receipt for the burst, on its newest message: Meta marks the earlier ones read
    // with it, so the customer sees blue ticks on all three.
    assert_eq!(wait_for_read_receipts(&w.meta, 1).await, ["wamid.b3"]);
}

on_both_backends!(
    a_confident_llm_answer_is_sent_with_only_that_tenants_key_model_prompt_and_faqs,
    a_faq_match_needs_no_llm_call,
    an_unsure_llm_answer_escalates_notifies_staff_and_the_bot_stays_silent,
    keywords_escalate_at_once_without_asking_the_llm,
    llm_errors_timeouts_and_garbage_fall_back_and_the_conversation_keeps_working,
    a_spent_monthly_budget_means_no_llm_call,
    publishing_a_prompt_version_changes_the_system_prompt_and_rollback_restores_it,
    quiet_hours_defer_replies_until_morning_but_not_emergencies,
    quiet_hours_reply_policy_answers_at_once,
    after_hours_notice_goes_once_per_night_and_answers_wait_for_morning,
    outside_the_24_hour_window_the_template_is_used_or_the_reply_is_recorded_unsendable,
    handoff_pauses_the_bot_until_released_or_idle,
    a_delayed_reply_survives_a_restart_and_a_human_reply_cancels_one,
    a_burst_of_messages_is_answered_once,
);

async fn no_llm_key_or_token_reaches_the_logs_through_answers_errors_and_escalations(kind: Db) {
    common::logs::captured();
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    mount_llm(&w.llm, ResponseTemplate::new(401).set_body_json(json!({"error": {
        "message": "Incorrect API key provided: sk-acme-secret-key-000111", "type": "invalid_request_error"}})))
        .mount(&w.llm)
        .await;
    w.say(
        "acme",
        "15550001111",
        "wamid.s1",
        "Can you fix a flat tyre?",
    )
    .await;
    wait_for_texts(&w.meta, 1).await;
    w.llm.reset().await;
    mount_llm(&w.llm, confident("Sure.")).mount(&w.llm).await;
    w.say("acme", "15550001111", "wamid.s2", "And a puncture?")
        .await;
    w.say("acme", "15550002222", "wamid.s3", "I want a refund")
        .await;
    wait_for_texts(&w.meta, 3).await;
    assert_eq!(w.decisions("acme", 3).await.len(), 3);
    let text = common::logs::text();
    assert!(text.contains("llm call"), "debug logs were captured");
    for secret in [
        "sk-acme-secret-key-000111",
        "EAAG-acme-token-0001",
        "appsecret-acme-0123456789",
        "verify-acme-0123456789",
    ] {
        assert!(!text.contains(secret), "{secret} appears in the logs");
    }
}

async fn escalation_emails_go_through_the_smtp_relay_or_are_recorded_failed_without_one(kind: Db) {
    let relay = common::smtp::FakeSmtp::start().await;
    let with_email = |b: &mut Value| {
        b["settings"]["escalation"]["email"] =
            json!(format!("owner@{}.test", b["slug"].as_str().unwrap()));
    };
    let Some(w) = World::with_smtp(kind, Some(relay.url()), with_email).await else {
        return;
    };
    w.say(
        "acme",
        "15550001111",
        "wamid.m1",
        "This is a complaint about the repair",
    )
    .await;
    wait_for_texts(&w.meta, 1).await;
    let mut mails = Vec::new();
    for _ in 0..200 {
        mails = relay.mails();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["<owner@acme.test>"]);
    assert!(
        mails[0]
            .data
            .contains("Subject: [Shop acme] A customer needs a person (complaint)"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[0]
            .data
            .contains("This is a complaint about the repair"),
        "{}",
        mails[0].data
    );
    let t = w.tenant("acme").await;
    let mut email = None;
    for _ in 0..100 {
        let notes = w
            .app()
            .state
            .store
            .list_notifications(t.id, 10)
            .await
            .unwrap();
        email = notes.into_iter().find(|n| n.via == "email");
        if email.as_ref().is_some_and(|n| n.state == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let email = email.unwrap();
    assert_eq!(
        (email.state.as_str(), email.target.as_str()),
        ("sent", "owner@acme.test")
    );

    // Without a relay the email is recorded as failed, with the reason; WhatsApp still goes.
    let Some(w) = World::new(kind, with_email).await else {
        return;
    };
    w.say(
        "acme",
        "15550001111",
        "wamid.m2",
        "This is a complaint about the repair",
    )
    .await;
    wait_for_texts(&w.meta, 1).await;
    let t = w.tenant("acme").await;
    w.decisions("acme", 1).await;
    let notes = w
        .app()
        .state
        .store
        .list_notifications(t.id, 10)
        .await
        .unwrap();
    let email = notes.iter().find(|n| n.via == "email").unwrap();
    assert_eq!(email.state, "failed");
    assert!(email.detail.as_deref().unwrap().contains("PARLEY_SMTP_URL"));
    assert!(notes.iter().any(|n| n.via == "whatsapp"));
}

async fn the_llm_sees_as_much_of_the_conversation_as_the_template_allows(kind: Db) {
    let Some(w) = World::new(kind, |b| {
        b["templates"][0]["context_messages"] = json!(2);
    })
    .await
    else {
        return;
    };
    mount_llm(&w.llm, confident("Answer.")).mount(&w.llm).await;
    for (i, q) in ["First question?", "Second question?", "Third question?"]
        .iter()
        .enumerate()
    {
        w.say("acme", "15550001111", &format!("wamid.c{i}"), q)
            .await;
        wait_for_texts(&w.meta, i + 1).await;
    }
    let reqs = w.llm_requests().await;
    assert_eq!(reqs.len(), 3);
    let roles = |i: usize| -> Vec<(String, String)> {
        reqs[i].1["messages"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_string(),
                    m["content"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        roles(0),
        [("user".to_string(), "First question?".to_string())]
    );
    // Two earlier messages, then the one being answered.
    assert_eq!(
        roles(2),
        [
            ("user".to_string(), "Second question?".to_string()),
            ("assistant".to_string(), "Answer.".to_string()),
            ("user".to_string(), "Third question?".to_string()),
        ]
    );
}

async fn staff_take_over_reply_through_the_tenants_number_and_release_through_the_api(kind: Db) {
    let Some(w) = World::new(kind, |_| {}).await else {
        return;
    };
    let t = w.tenant("acme").await;
    let (staff, _) = parley::admin::keys::issue(
        w.app().state.store.as_ref(),
        t.id,
        parley::domain::access::Role::Staff,
        "desk",
        "test",
        None,
        Utc::now(),
    )
    .await
    .unwrap();
    let staff = secrecy::ExposeSecret::expose_secret(&staff).to_string();
    let api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = reqwest::Client::new()
            .request(method, w.app().url(path))
            .bearer_auth(&staff);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    w.say("acme", "15550001111", "wamid.t1", "when are you open?")
        .await;
    wait_for_texts(&w.meta, 1).await;
    let r = api(
        reqwest::Method::POST,
        "/api/v1/conversations/15550001111/takeover",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    w.say("acme", "15550001111", "wamid.t2", "Do you deliver?")
        .await;
    assert_eq!(w.reasons("acme", 2).await[1], "human_handling");
    let r = api(
        reqwest::Method::POST,
        "/api/v1/conversations/15550001111/reply",
        Some(json!({"text": "Hi, Ana from the shop here: yes, tomorrow."})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let sent = wait_for_texts(&w.meta, 2).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to, "+15550001111");
    assert_eq!(sent[1].text, "Hi, Ana from the shop here: yes, tomorrow.");
    assert_eq!(sent[1].authorization, "Bearer EAAG-acme-token-0001");
    let log: Value = api(
        reqwest::Method::GET,
        "/api/v1/conversations/15550001111/messages",
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let kinds: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "reply", "text", "human"]);
    let listed: Value = api(
        reqwest::Method::GET,
        "/api/v1/conversations?status=human",
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let later = (noon() + chrono::Duration::hours(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let none: Value = api(
        reqwest::Method::GET,
        &format!("/api/v1/conversations?since={later}"),
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "{none}");
    let decisions: Value = api(
        reqwest::Method::GET,
        "/api/v1/conversations/15550001111/decisions",
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(decisions["items"][1]["reason"], "human_handling");
    // Another tenant's conversation is not found.
    let r = api(
        reqwest::Method::POST,
        "/api/v1/conversations/15550002222/takeover",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = api(
        reqwest::Method::POST,
        "/api/v1/conversations/15550001111/release",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    w.say("acme", "15550001111", "wamid.t3", "Do you deliver?")
        .await;
    let sent = wait_for_texts(&w.meta, 3).await;
    assert_eq!(sent[2].text, "We deliver citywide (acme)");
    // Each step is in the audit log, under the staff key.
    let audit = w
        .app()
        .state
        .store
        .list_audit(t.id, None, 50)
        .await
        .unwrap();
    let steps: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .filter(|e| e.action.starts_with("conversation."))
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        [
            "conversation.takeover",
            "conversation.reply",
            "conversation.release"
        ]
    );
    assert!(steps.iter().all(|s| s.1.starts_with("key:")), "{steps:?}");
}

on_both_backends!(
    staff_take_over_reply_through_the_tenants_number_and_release_through_the_api,
    the_llm_sees_as_much_of_the_conversation_as_the_template_allows,
    no_llm_key_or_token_reaches_the_logs_through_answers_errors_and_escalations,
    escalation_emails_go_through_the_smtp_relay_or_are_recorded_failed_without_one,
);
