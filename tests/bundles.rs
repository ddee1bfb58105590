//! Applying, re-applying, exporting and rejecting tenant bundles, on both backends.

mod common;

use chrono::Utc;
use common::{Db, TestDb, bundle, key_ring};
use parley::cache::TenantCache;
use parley::domain::Channel;
use parley::provisioning::{self, ProvisionError, apply_bundle};
use secrecy::ExposeSecret;
use serde_json::json;

async fn applying_a_bundle_creates_the_tenant_and_reapplying_it_changes_nothing(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let file = bundle("acme", "100000000000001", "EAAG-acme-token-123456").to_string();
    let first = apply_bundle(store.as_ref(), &keys, &file, false, Utc::now())
        .await
        .unwrap();
    assert!(first.created);
    let state = store
        .load_tenant_state(first.tenant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.tenant.timezone, "Europe/Berlin");
    assert_eq!(state.training.len(), 3);
    assert_eq!(state.templates.len(), 2);
    let settings = state.settings.clone().unwrap();
    assert_eq!(settings.confidence_threshold, 0.6);
    assert_eq!(settings.max_messages_per_hour, Some(100));
    assert_eq!(settings.max_messages_per_user_per_day, None);
    assert_eq!(settings.escalation_categories, ["refund", "complaint"]);

    let again = apply_bundle(store.as_ref(), &keys, &file, false, Utc::now())
        .await
        .unwrap();
    assert!(!again.created);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let after = store
        .load_tenant_state(first.tenant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after, state,
        "re-applying the same file changes nothing, not even the revision"
    );
    let secrets_before = store.list_secrets(first.tenant.id).await.unwrap();
    assert_eq!(secrets_before.len(), 4);
}

async fn a_changed_bundle_updates_only_what_changed_and_faqs_keep_their_ids(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let mut b = bundle("acme", "100000000000001", "EAAG-acme-token-123456");
    let t = apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
        .await
        .unwrap()
        .tenant;
    let before = store.load_tenant_state(t.id).await.unwrap().unwrap();
    let secrets_before = store.list_secrets(t.id).await.unwrap();

    b["faqs"][0]["answer"] = json!("We are open 8-20 now");
    b["faqs"][2] = json!({"question": "Where are you?", "answer": "Main street 1"});
    b["settings"]["confidence_threshold"] = json!(0.7);
    b["whatsapp"]["access_token"] = json!("EAAG-acme-token-NEW-999");
    let out = apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        out.changes,
        [
            "settings: updated",
            "secret whatsapp.access_token: set",
            "faqs: 1 added, 1 updated, 1 removed"
        ]
    );
    let after = store.load_tenant_state(t.id).await.unwrap().unwrap();
    assert_eq!(
        after.training[0].id, before.training[0].id,
        "same question, same id"
    );
    assert_eq!(after.training[0].answer, "We are open 8-20 now");
    assert_eq!(
        after.training[1], before.training[1],
        "an untouched FAQ is untouched"
    );
    assert_ne!(after.training[2].id, before.training[2].id);
    assert_eq!(after.templates, before.templates);
    assert_eq!(after.tenant.revision, before.tenant.revision + 1);

    let secrets_after = store.list_secrets(t.id).await.unwrap();
    for (b, a) in secrets_before.iter().zip(&secrets_after) {
        if a.name == "whatsapp.access_token" {
            assert_ne!(a.sealed, b.sealed);
            let v = keys.open(t.id, &a.name, &a.sealed).unwrap();
            assert_eq!(v.expose_secret(), "EAAG-acme-token-NEW-999");
        } else {
            assert_eq!(a.sealed, b.sealed, "{} was not re-sealed", a.name);
        }
    }
}

