//! Master key rotation and damaged ciphertexts, on both backends: every secret stays
//! readable after a rotation, and a secret that cannot be opened is named (tenant and
//! field), never replaced by a wrong value.

mod common;

use std::sync::Arc;

use chrono::Utc;
use common::{Db, TestDb, bundle, key_ring};
use parley::cache::{ContextError, TenantContext};
use parley::crypto::{CryptoError, KeyRing, generate_key_b64};
use parley::provisioning::{apply_bundle, rotate_keys};
use secrecy::ExposeSecret;

async fn rotation_reseals_every_secret_and_the_old_key_can_then_be_dropped(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (old, old_b64) = key_ring();
    let mut ids = Vec::new();
    for i in 0..3 {
        let b = bundle(
            &format!("t{i}"),
            &format!("10000000000000{i}"),
            &format!("EAAG-token-{i}-abcdef"),
        );
        ids.push(
            apply_bundle(store.as_ref(), &old, &b.to_string(), false, Utc::now())
                .await
                .unwrap()
                .tenant
                .id,
        );
    }
    let new_b64 = generate_key_b64();
    let both = KeyRing::new(&new_b64, &[old_b64]).unwrap();
    let mut progress = Vec::new();
    let report = rotate_keys(store.as_ref(), &both, Utc::now(), |d, t| {
        progress.push((d, t))
    })
    .await
    .unwrap();
    assert_eq!(
        (report.total, report.rotated, report.already_current),
        (12, 12, 0)
    );
    assert!(report.failures.is_empty());
    assert_eq!(progress.last(), Some(&(12, 12)));
    assert_eq!(
        store.count_secrets_by_key().await.unwrap(),
        vec![(both.active_key_id().to_string(), 12)]
    );

    // Only the new key from here on: everything still opens.
    let new_only = KeyRing::new(&new_b64, &[]).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let ctx = TenantContext::load(store.as_ref(), &new_only, *id)
            .await
            .unwrap()
            .unwrap();
        let token = ctx.whatsapp.unwrap().access_token;
        assert_eq!(token.expose_secret(), format!("EAAG-token-{i}-abcdef"));
    }
    // Running it again is harmless.
    let again = rotate_keys(store.as_ref(), &new_only, Utc::now(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((again.rotated, again.already_current), (0, 12));
}

async fn a_secret_under_an_unknown_key_is_named_and_left_alone(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (old, _) = key_ring();
    let t = apply_bundle(
        store.as_ref(),
        &old,
        &bundle("acme", "1001", "EAAG-acme-123456").to_string(),
        false,
        Utc::now(),
    )
    .await
    .unwrap()
    .tenant;
    let (stranger, _) = key_ring();
    let err = TenantContext::load(store.as_ref(), &stranger, t.id)
        .await
        .err()
        .unwrap();
    match &err {
        ContextError::Secret {
            tenant,
            field,
            source,
        } => {
            assert_eq!(tenant, "acme");
            assert_eq!(field, "whatsapp.access_token");
            assert_eq!(
                source,
                &CryptoError::UnknownKey {
                    key_id: old.active_key_id().to_string()
                }
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("tenant acme: secret whatsapp.access_token: sealed under key")
    );

    let before = store.list_secrets(t.id).await.unwrap();
    let report = rotate_keys(store.as_ref(), &stranger, Utc::now(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.rotated, 0);
    assert_eq!(report.failures.len(), 4);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.starts_with("tenant acme: secret ai.api_key:")),
        "{:?}",
        report.failures
    );
    let after = store.list_secrets(t.id).await.unwrap();
    assert_eq!(
        before.iter().map(|s| &s.sealed).collect::<Vec<_>>(),
        after.iter().map(|s| &s.sealed).collect::<Vec<_>>()
    );
}

async fn a_tampered_or_moved_ciphertext_fails_to_open_with_tenant_and_field(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let keys = Arc::new(keys);
    let a = apply_bundle(
        store.as_ref(),
        &keys,
        &bundle("acme", "1001", "EAAG-acme-123456").to_string(),
        false,
        Utc::now(),
    )
    .await
    .unwrap()
    .tenant;
    let b = apply_bundle(
        store.as_ref(),
        &keys,
        &bundle("bolt", "1002", "EAAG-bolt-123456").to_string(),
        false,
        Utc::now(),
    )
    .await
    .unwrap()
    .tenant;
    // Flip one byte of acme's access token in the database.
    let flip = match db.kind {
        Db::Sqlite | Db::SqliteMemory => {
            "UPDATE tenant_secrets SET ciphertext = CAST(X'00' AS BLOB) || substr(ciphertext, 2) \
                       WHERE name = 'whatsapp.access_token' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')"
        }
        Db::Postgres => {
            "UPDATE tenant_secrets SET ciphertext = set_byte(ciphertext, 0, (get_byte(ciphertext, 0) # 1)) \
                         WHERE name = 'whatsapp.access_token' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')"
        }
    };
    assert_eq!(db.exec(flip).await, 1);
    // Copy bolt's app secret ciphertext over acme's.
    let copy = "UPDATE tenant_secrets SET key_id = s.key_id, nonce = s.nonce, ciphertext = s.ciphertext \
                FROM (SELECT key_id, nonce, ciphertext FROM tenant_secrets WHERE name = 'whatsapp.app_secret' \
                      AND tenant_id = (SELECT id FROM tenants WHERE slug = 'bolt')) AS s \
                WHERE name = 'whatsapp.app_secret' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')";
    assert_eq!(db.exec(copy).await, 1);

    let err = TenantContext::load(store.as_ref(), &keys, a.id)
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    // Either damaged field may be reported first; both must fail, neither may open.
    assert!(msg.starts_with("tenant acme: secret whatsapp."), "{msg}");
    let secrets = store.list_secrets(a.id).await.unwrap();
    for name in ["whatsapp.access_token", "whatsapp.app_secret"] {
        let s = secrets.iter().find(|s| s.name == name).unwrap();
        assert_eq!(
            keys.open(a.id, name, &s.sealed).unwrap_err(),
            CryptoError::Tampered,
            "{name}"
        );
    }
    // The other tenant is unaffected.
    assert!(
        TenantContext::load(store.as_ref(), &keys, b.id)
            .await
            .unwrap()
            .is_some()
    );
}

on_both_backends!(
    rotation_reseals_every_secret_and_the_old_key_can_then_be_dropped,
    a_secret_under_an_unknown_key_is_named_and_left_alone,
    a_tampered_or_moved_ciphertext_fails_to_open_with_tenant_and_field,
);
