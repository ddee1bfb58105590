//! Tests of the WhatsApp wire module against Meta-shaped fixtures (exact bytes from
//! `tests/fixtures/`, copied from the shared reference), bench-shaped BSUID payloads,
//! hand-built edge cases and a mutation fuzz loop.

use super::*;
use serde_json::json;

/// The app secret the fixture signatures were computed with (SIGNATURES.md; fake).
const SECRET: &[u8] = b"test_app_secret_0123456789abcdef";
const ACCOUNT_A: &str = "100000000000001";
const ACCOUNT_B: &str = "100000000000002";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
        .as_slice()
    };
}

/// (file, bytes, X-Hub-Signature-256) for every inbound fixture, from SIGNATURES.md.
const SIGNED: [(&str, &[u8], usize, &str); 11] = [
    (
        "meta_text.json",
        fixture!("meta_text.json"),
        926,
        "sha256=45f0860a8e88752081a7e4fb967d21d8f48146160e25b12c687262d83114437b",
    ),
    (
        "meta_interactive_button.json",
        fixture!("meta_interactive_button.json"),
        1227,
        "sha256=785f90b53bd99998b97a85907989be5371b0a8e2f93065faa53faab0ed6ece90",
    ),
    (
        "meta_interactive_list.json",
        fixture!("meta_interactive_list.json"),
        1286,
        "sha256=0f55f684a2d21242047cd7af58b869f0343b7bf1450e9c389e1757c986d3d0f4",
    ),
    (
        "meta_button_quick_reply.json",
        fixture!("meta_button_quick_reply.json"),
        1123,
        "sha256=c47a3d488bfea6ed6512730b035f5d5ce929148f7914205b39fae87ee414d827",
    ),
    (
        "meta_image.json",
        fixture!("meta_image.json"),
        1203,
        "sha256=f55e27637abdbbab709611be4651fd813ad717377e8b350f39bfea5abe051515",
    ),
    (
        "meta_location.json",
        fixture!("meta_location.json"),
        1124,
        "sha256=8c2a73c3ef7c679c9a1ea6f5743e48080ca759014c6b3ce0f08567caa1677b6e",
    ),
    (
        "meta_reaction.json",
        fixture!("meta_reaction.json"),
        997,
        "sha256=c51b88c6ccdfc49d2099554f36912e61b6551160525280490ed544f54f80a2c1",
    ),
    (
        "meta_unsupported.json",
        fixture!("meta_unsupported.json"),
        1287,
        "sha256=01483a280f735f7d05e19314b1ed84fbc007ca3148b9aa92b18b718acb3b7512",
    ),
    (
        "meta_status_delivered.json",
        fixture!("meta_status_delivered.json"),
        957,
        "sha256=66537e4d00b4a9599b22df376ad55c6c057526facb22960e007e68ddece70502",
    ),
    (
        "meta_status_failed.json",
        fixture!("meta_status_failed.json"),
        1192,
        "sha256=92d0e6295e71c3d74af19224abe18604ceb06b56d2c9e347f05eeb50bd9191e0",
    ),
    (
        "meta_multi_message_batch.json",
        fixture!("meta_multi_message_batch.json"),
        3207,
        "sha256=e60c97500abebe84ab6c3fe839f7e4f7c0f80ff57865f761b44d06f03f9756ea",
    ),
];

fn parse_ok(body: &[u8]) -> WebhookBatch {
    parse_webhook(body).expect("webhook parses")
}

/// The single message of a one-message fixture, after checking nothing else came.
fn only_message(body: &[u8]) -> InboundMessage {
    let mut b = parse_ok(body);
    assert_eq!(b.messages.len(), 1, "one message");
    assert!(b.statuses.is_empty() && b.errors.is_empty() && b.echoes.is_empty());
    b.messages.remove(0)
}

/// A webhook with one `messages` change for tenant A holding `value_extra` (JSON
/// members without the surrounding braces).
fn webhook(value_extra: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"200000000000001","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000001","phone_number_id":"{ACCOUNT_A}"}}{value_extra}}}}}]}}]}}"#
    )
}

