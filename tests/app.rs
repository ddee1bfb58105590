//! The HTTP app in-process on both backends: health and readiness.

mod common;

use std::sync::Arc;

use common::{Db, TestApp, TestDb, key_ring};

async fn health_and_readiness_answer_200_while_the_database_is_up(db: Db) {
    let Some(db) = TestDb::new(db).await else {
        return;
    };
    let (keys, _) = key_ring();
    let app = TestApp::spawn(&db, Arc::new(keys), "http://127.0.0.1:9").await;
    let http = reqwest::Client::new();
    let r = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    let r = http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

on_both_backends!(health_and_readiness_answer_200_while_the_database_is_up);

#[tokio::test]
async fn readiness_answers_503_with_an_error_code_when_the_database_is_gone() {
    let Some(db) = TestDb::new(Db::Sqlite).await else {
        return;
    };
    let (keys, _) = key_ring();
    let app = TestApp::spawn(&db, Arc::new(keys), "http://127.0.0.1:9").await;
    // Closing the pool under the running app is what an unreachable database looks like.
    app.state.store.close().await;
    let r = reqwest::Client::new()
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert!(body["error"]["request_id"].is_string());
}
