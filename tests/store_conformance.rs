//! Every `Store` method, on SQLite and on PostgreSQL: tenant rows are isolated,
//! duplicates are conflicts, deletes cascade, and a failed write leaves nothing behind.

// Plans are built field by field below; that reads better in tests than one big literal.
#![allow(clippy::field_reassign_with_default)]

mod common;

use std::sync::Arc;

use chrono::Utc;
use common::{Db, TestDb, key_ring};
use parley::crypto::KeyRing;
use parley::domain::plan::{Change, ItemChanges, Plan};
use parley::domain::secret_field::*;
use parley::domain::*;
use parley::store::{Backend, Store, StoreError};
use secrecy::SecretString;

fn profile(slug: &str) -> TenantProfile {
    TenantProfile {
        slug: slug.into(),
        name: format!("Tenant {slug}"),
        timezone: "UTC".into(),
        active: true,
    }
}

fn faq(q: &str, a: &str, pos: i64) -> TrainingItem {
    TrainingItem {
        id: TrainingItemId::new(),
        kind: TrainingKind::Faq,
        question: q.into(),
        answer: a.into(),
        examples: vec![format!("{q} please")],
        category: Some("general".into()),
        priority: 0,
        active: true,
        position: pos,
    }
}

fn account(pnid: &str) -> ChannelAccount {
    ChannelAccount {
        channel: Channel::Whatsapp,
        provider_account_id: pnid.into(),
        business_account_id: None,
        display_phone_number: Some("15550000001".into()),
        token_expires_at: None,
        messages_per_second: 80,
    }
}

/// A new tenant with settings, a WhatsApp account, a sealed token, a template and two FAQs.
async fn seed(
    store: &dyn Store,
    keys: &KeyRing,
    slug: &str,
    pnid: &str,
) -> (Tenant, Vec<TrainingItem>) {
    let id = TenantId::new();
    let faqs = vec![
        faq("Opening hours?", &format!("9-5 {slug}"), 0),
        faq("Delivery?", "Yes", 1),
    ];
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.profile = Some(profile(slug));
    plan.settings = Some(ControlSettings::default());
    plan.whatsapp = Some(Change::Set(account(pnid)));
    plan.secrets = vec![(
        WHATSAPP_ACCESS_TOKEN,
        Change::Set(keys.seal(
            id,
            WHATSAPP_ACCESS_TOKEN,
            &SecretString::from(format!("token-{slug}")),
        )),
    )];
    plan.templates.insert = vec![Template {
        id: TemplateId::new(),
        name: "default".into(),
        system_prompt: "Be nice".into(),
        tone: None,
        max_response_length: Some(500),
        context_messages: Some(4),
        is_default: true,
        position: 0,
    }];
    plan.training.insert = faqs.clone();
    let t = store
        .create_tenant(id, &plan, Utc::now())
        .await
        .expect("create tenant");
    (t, faqs)
}

/// A fresh database (owned by the `TestDb`, which must outlive the store) with two
/// tenants made by `seed`: alpha on number 111 and beta on 222. `None` where
/// `TestDb::new` gives none (that backend is not set up: the test does nothing).
async fn two_tenants(
    db: Db,
) -> Option<(
    TestDb,
    Arc<dyn Store>,
    (Tenant, Vec<TrainingItem>),
    (Tenant, Vec<TrainingItem>),
)> {
    let db = TestDb::new(db).await?;
    let store = db.store().await;
    let (keys, _) = key_ring();
    let a = seed(store.as_ref(), &keys, "alpha", "111").await;
    let b = seed(store.as_ref(), &keys, "beta", "222").await;
    Some((db, store, a, b))
}