/// The body the bench load generator sends (tools/loadgen/src/fixtures.rs), byte for
/// byte in layout: `field` after `value`, BSUID fields only when `bsuid` is given.
fn bench_body(sender: &str, bsuid: Option<&str>, msg_id: &str) -> String {
    let mut s = String::from(
        r#"{"object":"whatsapp_business_account","entry":[{"id":"200000000000001","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000001","phone_number_id":"100000000000001"},"contacts":[{"profile":{"name":"Bench User"},"wa_id":""#,
    );
    s.push_str(sender);
    if let Some(u) = bsuid {
        s.push_str(r#"","user_id":""#);
        s.push_str(u);
        s.push_str(r#"","country_code":"US"#);
    }
    s.push_str(r#""}],"messages":[{"from":""#);
    s.push_str(sender);
    if let Some(u) = bsuid {
        s.push_str(r#"","from_user_id":""#);
        s.push_str(u);
    }
    s.push_str(r#"","id":""#);
    s.push_str(msg_id);
    s.push_str(r#"","timestamp":"1700000000","type":"text","text":{"body":"What is your return policy?"}}]},"field":"messages"}]}]}"#);
    s
}

// ---------------------------------------------------------------------------------
// Signatures

#[test]
fn every_inbound_fixture_verifies_against_its_published_signature() {
    for (name, body, len, sig) in SIGNED {
        assert_eq!(
            body.len(),
            len,
            "{name} must be byte-identical to the reference copy"
        );
        assert!(verify_signature(SECRET, body, Some(sig)), "{name}");
        assert_eq!(sign(SECRET, body), sig, "{name}");
    }
}

#[test]
fn re_serializing_a_fixture_breaks_its_signature() {
    let (_, body, _, sig) = SIGNED[0];
    let v: Value = serde_json::from_slice(body).unwrap();
    let compact = serde_json::to_vec(&v).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert!(!verify_signature(SECRET, &compact, Some(sig)));
    assert!(!verify_signature(SECRET, &pretty, Some(sig)));
    // The escapes are the trap: serde_json writes "é" as raw UTF-8.
    assert!(!String::from_utf8(compact).unwrap().contains("\\u00e9"));
}

#[test]
fn sign_matches_a_known_hmac_sha256_vector() {
    assert_eq!(
        sign(b"key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn a_wrong_secret_or_a_changed_body_fails_verification() {
    let (_, body, _, sig) = SIGNED[0];
    assert!(!verify_signature(
        b"test_app_secret_0123456789abcdeF",
        body,
        Some(sig)
    ));
    assert!(!verify_signature(b"", body, Some(sig)));
    let mut changed = body.to_vec();
    changed[100] ^= 1;
    assert!(!verify_signature(SECRET, &changed, Some(sig)));
}

#[test]
fn missing_or_garbled_signature_headers_fail_verification() {
    let (_, body, _, sig) = SIGNED[0];
    let hex_part = sig.strip_prefix("sha256=").unwrap();
    let bad = [
        String::new(),
        hex_part.to_owned(),                     // no "sha256="
        format!("sha1={hex_part}"),              // other algorithm
        format!("SHA256={hex_part}"),            // prefix is case-sensitive
        format!("sha256={}", &hex_part[..63]),   // truncated
        format!("sha256={}", &hex_part[..62]),   // truncated on a byte boundary
        format!("sha256={hex_part}00"),          // too long
        format!("sha256={}zz", &hex_part[..62]), // non-hex
        format!("sha256= {hex_part}"),           // whitespace
        format!("sha256={hex_part}\n"),          // trailing newline
        "sha256=".to_owned(),                    // empty tag
    ];
    assert!(!verify_signature(SECRET, body, None));
    for h in &bad {
        assert!(!verify_signature(SECRET, body, Some(h)), "{h:?}");
    }
    // Upper-case hex is the same tag.
    let upper = format!("sha256={}", hex_part.to_ascii_uppercase());
    assert!(verify_signature(SECRET, body, Some(&upper)));
}

// ---------------------------------------------------------------------------------
// Inbound fixtures

#[test]
fn a_text_message_decodes_escaped_accents_and_keeps_its_raw_json() {
    let m = only_message(fixture!("meta_text.json"));
    assert_eq!(
        m.provider_message_id,
        "wamid.RkFLRS5JTi4wMDAxLjE1NTUxMjMwMDAx"
    );
    assert_eq!(m.provider_account_id, ACCOUNT_A);
    assert_eq!(m.customer_id, "15551230001");
    assert_eq!(m.customer_phone.as_deref(), Some("15551230001"));
    assert_eq!(m.customer_user_id, None);
    assert_eq!(m.customer_name.as_deref(), Some("Ana Pérez"));
    assert_eq!(m.timestamp, 1_767_225_600);
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(
        m.text.as_deref(),
        Some("Hola, ¿abren el sábado? What are your opening hours?")
    );
    assert_eq!(
        (m.reply_id, m.media, m.context_message_id),
        (None, None, None)
    );
    // A plain text message's JSON says nothing its parts do not: not kept.
    assert_eq!(m.raw, Value::Null);
}

#[test]
fn an_interactive_button_reply_gives_its_title_id_and_context() {
    let m = only_message(fixture!("meta_interactive_button.json"));
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(
        m.provider_message_id,
        "wamid.RkFLRS5JTi4wMDAyLjE1NTUxMjMwMDAy"
    );
    assert_eq!(m.customer_id, "15551230002");
    assert_eq!(m.customer_name.as_deref(), Some("Ben Tester"));
    assert_eq!(m.text.as_deref(), Some("Opening hours"));
    assert_eq!(m.reply_id.as_deref(), Some("faq:opening_hours"));
    assert_eq!(
        m.context_message_id.as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwMi4xNTU1MTIzMDAwMg==")
    );
    assert_eq!(m.timestamp, 1_767_225_660);
}

#[test]
fn an_interactive_list_reply_gives_its_row_title_and_id() {
    let m = only_message(fixture!("meta_interactive_list.json"));
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(m.customer_name.as_deref(), Some("Carla Demo"));
    assert_eq!(m.text.as_deref(), Some("Returns & refunds"));
    assert_eq!(m.reply_id.as_deref(), Some("topic:returns"));
    assert_eq!(
        m.context_message_id.as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwNC4xNTU1MTIzMDAwMw==")
    );
}

#[test]
fn a_template_quick_reply_tap_gives_button_text_and_payload() {
    let m = only_message(fixture!("meta_button_quick_reply.json"));
    assert_eq!(m.kind, MessageKind::Button);
    assert_eq!(
        m.provider_message_id,
        "wamid.RkFLRS5JTi4wMDA4LjE1NTUxMjMwMDAx"
    );
    assert_eq!(m.text.as_deref(), Some("Talk to a human"));
    assert_eq!(m.reply_id.as_deref(), Some("Talk to a human"));
    assert_eq!(
        m.context_message_id.as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwMS4xNTU1MTIzMDAwMQ==")
    );
}

#[test]
fn an_image_gives_its_media_reference_and_caption_as_text() {
    let m = only_message(fixture!("meta_image.json"));
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.text.as_deref(), Some("Is this the right part?"));
    assert_eq!(
        m.media,
        Some(Media {
            id: "900000000000001".into(),
            mime_type: Some("image/jpeg".into()),
            sha256: Some("q1w2e3r4t5y6u7i8o9p0FAKEFAKEFAKEFAKEFAKEFAK=".into()),
            caption: Some("Is this the right part?".into()),
            filename: None,
        })
    );
    assert!(
        m.raw["image"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://lookaside.")
    );
}

#[test]
fn a_location_gives_name_and_address_as_text() {
    let m = only_message(fixture!("meta_location.json"));
    assert_eq!(m.kind, MessageKind::Location);
    assert_eq!(m.customer_name.as_deref(), Some("Dev Null"));
    assert_eq!(
        m.text.as_deref(),
        Some("Example Store Centro, 1 Example Street, Test City")
    );
    assert_eq!(m.media, None);
    assert_eq!(m.raw["location"]["latitude"], 40.4168);
}

#[test]
fn a_reaction_points_at_the_reacted_message_and_decodes_the_surrogate_pair_emoji() {
    let m = only_message(fixture!("meta_reaction.json"));
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(
        m.context_message_id.as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwMS4xNTU1MTIzMDAwMQ==")
    );
    assert_eq!(m.text, None);
    assert_eq!(m.raw["reaction"]["emoji"], "👍");
}

#[test]
fn an_unsupported_message_is_kept_with_its_errors_in_raw() {
    let m = only_message(fixture!("meta_unsupported.json"));
    assert_eq!(m.kind, MessageKind::Unsupported);
    assert_eq!(m.customer_name.as_deref(), Some("Eve Example"));
    assert_eq!(m.text, None);
    assert_eq!(m.raw["errors"][0]["code"], 131051);
    assert_eq!(m.raw["unsupported"]["type"], "poll_creation");
}

#[test]
fn a_delivered_status_maps_every_field() {
    let b = parse_ok(fixture!("meta_status_delivered.json"));
    assert!(b.messages.is_empty() && b.errors.is_empty() && b.echoes.is_empty());
    assert_eq!(
        b.statuses,
        vec![StatusUpdate {
            provider_message_id: "wamid.RkFLRS5PVVQuMDAwMS4xNTU1MTIzMDAwMQ==".into(),
            provider_account_id: ACCOUNT_A.into(),
            status: "delivered".into(),
            timestamp: 1_767_226_020,
            recipient_id: Some("15551230001".into()),
            errors: vec![],
            callback_data: Some("tenant-a:out-0001".into()),
        }]
    );
}

#[test]
fn a_failed_status_carries_error_131026() {
    let b = parse_ok(fixture!("meta_status_failed.json"));
    assert_eq!(b.statuses.len(), 1);
    let s = &b.statuses[0];
    assert_eq!(s.status, "failed");
    assert_eq!(
        DeliveryStatus::parse(&s.status),
        Some(DeliveryStatus::Failed)
    );
    assert_eq!(s.recipient_id.as_deref(), Some("15551230002"));
    assert_eq!(s.callback_data, None);
    assert_eq!(
        s.errors,
        vec![ProviderError {
            code: 131026,
            title: Some("Message undeliverable".into()),
            details: Some(
                "Fixture: recipient cannot receive this message (not on WhatsApp, old client, or terms not accepted)."
                    .into()
            ),
        }]
    );
}

#[test]
fn the_multi_tenant_batch_keeps_order_and_accounts() {
    let b = parse_ok(fixture!("meta_multi_message_batch.json"));
    let got: Vec<_> = b
        .messages
        .iter()
        .map(|m| {
            (
                m.provider_message_id.as_str(),
                m.provider_account_id.as_str(),
                m.customer_id.as_str(),
                m.customer_name.as_deref(),
                m.text.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "wamid.RkFLRS5JTi4wMDEwLjE1NTUxMjMwMDAx",
                ACCOUNT_A,
                "15551230001",
                Some("Ana Pérez"),
                Some("First question: do you deliver?")
            ),
            (
                "wamid.RkFLRS5JTi4wMDExLjE1NTUxMjMwMDAy",
                ACCOUNT_A,
                "15551230002",
                Some("Ben Tester"),
                Some("Price list please")
            ),
            (
                "wamid.RkFLRS5JTi4wMDA3LjE1NTUxMjMwMDA2",
                ACCOUNT_B,
                "15551230006",
                Some("Fay Sample"),
                Some("Tenant B: is my order shipped?")
            ),
            (
                "wamid.RkFLRS5JTi4wMDEyLjE1NTUxMjMwMDA2",
                ACCOUNT_B,
                "15551230006",
                Some("Fay Sample"),
                Some("Order status")
            ),
        ]
    );
    assert_eq!(b.messages[3].kind, MessageKind::Interactive);
    assert_eq!(b.messages[3].reply_id.as_deref(), Some("order:status"));
    assert_eq!(
        b.messages[3].context_message_id.as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwNS4xNTU1MTIzMDAwNg==")
    );
    assert_eq!(b.statuses.len(), 1);
    assert_eq!(b.statuses[0].provider_account_id, ACCOUNT_A);
    assert_eq!(b.statuses[0].status, "read");
    assert_eq!(b.statuses[0].timestamp, 1_767_226_202);
    assert_eq!(b.statuses[0].recipient_id.as_deref(), Some("15551230001"));
    assert!(b.errors.is_empty() && b.echoes.is_empty());
}

// ---------------------------------------------------------------------------------
// BSUID

#[test]
fn a_bench_payload_with_bsuid_keys_the_customer_by_bsuid_and_keeps_the_phone() {
    let body = bench_body("990000000007", Some("US.8000000000000007"), "wamid.X1");
    let m = only_message(body.as_bytes());
    assert_eq!(m.customer_id, "US.8000000000000007");
    assert_eq!(m.customer_user_id.as_deref(), Some("US.8000000000000007"));
    assert_eq!(m.customer_phone.as_deref(), Some("990000000007"));
    assert_eq!(m.customer_name.as_deref(), Some("Bench User"));
    assert_eq!(m.provider_account_id, ACCOUNT_A);
    assert_eq!(m.timestamp, 1_700_000_000);
    assert_eq!(m.text.as_deref(), Some("What is your return policy?"));
}

#[test]
fn a_bench_payload_without_bsuid_keys_the_customer_by_phone() {
    let body = bench_body("990000000007", None, "wamid.X2");
    let m = only_message(body.as_bytes());
    assert_eq!(m.customer_id, "990000000007");
    assert_eq!(m.customer_user_id, None);
    assert_eq!(m.customer_phone.as_deref(), Some("990000000007"));
}

#[test]
fn a_bsuid_only_message_without_phone_still_parses() {
    let body = webhook(
        r#","contacts":[{"profile":{"name":"Zoe","username":"@zoe"},"user_id":"US.13491208655302741918","country_code":"US"}],
        "messages":[{"from_user_id":"US.13491208655302741918","id":"wamid.B1","timestamp":"1767225600","type":"text","text":{"body":"hi"}}]"#,
    );
    let m = only_message(body.as_bytes());
    assert_eq!(m.customer_id, "US.13491208655302741918");
    assert_eq!(
        m.customer_user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(m.customer_phone, None);
    assert_eq!(m.customer_name.as_deref(), Some("Zoe"));
}

#[test]
fn a_bsuid_sent_only_on_the_contact_is_still_used() {
    let body = webhook(
        r#","contacts":[{"profile":{"name":"Ann"},"wa_id":"15551230001","user_id":"US.1"},{"profile":{"name":"Bob"},"wa_id":"15551230002","user_id":"US.2"}],
        "messages":[{"from":"15551230002","id":"wamid.C1","timestamp":"1","type":"text","text":{"body":"x"}}]"#,
    );
    let m = only_message(body.as_bytes());
    assert_eq!(m.customer_id, "US.2");
    assert_eq!(m.customer_phone.as_deref(), Some("15551230002"));
    assert_eq!(m.customer_name.as_deref(), Some("Bob"));
}

#[test]
fn a_single_contact_with_a_different_number_is_not_borrowed() {
    let body = webhook(
        r#","contacts":[{"profile":{"name":"Someone Else"},"wa_id":"15551239999","user_id":"US.9"}],
        "messages":[{"from":"15551230001","id":"wamid.C2","timestamp":"1","type":"text","text":{"body":"x"}}]"#,
    );
    let m = only_message(body.as_bytes());
    assert_eq!(m.customer_id, "15551230001");
    assert_eq!((m.customer_user_id, m.customer_name), (None, None));
}

#[test]
fn a_status_prefers_the_recipient_bsuid() {
    let body = webhook(
        r#","statuses":[{"id":"wamid.S1","status":"sent","timestamp":"5","recipient_id":"15551230001","recipient_user_id":"US.1"},
                        {"id":"wamid.S2","status":"played","timestamp":"6","recipient_user_id":"US.2"}]"#,
    );
    let b = parse_ok(body.as_bytes());
    assert_eq!(b.statuses.len(), 2);
    assert_eq!(b.statuses[0].recipient_id.as_deref(), Some("US.1"));
    assert_eq!(b.statuses[1].recipient_id.as_deref(), Some("US.2"));
    assert_eq!(
        DeliveryStatus::parse(&b.statuses[1].status),
        Some(DeliveryStatus::Read)
    );
}

// ---------------------------------------------------------------------------------
// Tolerance and envelope errors

#[test]
fn an_unknown_message_type_is_kept_as_other_with_its_raw_json() {
    let body = webhook(
        r#","messages":[{"from":"15551230001","id":"wamid.P1","timestamp":"7","type":"poll_vote","poll_vote":{"option":"B","weird":[1,{"x":null}]}}]"#,
    );
    let m = only_message(body.as_bytes());
    assert_eq!(m.kind, MessageKind::Other("poll_vote".into()));
    assert_eq!(m.text, None);
    assert_eq!(m.raw["poll_vote"]["option"], "B");
    assert_eq!(m.raw["poll_vote"]["weird"][1]["x"], Value::Null);
}

#[test]
fn unknown_keys_at_every_level_are_ignored() {
    let body = br#"{"object":"whatsapp_business_account","new_top":{"a":[1,2]},"entry":[{"id":"1","time":123,"x":[],
      "changes":[{"field":"messages","extra":true,"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"100000000000001","more":1},
      "future_list":[{"id":"no"}],
      "contacts":[{"wa_id":"15551230001","profile":{"name":"Ana","username":"@ana"},"identity_key_hash":"h"}],
      "messages":[{"from":"15551230001","id":"wamid.U1","timestamp":"9","type":"text","text":{"body":"hey","new":1},"referral":{"source_type":"ad"}}]}}]}]}"#;
    let m = only_message(body);
    assert_eq!(
        (m.provider_message_id.as_str(), m.text.as_deref()),
        ("wamid.U1", Some("hey"))
    );
    assert_eq!(m.raw["referral"]["source_type"], "ad");
}

#[test]
fn an_empty_entry_list_is_an_empty_batch() {
    let b = parse_ok(br#"{"object":"whatsapp_business_account","entry":[]}"#);
    assert_eq!(b, WebhookBatch::default());
}

#[test]
fn non_json_and_non_whatsapp_bodies_are_parse_errors() {
    assert!(matches!(
        parse_webhook(b""),
        Err(ParseError::InvalidJson { .. })
    ));
    assert!(matches!(
        parse_webhook(b"hub.mode=subscribe"),
        Err(ParseError::InvalidJson { .. })
    ));
    assert!(matches!(
        parse_webhook(b"{\"object\":"),
        Err(ParseError::InvalidJson { .. })
    ));
    assert!(matches!(
        parse_webhook(b"{} trailing"),
        Err(ParseError::InvalidJson { .. })
    ));
    assert_eq!(parse_webhook(b"[]"), Err(ParseError::NotAnObject));
    assert_eq!(
        parse_webhook(br#"[{"object":"whatsapp_business_account","entry":[]}]"#),
        Err(ParseError::NotAnObject)
    );
    assert_eq!(parse_webhook(b"\"text\""), Err(ParseError::NotAnObject));
    assert_eq!(
        parse_webhook(br#"{"object":"page","entry":[]}"#),
        Err(ParseError::WrongObject)
    );
    assert_eq!(
        parse_webhook(br#"{"entry":[]}"#),
        Err(ParseError::WrongObject)
    );
    assert_eq!(
        parse_webhook(br#"{"object":"whatsapp_business_account"}"#),
        Err(ParseError::MissingEntry)
    );
    assert_eq!(
        parse_webhook(br#"{"object":"whatsapp_business_account","entry":{}}"#),
        Err(ParseError::MissingEntry)
    );
}

#[test]
fn parse_errors_never_echo_the_body_text() {
    let secret_text = "my card number is 4111";
    for body in [
        format!(r#"{{"object":"whatsapp_business_account","entry":[{{"x":"{secret_text}" oops"#),
        format!(r#"{{"object":"{secret_text}","entry":[]}}"#),
        format!(r#"["{secret_text}"]"#),
    ] {
        let e = parse_webhook(body.as_bytes()).unwrap_err();
        assert!(!e.to_string().contains("4111"), "{e}");
        assert!(!format!("{e:?}").contains("4111"), "{e:?}");
    }
}

#[test]
fn a_statuses_only_change_yields_statuses_and_no_messages() {
    let body = webhook(
        r#","statuses":[{"id":"wamid.S9","status":"sent","timestamp":"1767226000","recipient_id":"15551230001","biz_opaque_callback_data":"out-9"}]"#,
    );
    let b = parse_ok(body.as_bytes());
    assert!(b.messages.is_empty());
    assert_eq!(b.statuses.len(), 1);
    assert_eq!(b.statuses[0].callback_data.as_deref(), Some("out-9"));
    assert_eq!(b.statuses[0].timestamp, 1_767_226_000);
}

#[test]
fn malformed_items_are_skipped_or_kept_as_best_as_possible() {
    let body = webhook(
        r#","contacts":"not a list","messages":[
            {"from":"15551230001","timestamp":"1","type":"text","text":{"body":"no id: skipped"}},
            {"id":"wamid.M2","timestamp":"1","type":"text","text":{"body":"no sender: skipped"}},
            "not an object",
            42,
            {"from":15551230001,"id":12345,"timestamp":1767225600,"type":"text","text":{"body":"numbers are fine"}},
            {"from":"15551230001","id":"wamid.M5","timestamp":"yesterday","type":"text","text":"not an object"},
            {"from":"15551230001","id":"wamid.M6","type":"image","image":{"caption":"no media id"}},
            {"from":"15551230001","id":"wamid.M7","text":{"body":"no type"}},
            {"from":"15551230001","id":"","type":"text","text":{"body":"empty id: skipped"}}
        ],
        "statuses":[{"id":"wamid.S1","timestamp":"1"},{"status":"read"},{"id":"wamid.S3","status":"failed","errors":[{"title":"no code"},{"code":"131049"}]}],
        "errors":[{"code":131000,"title":"Something went wrong","message":"Something went wrong","error_data":{"details":"d"}},{"message":"no code"}]"#,
    );
    let b = parse_ok(body.as_bytes());
    let ids: Vec<&str> = b
        .messages
        .iter()
        .map(|m| m.provider_message_id.as_str())
        .collect();
    assert_eq!(ids, ["12345", "wamid.M5", "wamid.M6", "wamid.M7"]);
    assert_eq!(b.messages[0].customer_id, "15551230001");
    assert_eq!(b.messages[0].timestamp, 1_767_225_600);
    assert_eq!(b.messages[0].text.as_deref(), Some("numbers are fine"));
    assert_eq!(
        (b.messages[1].timestamp, b.messages[1].text.as_deref()),
        (0, None)
    );
    assert_eq!(b.messages[1].raw["text"], "not an object");
    assert_eq!(
        (b.messages[2].media.as_ref(), b.messages[2].text.as_deref()),
        (None, Some("no media id"))
    );
    assert_eq!(b.messages[3].kind, MessageKind::Other("unknown".into()));
    assert_eq!(b.statuses.len(), 1);
    assert_eq!(b.statuses[0].provider_message_id, "wamid.S3");
    assert_eq!(
        b.statuses[0]
            .errors
            .iter()
            .map(|e| e.code)
            .collect::<Vec<_>>(),
        [131049]
    );
    assert_eq!(
        b.errors,
        vec![(
            ACCOUNT_A.to_owned(),
            ProviderError {
                code: 131000,
                title: Some("Something went wrong".into()),
                details: Some("d".into())
            }
        )]
    );
}

#[test]
fn a_change_without_phone_number_id_is_skipped_but_others_are_kept() {
    let body = br#"{"object":"whatsapp_business_account","entry":[
      {"id":"1","changes":[{"field":"messages","value":{"metadata":{},"messages":[{"from":"1","id":"wamid.Lost","type":"text"}]}}]},
      {"id":"2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000002"},"messages":[{"from":"1","id":"wamid.Kept","type":"text"}]}}]}]}"#;
    let b = parse_ok(body);
    assert_eq!(b.messages.len(), 1);
    assert_eq!(
        (
            b.messages[0].provider_message_id.as_str(),
            b.messages[0].provider_account_id.as_str()
        ),
        ("wamid.Kept", ACCOUNT_B)
    );
}

#[test]
fn other_fields_are_ignored_even_when_they_look_like_messages() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
      {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":1}},
      {"field":"history","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","id":"wamid.H","type":"text"}]}},
      {"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","id":"wamid.Real","type":"text","text":{"body":"ok"}}]}}]}]}"#;
    let b = parse_ok(body);
    assert_eq!(b.messages.len(), 1);
    assert_eq!(b.messages[0].provider_message_id, "wamid.Real");
}