async fn an_invalid_bundle_writes_nothing_and_names_each_bad_field(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let good = bundle("acme", "100000000000001", "EAAG-acme-token-123456");
    let t = apply_bundle(store.as_ref(), &keys, &good.to_string(), false, Utc::now())
        .await
        .unwrap()
        .tenant;
    let before = store.load_tenant_state(t.id).await.unwrap().unwrap();
    let secrets_before = store.list_secrets(t.id).await.unwrap();

    let mut bad = good.clone();
    bad["timezone"] = json!("Mars/Base");
    bad["settings"]["confidence_threshold"] = json!(1.7);
    bad["faqs"][1]["answer"] = json!("");
    bad["faqs"][0]["answer"] = json!("changed, but must not be written");
    bad["whatsapp"]["access_token"] = json!("EAAG-must-not-be-stored");
    let err = apply_bundle(store.as_ref(), &keys, &bad.to_string(), false, Utc::now())
        .await
        .unwrap_err();
    let ProvisionError::Invalid(errs) = err else {
        panic!("{err:?}")
    };
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "timezone: unknown IANA time zone \"Mars/Base\"",
            "settings.confidence_threshold: must be between 0 and 1",
            "faqs[1].answer: must not be empty",
        ]
    );
    assert_eq!(
        store.load_tenant_state(t.id).await.unwrap().unwrap(),
        before
    );
    let secrets_after = store.list_secrets(t.id).await.unwrap();
    assert_eq!(
        secrets_after.iter().map(|s| &s.sealed).collect::<Vec<_>>(),
        secrets_before.iter().map(|s| &s.sealed).collect::<Vec<_>>()
    );

    // Broken JSON and a new tenant without its secrets write nothing either.
    assert!(
        apply_bundle(store.as_ref(), &keys, "{\"slug\": ", false, Utc::now())
            .await
            .is_err()
    );
    let mut no_secret = bundle("beta", "100000000000002", "x");
    no_secret["whatsapp"]
        .as_object_mut()
        .unwrap()
        .remove("access_token");
    let err = apply_bundle(
        store.as_ref(),
        &keys,
        &no_secret.to_string(),
        false,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("whatsapp.access_token: is required"),
        "{err}"
    );
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
}

async fn a_phone_number_id_of_another_tenant_is_refused(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let a = bundle("acme", "100000000000001", "EAAG-acme-token-123456").to_string();
    apply_bundle(store.as_ref(), &keys, &a, false, Utc::now())
        .await
        .unwrap();
    let b = bundle("bolt", "100000000000001", "EAAG-bolt-token-123456").to_string();
    let err = apply_bundle(store.as_ref(), &keys, &b, false, Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "whatsapp.phone_number_id: \"100000000000001\" already belongs to another tenant"
        ),
        "{err}"
    );
    assert!(store.find_tenant_by_slug("bolt").await.unwrap().is_none());
}

async fn an_export_reapplies_to_the_same_state_and_leaves_secrets_out_by_default(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let file = bundle("acme", "100000000000001", "EAAG-acme-token-123456").to_string();
    let t = apply_bundle(store.as_ref(), &keys, &file, false, Utc::now())
        .await
        .unwrap()
        .tenant;
    let before = store.load_tenant_state(t.id).await.unwrap().unwrap();

    let export = provisioning::export_bundle(store.as_ref(), &keys, "acme", false)
        .await
        .unwrap();
    let text = serde_json::to_string(&export).unwrap();
    for secret in [
        "EAAG-acme-token-123456",
        "appsecret-acme",
        "verify-acme",
        "sk-or-acme",
    ] {
        assert!(!text.contains(secret), "export leaked {secret}");
    }
    let out = apply_bundle(store.as_ref(), &keys, &text, false, Utc::now())
        .await
        .unwrap();
    assert!(out.changes.is_empty(), "{:?}", out.changes);
    assert_eq!(
        store.load_tenant_state(t.id).await.unwrap().unwrap(),
        before
    );

    let full = provisioning::export_bundle(store.as_ref(), &keys, "acme", true)
        .await
        .unwrap();
    let full_text = serde_json::to_string(&full).unwrap();
    assert!(full_text.contains("EAAG-acme-token-123456"));
    // Into a fresh database, the full export recreates the same tenant.
    let Some(db2) = TestDb::new(db.kind).await else {
        return;
    };
    let store2 = db2.store().await;
    let t2 = apply_bundle(store2.as_ref(), &keys, &full_text, false, Utc::now())
        .await
        .unwrap()
        .tenant;
    let mut copy = store2.load_tenant_state(t2.id).await.unwrap().unwrap();
    assert_eq!(copy.settings, before.settings);
    assert_eq!(copy.whatsapp, before.whatsapp);
    assert_eq!(copy.ai, before.ai);
    copy.training
        .iter_mut()
        .zip(&before.training)
        .for_each(|(c, b)| c.id = b.id);
    assert_eq!(copy.training, before.training);

    let view = provisioning::show_tenant(store.as_ref(), &keys, "acme")
        .await
        .unwrap();
    assert_eq!(view.secrets["whatsapp.access_token"], "****3456");
    let shown = serde_json::to_string(&view).unwrap();
    assert!(!shown.contains("EAAG-acme-token-123456"));
    assert!(matches!(
        provisioning::show_tenant(store.as_ref(), &keys, "nope").await,
        Err(ProvisionError::UnknownTenant(_))
    ));
}