async fn tenants_are_created_found_listed_and_toggled(db: Db) {
    let Some((db, store, (a, _), (b, _))) = two_tenants(db).await else {
        return;
    };
    assert_eq!(store.get_tenant(a.id).await.unwrap().slug, "alpha");
    assert_eq!(
        store.find_tenant_by_slug("beta").await.unwrap().unwrap().id,
        b.id
    );
    assert!(store.find_tenant_by_slug("gamma").await.unwrap().is_none());
    let slugs: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug)
        .collect();
    assert_eq!(slugs, ["alpha", "beta"]);
    let off = store
        .set_tenant_active(a.id, false, Utc::now())
        .await
        .unwrap();
    assert!(!off.active);
    assert!(off.revision > a.revision);
    assert!(
        store.get_tenant(b.id).await.unwrap().active,
        "the other tenant is untouched"
    );
    assert!(matches!(
        store.get_tenant(TenantId::new()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_tenant_active(TenantId::new(), true, Utc::now())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.backend(),
        if db.kind == Db::Sqlite {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    );
    store.ping().await.unwrap();
}

async fn a_taken_slug_or_phone_number_id_is_a_conflict_and_writes_nothing(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    seed(store.as_ref(), &keys, "alpha", "111").await;
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.profile = Some(profile("alpha"));
    let e = store
        .create_tenant(TenantId::new(), &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    // Same phone number id as alpha: the tenant row must not survive the failed create.
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.profile = Some(profile("beta"));
    plan.whatsapp = Some(Change::Set(account("111")));
    let e = store
        .create_tenant(TenantId::new(), &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(store.find_tenant_by_slug("beta").await.unwrap().is_none());
}

async fn a_duplicate_question_within_a_tenant_is_a_conflict_but_not_across_tenants(db: Db) {
    let Some((_db, store, (a, _), (b, _))) = two_tenants(db).await else {
        return;
    };
    assert_eq!(
        store.list_training_items(b.id).await.unwrap().len(),
        2,
        "same questions in two tenants are fine"
    );
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.training.insert = vec![faq("Opening hours?", "dup", 5)];
    let e = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let after = store.get_tenant(a.id).await.unwrap();
    assert_eq!(
        after.revision, a.revision,
        "a failed write leaves the revision as it was"
    );
}

async fn another_tenants_rows_are_not_found_and_cannot_be_changed(db: Db) {
    let Some((_db, store, (a, _), (b, b_faqs))) = two_tenants(db).await else {
        return;
    };
    let theirs = b_faqs[0].id;
    assert!(
        store
            .find_training_item(a.id, theirs)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_training_item(b.id, theirs)
            .await
            .unwrap()
            .is_some()
    );

    // Update B's FAQ through A: not found, and nothing of A's plan is written either.
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.settings = Some(ControlSettings {
        bot_enabled: false,
        ..Default::default()
    });
    plan.training.update = vec![TrainingItem {
        answer: "hijacked".into(),
        ..b_faqs[0].clone()
    }];
    let e = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    assert!(
        store
            .find_settings(a.id)
            .await
            .unwrap()
            .unwrap()
            .bot_enabled,
        "A's settings unchanged"
    );
    assert_eq!(
        store
            .find_training_item(b.id, theirs)
            .await
            .unwrap()
            .unwrap()
            .answer,
        b_faqs[0].answer
    );

    // Delete B's FAQ through A: not found, B keeps it.
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.training = ItemChanges {
        delete: vec![theirs],
        ..Default::default()
    };
    let e = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    assert!(
        store
            .find_training_item(b.id, theirs)
            .await
            .unwrap()
            .is_some()
    );

    // B's template through A.
    let b_tpl = store.list_templates(b.id).await.unwrap()[0].clone();
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.templates.update = vec![Template {
        system_prompt: "evil".into(),
        ..b_tpl.clone()
    }];
    assert!(matches!(
        store
            .update_tenant(a.id, a.revision, &plan, Utc::now())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list_templates(b.id).await.unwrap()[0], b_tpl);

    // Each tenant's secrets and routes are its own.
    let a_secrets = store.list_secrets(a.id).await.unwrap();
    assert_eq!(a_secrets.len(), 1);
    assert!(a_secrets.iter().all(|s| s.tenant_id == a.id));
    assert_eq!(
        store
            .find_tenant_by_channel_account(Channel::Whatsapp, "222")
            .await
            .unwrap(),
        Some(b.id)
    );
    assert_eq!(
        store
            .find_tenant_by_channel_account(Channel::Whatsapp, "999")
            .await
            .unwrap(),
        None
    );
}

async fn a_stale_revision_is_refused(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let (a, _) = seed(store.as_ref(), &keys, "alpha", "111").await;
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.settings = Some(ControlSettings {
        auto_reply: false,
        ..Default::default()
    });
    let t2 = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap();
    assert_eq!(t2.revision, a.revision + 1);
    let e = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleRevision { .. }), "{e:?}");
    let e = store
        .update_tenant(TenantId::new(), 1, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
}

async fn the_database_refuses_out_of_range_settings(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let (a, _) = seed(store.as_ref(), &keys, "alpha", "111").await;
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.settings = Some(ControlSettings {
        confidence_threshold: 1.5,
        ..Default::default()
    });
    let e = store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert_eq!(
        store
            .find_settings(a.id)
            .await
            .unwrap()
            .unwrap()
            .confidence_threshold,
        0.5
    );
}

async fn the_whole_state_round_trips_and_updates_keep_ids(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    let (a, faqs) = seed(store.as_ref(), &keys, "alpha", "111").await;
    let state = store.load_tenant_state(a.id).await.unwrap().unwrap();
    assert_eq!(state.training, faqs);
    assert_eq!(state.whatsapp, Some(account("111")));
    assert_eq!(state.settings, Some(ControlSettings::default()));
    assert!(state.ai.is_none());

    let mut settings = ControlSettings::default();
    settings.quiet_hours = Some(QuietHours {
        start: chrono::NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(6, 30, 0).unwrap(),
        policy: QuietPolicy::AfterHoursMessage,
    });
    settings.max_messages_per_hour = Some(40);
    settings.escalation_email = Some("a@b.example".into());
    let ai = AiConfig {
        provider: AiProvider::Compatible,
        base_url: "http://localhost:11434/v1".into(),
        model: "llama3".into(),
    };
    let mut plan: Plan<parley::crypto::Sealed> = Plan::default();
    plan.settings = Some(settings.clone());
    plan.ai = Some(Change::Set(ai.clone()));
    plan.training.update = vec![TrainingItem {
        answer: "new answer".into(),
        ..faqs[0].clone()
    }];
    plan.training.delete = vec![faqs[1].id];
    plan.secrets = vec![(WHATSAPP_ACCESS_TOKEN, Change::Remove)];
    store
        .update_tenant(a.id, a.revision, &plan, Utc::now())
        .await
        .unwrap();
    let state = store.load_tenant_state(a.id).await.unwrap().unwrap();
    assert_eq!(state.settings, Some(settings));
    assert_eq!(state.ai, Some(ai));
    assert_eq!(state.training.len(), 1);
    assert_eq!(state.training[0].id, faqs[0].id);
    assert_eq!(state.training[0].answer, "new answer");
    assert!(store.list_secrets(a.id).await.unwrap().is_empty());
    assert!(
        store
            .load_tenant_state(TenantId::new())
            .await
            .unwrap()
            .is_none()
    );
}

async fn deleting_a_tenant_removes_everything_it_owns(db: Db) {
    let Some((db, store, (a, _), (b, _))) = two_tenants(db).await else {
        return;
    };
    store.delete_tenant(a.id).await.unwrap();
    for table in [
        "tenant_secrets",
        "channel_accounts",
        "control_settings",
        "templates",
        "training_items",
    ] {
        let total = db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert!(total >= 1, "{table} still holds beta's rows");
        let sql =
            format!("SELECT COUNT(*) FROM {table} WHERE tenant_id NOT IN (SELECT id FROM tenants)");
        assert_eq!(
            db.count(&sql).await,
            0,
            "{table} kept rows of the deleted tenant"
        );
    }
    assert!(
        store
            .find_tenant_by_channel_account(Channel::Whatsapp, "111")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_training_items(b.id).await.unwrap().len(), 2);
    assert!(matches!(
        store.delete_tenant(a.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn secrets_are_paged_replaced_only_when_unchanged_and_counted_by_key(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let (keys, _) = key_ring();
    for i in 0..5 {
        seed(store.as_ref(), &keys, &format!("t{i}"), &format!("10{i}")).await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_all_secrets(after.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|r| (r.tenant_id, r.name.clone()));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 5);
    let counts = store.count_secrets_by_key().await.unwrap();
    assert_eq!(counts, vec![(keys.active_key_id().to_string(), 5)]);

    let rec = &seen[0];
    let (new_keys, _) = key_ring();
    let plain = keys.open(rec.tenant_id, &rec.name, &rec.sealed).unwrap();
    let resealed = new_keys.seal(rec.tenant_id, &rec.name, &plain);
    assert!(
        store
            .replace_secret(rec, &resealed, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_secret(rec, &resealed, Utc::now())
            .await
            .unwrap(),
        "a value that changed meanwhile is not overwritten"
    );
    let mut counts = store.count_secrets_by_key().await.unwrap();
    counts.sort_by_key(|c| c.1);
    assert_eq!(counts.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1, 4]);
}

async fn migrations_go_down_and_up_again(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = db.store().await;
    let status = store.migration_status().await.unwrap();
    assert!(!status.is_empty() && status.iter().all(|m| m.applied));
    let reverted = store
        .migrate_down()
        .await
        .unwrap()
        .expect("one migration reverted");
    assert_eq!(reverted.version, status.last().unwrap().version);
    let after = store.migration_status().await.unwrap();
    assert!(!after.last().unwrap().applied);
    if status.len() == 1 {
        assert!(
            store.list_tenants().await.is_err(),
            "the tenants table is gone"
        );
        assert!(store.migrate_down().await.unwrap().is_none());
    }
    store.migrate_up().await.unwrap();
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    assert!(store.list_tenants().await.unwrap().is_empty());
}

/// A tenant's usage of a day may lie in several rows (usage slots, migration 0010): it is
/// reported as one day with the sums, and reverting 0010 folds the slots into one row
/// with the same sums (another tenant's rows untouched).
async fn usage_in_several_slots_reads_as_one_day_and_folds_back_on_the_way_down(db: Db) {
    let Some((db, store, (a, _), (b, _))) = two_tenants(db).await else {
        return;
    };
    for (slug, slot, inbound, outbound, tokens) in [
        ("alpha", 0, 2, 1, 10),
        ("alpha", 3, 5, 4, 20),
        ("alpha", 7, 1, 0, 30),
        ("beta", 3, 9, 9, 0),
    ] {
        db.exec(&format!(
            "INSERT INTO usage_daily (tenant_id, day, slot, inbound, outbound, tokens_in) \
             SELECT id, '2026-12-01', {slot}, {inbound}, {outbound}, {tokens} FROM tenants \
             WHERE slug = '{slug}'"
        ))
        .await;
    }
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let read = |t: TenantId| {
        let store = store.clone();
        async move {
            store
                .list_usage(t, day, day)
                .await
                .unwrap()
                .into_iter()
                .map(|u| (u.day, u.inbound, u.outbound, u.tokens_in))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(read(a.id).await, [(Some(day), 8, 5, 60)]);
    assert_eq!(read(b.id).await, [(Some(day), 9, 9, 0)]);
    for (version, what) in [
        (15, "0015 (outbox fillfactor)"),
        (14, "0014 (decisions on messages)"),
        (13, "0013 (one outbound customer index)"),
        (12, "0012 (loop keys)"),
        (11, "0011 (id-first keys)"),
    ] {
        let reverted = store.migrate_down().await.unwrap().unwrap();
        assert_eq!(reverted.version, version, "{what} first");
    }
    let reverted = store.migrate_down().await.unwrap().unwrap();
    assert_eq!(reverted.version, 10);
    assert_eq!(db.count("SELECT COUNT(*) FROM usage_daily").await, 2);
    assert_eq!(
        db.count("SELECT CAST(SUM(inbound * 1000000 + outbound * 1000 + tokens_in) AS BIGINT) FROM usage_daily")
            .await,
        8_005_060 + 9_009_000
    );
    store.migrate_up().await.unwrap();
    assert_eq!(read(a.id).await, [(Some(day), 8, 5, 60)]);
    assert_eq!(read(b.id).await, [(Some(day), 9, 9, 0)]);
}

async fn concurrent_batches_never_take_more_than_a_rate_limit(db: Db) {
    use parley::store::messages::QuotaAsk;
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let store = std::sync::Arc::new(db.store().await);
    let (keys, _) = key_ring();
    let (a, _) = seed(store.as_ref().as_ref(), &keys, "alpha", "111").await;
    let (b, _) = seed(store.as_ref().as_ref(), &keys, "beta", "222").await;
    let hour = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    // 32 batches at once, five replies each, against one hourly limit of 20.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let batches: Vec<_> = (0..32)
        .map(|batch| {
            let store = store.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let chains: Vec<Vec<QuotaAsk>> = (0..5)
                    .map(|i| {
                        let ask = |scope: String, limit| QuotaAsk {
                            tenant: a.id,
                            scope,
                            window_start: hour,
                            limit,
                        };
                        vec![
                            ask(format!("user_day:{batch}-{i}"), 1),
                            ask("tenant_hour".to_string(), 20),
                        ]
                    })
                    .collect();
                store.take_quotas(&chains).await.unwrap()
            })
        })
        .collect();
    let mut answered = 0;
    let mut limited = 0;
    for batch in batches {
        for reached in batch.await.unwrap() {
            match reached {
                None => answered += 1,
                Some(1) => limited += 1,
                other => panic!("only the hourly limit can be reached: {other:?}"),
            }
        }
    }
    assert_eq!((answered, limited), (20, 140));
    assert!(
        !store
            .take_quota(a.id, "tenant_hour", hour, 20)
            .await
            .unwrap()
    );
    // Another tenant's counter of the same name and hour is its own.
    assert!(
        store
            .take_quota(b.id, "tenant_hour", hour, 1)
            .await
            .unwrap()
    );
}

/// Reverting 0012 puts the message loop's foreign keys back on PostgreSQL: rows of
/// tenants deleted meanwhile (left by a write that raced the deletion) go first, so the
/// keys can be made, and the live tenants' rows stay. SQLite never dropped its keys
/// (its 0012 changes nothing), so there the way back and up again only keeps the rows.
async fn reverting_0012_drops_rows_of_deleted_tenants_and_restores_the_keys(db: Db) {
    let Some((db, store, (a, _), _)) = two_tenants(db).await else {
        return;
    };
    let gone = uuid::Uuid::new_v4();
    let contact = |tenant: &str, customer: &str| {
        format!(
            "INSERT INTO contacts (tenant_id, channel, customer_id, first_seen_at, \
             last_inbound_at) VALUES ({tenant}, 'whatsapp', '{customer}', \
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        )
    };
    let (live, dead) = match db.kind {
        Db::Postgres => (format!("'{}'", a.id.0), format!("'{gone}'")),
        Db::Sqlite | Db::SqliteMemory => (
            format!("x'{}'", a.id.0.simple()),
            format!("x'{}'", gone.simple()),
        ),
    };
    db.exec(&contact(&live, "15550000001")).await;
    if db.kind == Db::Postgres {
        db.exec(&contact(&dead, "15550000002")).await;
    }
    let keys = "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' \
                AND conrelid = 'contacts'::regclass";
    if db.kind == Db::Postgres {
        assert_eq!(db.count(keys).await, 0, "0012 dropped the contacts' key");
    }
    for version in [15, 14, 13, 12] {
        assert_eq!(
            store.migrate_down().await.unwrap().unwrap().version,
            version
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM contacts WHERE customer_id = '15550000001'")
            .await,
        1,
        "the live tenant's contact stays"
    );
    if db.kind == Db::Postgres {
        assert_eq!(db.count(keys).await, 1, "the key is back");
    }
    store.migrate_up().await.unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM contacts").await, 1);
}

on_both_backends!(
    reverting_0012_drops_rows_of_deleted_tenants_and_restores_the_keys,
    tenants_are_created_found_listed_and_toggled,
    a_taken_slug_or_phone_number_id_is_a_conflict_and_writes_nothing,
    a_duplicate_question_within_a_tenant_is_a_conflict_but_not_across_tenants,
    another_tenants_rows_are_not_found_and_cannot_be_changed,
    a_stale_revision_is_refused,
    the_database_refuses_out_of_range_settings,
    the_whole_state_round_trips_and_updates_keep_ids,
    deleting_a_tenant_removes_everything_it_owns,
    secrets_are_paged_replaced_only_when_unchanged_and_counted_by_key,
    migrations_go_down_and_up_again,
    usage_in_several_slots_reads_as_one_day_and_folds_back_on_the_way_down,
    concurrent_batches_never_take_more_than_a_rate_limit,
);