#[test]
fn escaped_non_ascii_and_emoji_surrogate_pairs_decode() {
    let body = webhook(
        r#","messages":[{"from":"1","id":"wamid.E","timestamp":"1","type":"text","text":{"body":"\u00bfQu\u00e9 tal? \ud83d\ude00 \u4f60\u597d \"quoted\" back\\slash"}}]"#,
    );
    let m = only_message(body.as_bytes());
    assert_eq!(
        m.text.as_deref(),
        Some("¿Qué tal? 😀 你好 \"quoted\" back\\slash")
    );
}

#[test]
fn value_level_errors_are_reported_with_their_account() {
    let body = webhook(
        r#","errors":[{"code":131052,"title":"Media download error","error_data":{"details":"too big"}}]"#,
    );
    let b = parse_ok(body.as_bytes());
    assert_eq!(
        b.errors,
        vec![(
            ACCOUNT_A.to_owned(),
            ProviderError {
                code: 131052,
                title: Some("Media download error".into()),
                details: Some("too big".into())
            }
        )]
    );
}

// ---------------------------------------------------------------------------------
// Echoes (shape from a mirror of Meta's smb_message_echoes reference)

#[test]
fn smb_message_echoes_yield_account_and_customer() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
      "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
      "message_echoes":[
        {"from":"15550783881","to":"16505551234","id":"wamid.E1","timestamp":"1739321024","type":"text","text":{"body":"Here's the info"}},
        {"from":"15550783881","to":"+16505550000","id":"wamid.E2","timestamp":"1739321025","type":"image","image":{"id":"1"}},
        {"from":"15550783881","to":"16505551234","to_user_id":"US.77","id":"wamid.E3","timestamp":"1739321026","type":"text","text":{"body":"x"}},
        {"from":"15550783881","id":"wamid.E4","type":"text"}
      ]},"field":"smb_message_echoes"}]}]}"#;
    let b = parse_ok(body);
    assert!(b.messages.is_empty() && b.statuses.is_empty());
    let acc = "106540352242922".to_owned();
    let echoes: Vec<(String, String)> = b
        .echoes
        .iter()
        .map(|e| (e.account.clone(), e.customer_id.clone()))
        .collect();
    assert_eq!(b.echoes[0].provider_message_id.as_deref(), Some("wamid.E1"));
    assert_eq!(b.echoes[0].text.as_deref(), Some("Here's the info"));
    assert_eq!(b.echoes[0].timestamp, 1739321024);
    assert_eq!(
        echoes,
        vec![
            (acc.clone(), "16505551234".to_owned()),
            (acc.clone(), "16505550000".to_owned()),
            (acc, "US.77".to_owned())
        ]
    );
}

