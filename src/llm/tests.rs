//! `LlmClient` against a wiremock provider speaking OpenAI's chat-completion shapes.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::answer::parse_answer;
use super::*;

const ANSWER: &str = r#"{"answer": "We open at 9am.", "confidence": 0.92, "category": " Hours ", "needs_human": false}"#;

/// A chat completion as OpenAI returns it, with `content` as the assistant message.
fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 412,
            "completion_tokens": 31,
            "total_tokens": 443,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_6f2eabb9a5"
    })
}

async fn provider_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn provider_with_content(content: &str) -> MockServer {
    provider_answering(ResponseTemplate::new(200).set_body_json(completion(content))).await
}

fn base_url(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

fn target<'a>(base_url: &'a str, key: Option<&'a SecretString>) -> LlmTarget<'a> {
    LlmTarget {
        provider: AiProvider::Openai,
        base_url,
        model: "gpt-4.1-mini",
        api_key: key,
    }
}

fn question() -> LlmRequest {
    LlmRequest {
        system_prompt: "You answer for Bakery. Reply with JSON.".into(),
        history: vec![
            ChatTurn {
                from_customer: true,
                text: "hi".into(),
            },
            ChatTurn {
                from_customer: false,
                text: "Hello! How can I help?".into(),
            },
            ChatTurn {
                from_customer: true,
                text: "when do you open?".into(),
            },
        ],
        max_output_tokens: Some(300),
    }
}

fn client() -> LlmClient {
    LlmClient::new(Duration::from_secs(1), Duration::from_secs(5))
}

/// Calls the provider at `server` as an OpenAI tenant with a key.
async fn ask(server: &MockServer) -> Result<LlmAnswer, LlmError> {
    let key = SecretString::from("sk-test-123");
    let base = base_url(server);
    client()
        .complete(&target(&base, Some(&key)), &question())
        .await
}

async fn requests_received(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

#[tokio::test]
async fn a_good_answer_is_parsed_and_the_request_carries_key_prompt_history_and_json_format() {
    let server = provider_with_content(ANSWER).await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!(
        answer,
        LlmAnswer {
            answer: "We open at 9am.".into(),
            confidence: 0.92,
            category: Some("hours".into()),
            needs_human: false,
            tokens_in: 412,
            tokens_out: 31,
        }
    );
    let requests = requests_received(&server).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.url.path(), "/v1/chat/completions");
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        "Bearer sk-test-123"
    );
    assert!(
        request.headers.get("x-title").is_none(),
        "OpenRouter headers only for OpenRouter"
    );
    let body: Value = request.body_json().unwrap();
    assert_eq!(body["model"], "gpt-4.1-mini");
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["temperature"], json!(0.2));
    assert_eq!(body["max_completion_tokens"], 300);
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("stream").is_none_or(|s| s == false));
    let roles_and_text: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles_and_text,
        [
            ("system", "You answer for Bakery. Reply with JSON."),
            ("user", "hi"),
            ("assistant", "Hello! How can I help?"),
            ("user", "when do you open?"),
        ]
    );
}

#[tokio::test]
async fn a_target_without_a_key_sends_no_authorization_header() {
    let server = provider_with_content(ANSWER).await;
    let base = base_url(&server);
    let ollama = LlmTarget {
        provider: AiProvider::Compatible,
        base_url: &base,
        model: "llama3.2",
        api_key: None,
    };

    client()
        .complete(&ollama, &question())
        .await
        .expect("answer");

    let requests = requests_received(&server).await;
    assert!(requests[0].headers.get("authorization").is_none());
    let body: Value = requests[0].body_json().unwrap();
    assert_eq!(body["max_tokens"], 300, "non-OpenAI servers get max_tokens");
    assert!(body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn openrouter_calls_carry_the_app_attribution_headers() {
    let server = provider_with_content(ANSWER).await;
    let base = format!("{}/v1/", server.uri()); // a trailing slash is tolerated
    let key = SecretString::from("sk-or-v1-abc");
    let openrouter = LlmTarget {
        provider: AiProvider::Openrouter,
        base_url: &base,
        model: "meta-llama/llama-3.3-70b-instruct",
        api_key: Some(&key),
    };

    client()
        .complete(&openrouter, &question())
        .await
        .expect("answer");

    let request = &requests_received(&server).await[0];
    assert_eq!(request.url.path(), "/v1/chat/completions");
    assert_eq!(
        request.headers.get("http-referer").unwrap(),
        "https://github.com/parley"
    );
    assert_eq!(request.headers.get("x-title").unwrap(), "parley");
}

#[tokio::test]
async fn a_500_comes_back_at_once_after_exactly_one_request() {
    let server =
        provider_answering(ResponseTemplate::new(500).set_body_string("upstream exploded")).await;
    let started = Instant::now();

    let error = ask(&server).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Status { status: 500 }),
        "{error:?}"
    );
    assert_eq!(error.code(), "llm_http_error");
    assert_eq!(
        requests_received(&server).await.len(),
        1,
        "no hidden retries"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_429_comes_back_after_exactly_one_request() {
    let server = provider_answering(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(
                json!({"error": {"message": "Rate limit reached", "type": "requests",
                "param": null, "code": "rate_limit_exceeded"}}),
            ),
    )
    .await;

    let error = ask(&server).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Status { status: 429 }),
        "{error:?}"
    );
    assert_eq!(
        requests_received(&server).await.len(),
        1,
        "no hidden retries"
    );
}