async fn a_dry_run_reports_changes_without_writing(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let file = bundle("acme", "100000000000001", "EAAG-acme-token-123456").to_string();
    let out = apply_bundle(store.as_ref(), &keys, &file, true, Utc::now())
        .await
        .unwrap();
    assert!(out.created && !out.changes.is_empty());
    assert!(store.list_tenants().await.unwrap().is_empty());
}

async fn the_tenant_cache_serves_opened_secrets_by_id_and_by_phone_number_id(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let keys = std::sync::Arc::new(keys);
    let mut b = bundle("acme", "100000000000001", "EAAG-acme-token-123456");
    let t = apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
        .await
        .unwrap()
        .tenant;
    apply_bundle(
        store.as_ref(),
        &keys,
        &bundle("bolt", "100000000000002", "EAAG-bolt-token-123456").to_string(),
        false,
        Utc::now(),
    )
    .await
    .unwrap();
    let cache = TenantCache::new(
        store.clone(),
        keys.clone(),
        std::time::Duration::from_secs(600),
    );

    let ctx = cache
        .get_by_account(Channel::Whatsapp, "100000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.tenant.id, t.id);
    let wa = ctx.whatsapp.as_ref().unwrap();
    assert_eq!(wa.access_token.expose_secret(), "EAAG-acme-token-123456");
    assert_eq!(wa.app_secret.expose_secret(), "appsecret-acme-0123456789");
    let other = cache
        .get_by_account(Channel::Whatsapp, "100000000000002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        other
            .whatsapp
            .as_ref()
            .unwrap()
            .access_token
            .expose_secret(),
        "EAAG-bolt-token-123456"
    );
    assert!(
        cache
            .get_by_account(Channel::Whatsapp, "999")
            .await
            .unwrap()
            .is_none()
    );

    b["whatsapp"]["access_token"] = json!("EAAG-acme-rotated-000000");
    apply_bundle(store.as_ref(), &keys, &b.to_string(), false, Utc::now())
        .await
        .unwrap();
    let stale = cache.get(t.id).await.unwrap().unwrap();
    assert_eq!(
        stale
            .whatsapp
            .as_ref()
            .unwrap()
            .access_token
            .expose_secret(),
        "EAAG-acme-token-123456"
    );
    // A change made elsewhere (here: straight through the store) is seen by the sync.
    assert_eq!(cache.sync_with_store().await.unwrap(), 1);
    let fresh = cache.get(t.id).await.unwrap().unwrap();
    assert_eq!(
        fresh
            .whatsapp
            .as_ref()
            .unwrap()
            .access_token
            .expose_secret(),
        "EAAG-acme-rotated-000000"
    );
}

on_both_backends!(
    applying_a_bundle_creates_the_tenant_and_reapplying_it_changes_nothing,
    a_changed_bundle_updates_only_what_changed_and_faqs_keep_their_ids,
    an_invalid_bundle_writes_nothing_and_names_each_bad_field,
    a_phone_number_id_of_another_tenant_is_refused,
    an_export_reapplies_to_the_same_state_and_leaves_secrets_out_by_default,
    a_dry_run_reports_changes_without_writing,
    the_tenant_cache_serves_opened_secrets_by_id_and_by_phone_number_id,
);