#[test]
fn echoes_under_a_messages_field_are_not_echoes() {
    let body = webhook(
        r#","message_echoes":[{"from":"15550000001","to":"16505551234","id":"wamid.E1","type":"text"}]"#,
    );
    assert_eq!(parse_ok(body.as_bytes()), WebhookBatch::default());
}

// ---------------------------------------------------------------------------------
// Outbound bodies

#[test]
fn a_text_reply_matches_the_reference_request() {
    let expected: Value = serde_json::from_slice(fixture!("meta_send_text_request.json")).unwrap();
    let text = expected["text"]["body"].as_str().unwrap();
    assert_eq!(
        text_message_body("15551230001", false, text, None).json(),
        expected
    );
}

#[test]
fn the_recipient_is_formatted_for_meta() {
    let to = |id: &str| text_message_body(id, false, "x", None).json()["to"].clone();
    assert_eq!(to("15551230001"), "+15551230001");
    assert_eq!(to("+15551230001"), "+15551230001");
    assert_eq!(to("5511 9999"), "5511 9999"); // not all digits: left alone
    let b = text_message_body("US.13491208655302741918", true, "x", None).json();
    assert_eq!(b["recipient"], "US.13491208655302741918");
    assert!(b.get("to").is_none());
    assert_eq!(b["recipient_type"], "individual");
}