#[tokio::test]
async fn an_error_status_with_a_non_openai_body_keeps_its_status() {
    // The Hugging Face router answers errors as {"error": "…"}, which async-openai's own
    // error parsing would report as a deserialisation failure.
    let server = provider_answering(
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": "Invalid credentials in Authorization header"})),
    )
    .await;

    let error = ask(&server).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Status { status: 401 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_provider_slower_than_the_total_timeout_is_a_timeout() {
    let server = provider_answering(
        ResponseTemplate::new(200)
            .set_body_json(completion(ANSWER))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let base = base_url(&server);
    let client = LlmClient::new(Duration::from_secs(1), Duration::from_millis(300));
    let started = Instant::now();

    let error = client
        .complete(&target(&base, None), &question())
        .await
        .unwrap_err();

    assert!(matches!(error, LlmError::Timeout), "{error:?}");
    assert_eq!(error.code(), "llm_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);

    let error = client()
        .complete(&target(&base, None), &question())
        .await
        .unwrap_err();

    assert!(matches!(error, LlmError::Transport(_)), "{error:?}");
    assert_eq!(error.code(), "llm_unreachable");
}

#[tokio::test]
async fn content_that_is_not_json_is_malformed_and_still_metered() {
    let server = provider_with_content("We open at 9am, see you then!").await;

    let error = ask(&server).await.unwrap_err();

    assert!(matches!(error, LlmError::Malformed { .. }), "{error:?}");
    assert_eq!(error.code(), "llm_malformed_output");
    assert_eq!(error.usage(), Some((412, 31)));
    assert!(
        !error.to_string().contains("9am"),
        "errors never quote the model's output"
    );
}

#[tokio::test]
async fn json_without_confidence_is_malformed() {
    let server =
        provider_with_content(r#"{"answer": "We open at 9am.", "needs_human": false}"#).await;

    let error = ask(&server).await.unwrap_err();

    assert!(matches!(error, LlmError::Malformed { .. }), "{error:?}");
}

#[tokio::test]
async fn a_json_answer_in_a_markdown_fence_is_accepted() {
    let fenced = format!("\n```json\n{ANSWER}\n```\n");
    let server = provider_with_content(&fenced).await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!(answer.answer, "We open at 9am.");
}

#[tokio::test]
async fn a_numeric_string_confidence_is_accepted() {
    let server =
        provider_with_content(r#"{"answer": "Yes.", "confidence": "0.75", "category": null}"#)
            .await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!(answer.confidence, 0.75);
    assert_eq!(answer.category, None);
    assert!(!answer.needs_human, "needs_human defaults to false");
}

#[tokio::test]
async fn a_confidence_above_one_is_clamped() {
    let server =
        provider_with_content(r#"{"answer": "Yes.", "confidence": 1.7, "category": "none"}"#).await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!(answer.confidence, 1.0);
    assert_eq!(answer.category, None);
}

#[tokio::test]
async fn openrouters_finish_reason_error_is_refused_and_metered() {
    // OpenRouter's shape when the upstream provider fails mid-generation; async-openai's
    // typed response would reject `finish_reason: "error"`. Classified as Refused: the
    // provider produced no answer, as opposed to producing one in the wrong shape.
    let body = json!({
        "id": "gen-1747236571-Xb3hGk7cQ2v9eLr",
        "provider": "DeepInfra",
        "model": "meta-llama/llama-3.3-70b-instruct",
        "object": "chat.completion",
        "created": 1_747_236_571,
        "choices": [{
            "logprobs": null,
            "finish_reason": "error",
            "native_finish_reason": "error",
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": null, "reasoning": null},
            "error": {"code": 502, "message": "Upstream error from DeepInfra"}
        }],
        "usage": {"prompt_tokens": 398, "completion_tokens": 0, "total_tokens": 398}
    });
    let server = provider_answering(ResponseTemplate::new(200).set_body_json(body)).await;

    let error = ask(&server).await.unwrap_err();

    assert!(matches!(error, LlmError::Refused { .. }), "{error:?}");
    assert_eq!(error.code(), "llm_refused");
    assert_eq!(error.usage(), Some((398, 0)));
}

#[tokio::test]
async fn a_content_filter_or_a_refusal_is_refused() {
    let mut filtered = completion("");
    filtered["choices"][0]["finish_reason"] = json!("content_filter");
    let mut refusal = completion("");
    refusal["choices"][0]["message"]["content"] = Value::Null;
    refusal["choices"][0]["message"]["refusal"] = json!("I can't help with that.");

    for body in [filtered, refusal] {
        let server = provider_answering(ResponseTemplate::new(200).set_body_json(body)).await;

        let error = ask(&server).await.unwrap_err();

        assert!(matches!(error, LlmError::Refused { .. }), "{error:?}");
    }
}

#[tokio::test]
async fn tgis_eos_token_finish_reason_is_accepted() {
    let mut body = completion(ANSWER);
    body["choices"][0]["finish_reason"] = json!("eos_token");
    let server = provider_answering(ResponseTemplate::new(200).set_body_json(body)).await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!(answer.confidence, 0.92);
}

#[tokio::test]
async fn a_response_without_choices_is_malformed() {
    let mut body = completion(ANSWER);
    body["choices"] = json!([]);
    let server = provider_answering(ResponseTemplate::new(200).set_body_json(body)).await;

    let error = ask(&server).await.unwrap_err();

    assert!(matches!(error, LlmError::Malformed { .. }), "{error:?}");
    assert_eq!(error.usage(), Some((412, 31)));
}

#[tokio::test]
async fn a_200_whose_body_is_not_json_is_malformed() {
    let server =
        provider_answering(ResponseTemplate::new(200).set_body_string("<html>proxy</html>")).await;

    let error = ask(&server).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Malformed { usage: None, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_response_without_usage_counts_zero_tokens() {
    let mut body = completion(ANSWER);
    body.as_object_mut().unwrap().remove("usage");
    let server = provider_answering(ResponseTemplate::new(200).set_body_json(body)).await;

    let answer = ask(&server).await.expect("answer");

    assert_eq!((answer.tokens_in, answer.tokens_out), (0, 0));
}

#[test]
fn an_empty_answer_is_accepted_only_when_a_human_is_needed() {
    let handoff =
        parse_answer(r#"{"answer": "", "confidence": 0.1, "needs_human": true}"#).unwrap();
    assert!(handoff.needs_human);

    assert!(parse_answer(r#"{"answer": "  ", "confidence": 0.9, "needs_human": false}"#).is_err());
}

#[test]
fn text_around_the_object_and_extra_fields_are_ignored() {
    let parsed = parse_answer(
        "<think>they ask about hours</think>\n{\"answer\": \"9am\", \"confidence\": 0.8, \"lang\": \"en\"}",
    )
    .unwrap();

    assert_eq!(parsed.answer, "9am");
}

#[test]
fn unusable_confidence_and_needs_human_values_are_rejected() {
    for content in [
        r#"{"answer": "x", "confidence": "high"}"#,
        r#"{"answer": "x", "confidence": null}"#,
        r#"{"answer": "x", "confidence": 0.5, "needs_human": "maybe"}"#,
        r#"{"answer": 42, "confidence": 0.5}"#,
        r#"["answer", 0.5]"#,
    ] {
        assert!(parse_answer(content).is_err(), "{content}");
    }
}