#[test]
fn callback_data_is_sent_as_biz_opaque_callback_data() {
    let b = text_message_body("15551230001", false, "hi", Some("tenant-a:out-0001")).json();
    assert_eq!(b["biz_opaque_callback_data"], "tenant-a:out-0001");
    assert!(
        text_message_body("15551230001", false, "hi", None)
            .json()
            .get("biz_opaque_callback_data")
            .is_none()
    );
}

#[test]
fn long_texts_are_cut_to_4096_characters_on_a_char_boundary() {
    let body_of = |t: &str| {
        text_message_body("1", false, t, None).json()["text"]["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let exact = "é".repeat(4096);
    assert_eq!(body_of(&exact), exact);
    let long = format!("{}{}", "a".repeat(4000), "😀".repeat(200));
    let cut = body_of(&long);
    assert_eq!(cut.chars().count(), 4096);
    assert!(cut.ends_with("😀…"));
    assert!(cut.starts_with(&"a".repeat(4000)));
    let accents = "ñ".repeat(5000);
    let cut = body_of(&accents);
    assert_eq!(cut.chars().count(), 4096);
    assert_eq!(cut, format!("{}…", "ñ".repeat(4095)));
    let just_over = "ü".repeat(4097);
    assert_eq!(body_of(&just_over), format!("{}…", "ü".repeat(4095)));
    assert_eq!(body_of("short ✓"), "short ✓");
    assert_eq!(body_of(""), "");
}

#[test]
fn mark_read_bodies_match_the_reference_request() {
    let expected: Value =
        serde_json::from_slice(fixture!("meta_mark_read_typing_request.json")).unwrap();
    let id = "wamid.RkFLRS5JTi4wMDAxLjE1NTUxMjMwMDAx";
    assert_eq!(mark_read_body(id, true).json(), expected);
    let plain = mark_read_body(id, false).json();
    assert!(plain.get("typing_indicator").is_none());
    assert_eq!(
        (plain["status"].as_str(), plain["message_id"].as_str()),
        (Some("read"), Some(id))
    );
}

#[test]
fn a_template_body_matches_the_reference_request() {
    let reference: Value =
        serde_json::from_slice(fixture!("meta_send_template_request.json")).unwrap();
    let params = ["Ben".to_owned(), "A-1001".to_owned()];
    let b = template_message_body("15551230002", false, "order_update_v1", "en_US", &params).json();
    for key in ["messaging_product", "recipient_type", "to", "type"] {
        assert_eq!(b[key], reference[key], "{key}");
    }
    assert_eq!(b["template"]["name"], reference["template"]["name"]);
    assert_eq!(b["template"]["language"], reference["template"]["language"]);
    // The reference also has a quick-reply button component; ours has the body only.
    assert_eq!(
        b["template"]["components"],
        Value::Array(vec![reference["template"]["components"][0].clone()])
    );
    let bare = template_message_body("US.1", true, "hello_world", "en", &[]).json();
    assert!(bare["template"].get("components").is_none());
    assert_eq!(bare["recipient"], "US.1");
}

#[test]
fn the_sent_message_id_is_read_from_a_success_response() {
    assert_eq!(
        parse_send_response(fixture!("meta_send_response.json")).as_deref(),
        Some("wamid.RkFLRS5PVVQuMDAwMS4xNTU1MTIzMDAwMQ==")
    );
    assert_eq!(parse_send_response(br#"{"success":true}"#), None);
    assert_eq!(parse_send_response(br#"{"messages":[]}"#), None);
    assert_eq!(parse_send_response(br#"{"messages":[{"id":""}]}"#), None);
    assert_eq!(
        parse_send_response(fixture!("meta_error_131047.json")),
        None
    );
    assert_eq!(parse_send_response(b"<html>"), None);
}

// ---------------------------------------------------------------------------------
// Error classification

#[test]
fn error_131047_from_the_fixture_is_permanent() {
    let e = classify_error(400, fixture!("meta_error_131047.json"));
    assert_eq!(e.class, SendFailure::Permanent);
    assert_eq!((e.http_status, e.code), (400, Some(131047)));
    assert_eq!(e.title.as_deref(), Some("Re-engagement message"));
    assert!(
        e.details
            .as_deref()
            .unwrap()
            .starts_with("Fixture: more than 24 hours")
    );
}

#[test]
fn error_130429_from_the_fixture_is_retryable_whatever_the_http_status() {
    for status in [400, 429] {
        let e = classify_error(status, fixture!("meta_error_130429.json"));
        assert_eq!((e.class, e.code), (SendFailure::Retryable, Some(130429)));
        assert_eq!(e.title.as_deref(), Some("Rate limit hit"));
    }
}

#[test]
fn an_expired_token_is_flagged_not_retried() {
    let body = br#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"x"}}"#;
    let e = classify_error(401, body);
    assert_eq!((e.class, e.code), (SendFailure::TokenExpired, Some(190)));
    assert_eq!(
        e.title.as_deref(),
        Some("Error validating access token: Session has expired")
    );
    assert_eq!(
        classify_error(500, br#"{"error":{"code":0}}"#).class,
        SendFailure::TokenExpired
    );
}

#[test]
fn the_pair_rate_limit_has_its_own_class() {
    let body = br#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","code":131056}}"#;
    let e = classify_error(400, body);
    assert_eq!(e.class, SendFailure::PairRateLimited);
    assert_eq!(
        e.title.as_deref(),
        Some("(Business Account, Consumer Account) pair rate limit hit")
    );
}

#[test]
fn non_json_bodies_are_classified_by_http_status() {
    let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
    let e = classify_error(502, html);
    assert_eq!(
        (e.class, e.code, e.title, e.details),
        (SendFailure::Retryable, None, None, None)
    );
    assert_eq!(
        classify_error(400, b"Bad Request").class,
        SendFailure::Permanent
    );
    assert_eq!(classify_error(429, b"").class, SendFailure::Retryable);
    assert_eq!(classify_error(200, b"{}").class, SendFailure::Permanent);
}

#[test]
fn codes_win_over_http_statuses() {
    let class = |status: u16, code: i64| {
        classify_error(
            status,
            format!(r#"{{"error":{{"code":{code}}}}}"#).as_bytes(),
        )
        .class
    };
    for code in [1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004] {
        assert_eq!(class(400, code), SendFailure::Retryable, "{code}");
    }
    for code in [
        3, 10, 100, 200, 250, 299, 368, 131005, 131008, 131009, 131021, 131026, 131031, 131042,
        131047, 131048, 131049, 132000, 132001, 132015, 133010,
    ] {
        assert_eq!(class(500, code), SendFailure::Permanent, "{code}");
    }
    // Unknown codes fall back to the HTTP status.
    assert_eq!(class(503, 999_999), SendFailure::Retryable);
    assert_eq!(class(429, 999_999), SendFailure::Retryable);
    assert_eq!(class(400, 999_999), SendFailure::Permanent);
    assert_eq!(class(400, 300), SendFailure::Permanent);
    assert_eq!(class(500, 300), SendFailure::Retryable);
}

// ---------------------------------------------------------------------------------
// Fuzz

/// xorshift64*: deterministic, so a failure is reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to a JSON parser, so mutations hit structure, not just text.
const INTERESTING: &[u8] =
    b"{}[]\":,\\u0123456789abcdefnulltruefalse-+.eE \n\x00\xff\xc3\xa9\xed\xa0\x80";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < v.len() => {
                let end = (at + rng.below(40)).min(v.len());
                v.drain(at..end);
            }
            4 if at < v.len() => {
                // Duplicate a slice: repeated keys, nested arrays, …
                let end = (at + rng.below(80)).min(v.len());
                let chunk = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            5 => v.truncate(at),
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

#[test]
fn random_byte_mutations_of_every_fixture_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let others = [
        fixture!("meta_error_131047.json"),
        fixture!("meta_error_130429.json"),
        fixture!("meta_send_response.json"),
    ];
    let inputs = SIGNED
        .iter()
        .map(|(_, body, _, sig)| (*body, Some(*sig)))
        .chain(others.map(|b| (b, None)));
    for (body, sig) in inputs {
        for _ in 0..1500 {
            let m = mutate(&mut rng, body);
            let _ = parse_webhook(&m);
            let _ = classify_error(500, &m);
            let _ = parse_send_response(&m);
            if let Some(sig) = sig {
                // Any change to the bytes must fail the check.
                assert_eq!(verify_signature(SECRET, &m, Some(sig)), m == body);
                let garbled = mutate(&mut rng, sig.as_bytes());
                let garbled = String::from_utf8_lossy(&garbled);
                // Upper-case hex digits are the same tag; everything else must differ.
                let same = garbled
                    .strip_prefix("sha256=")
                    .is_some_and(|h| h.eq_ignore_ascii_case(&sig[7..]));
                assert_eq!(verify_signature(SECRET, body, Some(&garbled)), same);
            }
        }
    }
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[test]
fn replacing_any_value_with_another_json_type_never_fails_the_batch() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let replacements = [
        Value::Null,
        json!(true),
        json!(-7),
        json!(1.5),
        json!(""),
        json!("text"),
        json!([]),
        json!([1, "x", {}]),
        json!({}),
        json!({"id": 5}),
    ];
    for (name, body, _, _) in SIGNED {
        let original: Value = serde_json::from_slice(body).unwrap();
        let mut all = Vec::new();
        pointers(&original, String::new(), &mut all);
        for _ in 0..300 {
            let mut v = original.clone();
            let p = &all[rng.below(all.len())];
            *v.pointer_mut(p).unwrap() = replacements[rng.below(replacements.len())].clone();
            let result = parse_webhook(&serde_json::to_vec(&v).unwrap());
            // Only the envelope itself may be rejected.
            if !matches!(p.as_str(), "" | "/object" | "/entry") {
                assert!(result.is_ok(), "{name}: replacing {p} gave {result:?}");
            }
        }
    }
}

#[test]
fn a_message_keeps_its_json_exactly_when_the_store_would_keep_it() {
    use crate::store::messages::raw_worth_keeping;
    let items = [
        r#"{"from":"15551230001","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"plain"}}"#,
        r#"{"from":"15551230001","from_user_id":"US.1","id":"wamid.B","timestamp":"1","type":"text","text":{"body":"plain, with a user id"}}"#,
        r#"{"from":"15551230001","id":"wamid.C","timestamp":"1","type":"text","text":{"body":"forwarded"},"context":{"forwarded":true}}"#,
        r#"{"from":"15551230001","id":"wamid.D","timestamp":"1","type":"text","text":{"body":"link","preview_url":true}}"#,
        r#"{"from":"15551230001","id":"wamid.E","timestamp":"1","type":"text","text":"a string"}"#,
        r#"{"from":"15551230001","id":"wamid.F","timestamp":"1","type":"text"}"#,
        r#"{"from":"15551230001","id":"wamid.G","timestamp":"1","type":"text","text":{"body":"from an ad"},"referral":{"source_type":"ad"}}"#,
        r#"{"from":"15551230001","id":"wamid.H","timestamp":"1","type":"image","image":{"id":"m1"}}"#,
        r#"{"from":"15551230001","id":"wamid.I","timestamp":"1","type":"text","text":{"body":"escaped \u00e9 key"},"te\u0078t2":1}"#,
    ];
    for item in items {
        let m = only_message(webhook(&format!(r#","messages":[{item}]"#)).as_bytes());
        let json: Value = serde_json::from_str(item).unwrap();
        let kept = raw_worth_keeping(&InboundMessage {
            raw: json.clone(),
            ..m.clone()
        });
        assert_eq!(m.raw, if kept { json } else { Value::Null }, "{item}");
    }
    // Only the first two are plain.
    let plain = items
        .iter()
        .filter(|i| {
            only_message(webhook(&format!(r#","messages":[{i}]"#)).as_bytes())
                .raw
                .is_null()
        })
        .count();
    assert_eq!(plain, 2);
}

#[test]
fn a_message_with_a_key_twice_is_read_with_the_last_one() {
    let m = only_message(
        webhook(
            r#","messages":[{"from":"15551230001","id":"wamid.first","id":"wamid.last","timestamp":"1","type":"text","text":{"body":"twice"}}]"#,
        )
        .as_bytes(),
    );
    assert_eq!(m.provider_message_id, "wamid.last");
    assert_eq!(m.text.as_deref(), Some("twice"));
    assert_eq!(m.raw["id"], "wamid.last");
}
