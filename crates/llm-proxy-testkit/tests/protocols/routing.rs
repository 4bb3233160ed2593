//! What routing and resilience tests need from the mock, on every protocol: models that fail a
//! few times and recover, rate limits with a short `retry-after`, context-window errors, models
//! taken down and brought back, health probes, per-model counts, embeddings that put paraphrases
//! close, and answers that name the model that served them.

use llm_proxy_testkit::embedding::{self, cosine};
use llm_proxy_testkit::{DEFAULT_GLM_KEY, jwt};
use serde_json::{Value, json};

use crate::{Answer, Mock, anthropic, gemini};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    OpenAi,
    Anthropic,
    Gemini,
    Glm,
}

const ALL: [Protocol; 4] = [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini, Protocol::Glm];

fn glm_auth() -> String {
    format!("Bearer {}", jwt::sign(DEFAULT_GLM_KEY, jwt::now_ms(), 3_600_000).unwrap())
}

impl Protocol {
    /// One chat request for `model`, as the protocol's clients send it.
    async fn chat(self, m: &Mock, model: &str, stream: bool) -> Answer {
        let messages = json!([{"role": "user", "content": "hello there"}]);
        match self {
            Protocol::OpenAi => {
                m.post("/v1/chat/completions", &[], &json!({"model": model, "stream": stream, "messages": messages}))
                    .await
            }
            Protocol::Anthropic => {
                let body = json!({"model": model, "max_tokens": 64, "stream": stream, "messages": messages});
                m.post("/v1/messages", &anthropic::HEADERS, &body).await
            }
            Protocol::Gemini => {
                let method = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
                let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]});
                m.post(&format!("/v1beta/models/{model}:{method}"), &gemini::HEADERS, &body).await
            }
            Protocol::Glm => {
                let body = json!({"model": model, "stream": stream, "messages": messages});
                m.post("/api/paas/v4/chat/completions", &[("authorization", &glm_auth())], &body).await
            }
        }
    }

    /// The error's kind in the protocol's own shape: OpenAI `error.type`, Anthropic `error.type`
    /// (under `type: error`), Gemini `error.status`, GLM `error.code`.
    fn error_kind(self, answer: &Answer) -> String {
        let body = answer.json();
        let kind = match self {
            Protocol::OpenAi => &body["error"]["type"],
            Protocol::Anthropic => {
                assert_eq!(body["type"], "error", "{}", answer.text);
                &body["error"]["type"]
            }
            Protocol::Gemini => {
                assert_eq!(body["error"]["code"], answer.status, "{}", answer.text);
                &body["error"]["status"]
            }
            Protocol::Glm => &body["error"]["code"],
        };
        kind.as_str().unwrap_or_else(|| panic!("{self:?}: no error kind in {}", answer.text)).to_string()
    }

    /// The kind each protocol gives a status.
    fn kind_of(self, status: u16) -> &'static str {
        match (self, status) {
            (Protocol::OpenAi, 429) => "rate_limit_exceeded",
            (Protocol::OpenAi, _) => "server_error",
            (Protocol::Anthropic, 429) => "rate_limit_error",
            (Protocol::Anthropic, _) => "api_error",
            (Protocol::Gemini, 429) => "RESOURCE_EXHAUSTED",
            (Protocol::Gemini, 500) => "INTERNAL",
            (Protocol::Gemini, _) => "UNAVAILABLE",
            (Protocol::Glm, 429) => "1302",
            (Protocol::Glm, _) => "500",
        }
    }

    /// The model an answer says served it: in the body, or in the first event of a stream.
    fn served_by(self, answer: &Answer, stream: bool) -> Value {
        let first = if stream { answer.data().into_iter().next().unwrap() } else { answer.json() };
        match self {
            Protocol::OpenAi | Protocol::Glm => first["model"].clone(),
            Protocol::Anthropic if stream => {
                assert_eq!(first["type"], "message_start");
                first["message"]["model"].clone()
            }
            Protocol::Anthropic => first["model"].clone(),
            Protocol::Gemini => first["modelVersion"].clone(),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Protocol::OpenAi => "oai",
            Protocol::Anthropic => "ant",
            Protocol::Gemini => "gem",
            Protocol::Glm => "glm",
        }
    }
}

#[tokio::test]
async fn a_flaky_model_fails_its_first_requests_then_recovers() {
    let m = Mock::start().await;
    for p in ALL {
        let model = format!("mock-flaky-2-{}", p.tag());
        for nth in 1..=2 {
            let failed = p.chat(&m, &model, false).await;
            assert_eq!((failed.status, p.error_kind(&failed)), (500, p.kind_of(500).into()), "{p:?} #{nth}");
        }
        for stream in [false, true] {
            let ok = p.chat(&m, &model, stream).await;
            assert_eq!(ok.status, 200, "{p:?}: {}", ok.text);
        }
        assert_eq!(m.mock.state.requests_for(&model), 4);
        // Counted per exact name: another name starts from the beginning.
        let other = p.chat(&m, &format!("{model}-again"), false).await;
        assert_eq!(other.status, 500, "{p:?}");
    }
}

#[tokio::test]
async fn flaky429_asks_to_retry_after_one_second() {
    let m = Mock::start().await;
    for p in ALL {
        let model = format!("mock-flaky429-1-{}", p.tag());
        let limited = p.chat(&m, &model, true).await;
        assert_eq!((limited.status, p.error_kind(&limited)), (429, p.kind_of(429).into()), "{p:?}");
        assert_eq!(limited.headers["retry-after"], "1", "{p:?}");
        match p {
            Protocol::OpenAi => assert_eq!(limited.headers["retry-after-ms"], "1000"),
            _ => assert!(!limited.headers.contains_key("retry-after-ms"), "{p:?}"),
        }
        if p == Protocol::Gemini {
            let details = &limited.json()["error"]["details"][0];
            assert_eq!(details["@type"], "type.googleapis.com/google.rpc.RetryInfo");
            assert_eq!(details["retryDelay"], "1s");
        }
        assert_eq!(p.chat(&m, &model, true).await.status, 200, "{p:?}: the second request goes through");
    }
    // `fail-429` keeps its 7 seconds.
    assert_eq!(Protocol::OpenAi.chat(&m, "mock-fail-429", false).await.headers["retry-after"], "7");
}

#[tokio::test]
async fn ctx_overflow_is_each_providers_context_window_error() {
    let m = Mock::start().await;
    for p in ALL {
        for stream in [false, true] {
            let answer = p.chat(&m, "mock-ctx-overflow", stream).await;
            assert_eq!(answer.status, 400, "{p:?}");
            let body = answer.json();
            match p {
                Protocol::OpenAi => {
                    assert_eq!(body["error"]["code"], "context_length_exceeded");
                    assert_eq!(body["error"]["type"], "invalid_request_error");
                    assert_eq!(body["error"]["param"], "messages");
                    let message = body["error"]["message"].as_str().unwrap();
                    assert!(message.starts_with("This model's maximum context length is 128000 tokens."), "{message}");
                }
                Protocol::Anthropic => {
                    assert_eq!(body["error"]["type"], "invalid_request_error");
                    assert_eq!(body["error"]["message"], "prompt is too long: 210000 tokens > 200000 maximum");
                }
                Protocol::Gemini => {
                    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
                    assert_eq!(
                        body["error"]["message"],
                        "The input token count (1100000) exceeds the maximum number of tokens allowed (1048576)."
                    );
                }
                Protocol::Glm => {
                    assert_eq!(body["error"], json!({"code": "1261", "message": "Prompt exceeds max length"}));
                }
            }
        }
    }
}

/// The health probe of `model` on `p` (GLM has none).
async fn probe(m: &Mock, p: Protocol, model: &str) -> Answer {
    match p {
        Protocol::OpenAi => m.get_with(&format!("/v1/models/{model}"), &[]).await,
        Protocol::Anthropic => m.get_with(&format!("/v1/models/{model}"), &anthropic::HEADERS).await,
        Protocol::Gemini => m.get_with(&format!("/v1beta/models/{model}"), &gemini::HEADERS).await,
        Protocol::Glm => unreachable!("GLM's API has no models endpoint"),
    }
}

#[tokio::test]
async fn a_model_taken_down_answers_503_until_brought_up() {
    let m = Mock::start().await;
    let up = m.post("/_mock/down/mock-a", &[], &json!({})).await;
    assert_eq!(up.json(), json!({"model": "mock-a", "down": true}));
    m.mock.state.set_down("text-embedding-down", true);
    assert_eq!(m.get("/_mock/stats").await["down"], json!(["mock-a", "text-embedding-down"]));

    for p in ALL {
        for stream in [false, true] {
            let down = p.chat(&m, "mock-a", stream).await;
            assert_eq!((down.status, p.error_kind(&down)), (503, p.kind_of(503).into()), "{p:?}");
        }
        assert_eq!(p.chat(&m, "mock-b", false).await.status, 200, "{p:?}: other models are up");
        if p != Protocol::Glm {
            assert_eq!(probe(&m, p, "mock-a").await.status, 503, "{p:?}");
            assert_eq!(probe(&m, p, "mock-b").await.status, 200, "{p:?}");
        }
    }
    // Embeddings too, on every protocol that has them.
    let openai = m.post("/v1/embeddings", &[], &json!({"model": "text-embedding-down", "input": "x"})).await;
    assert_eq!(openai.status, 503);
    let glm = m
        .post(
            "/api/paas/v4/embeddings",
            &[("authorization", &glm_auth())],
            &json!({"model": "text-embedding-down", "input": "x"}),
        )
        .await;
    assert_eq!((glm.status, Protocol::Glm.error_kind(&glm)), (503, "500".into()));
    let one = json!({"content": {"parts": [{"text": "x"}]}});
    let gem = m.post("/v1beta/models/text-embedding-down:embedContent", &gemini::HEADERS, &one).await;
    assert_eq!((gem.status, Protocol::Gemini.error_kind(&gem)), (503, "UNAVAILABLE".into()));

    // Brought back, by HTTP and by the Rust API, everything answers again.
    assert_eq!(m.post("/_mock/up/mock-a", &[], &json!({})).await.json()["down"], false);
    m.mock.state.set_down("text-embedding-down", false);
    assert!(!m.mock.state.is_down("mock-a"));
    for p in ALL {
        assert_eq!(p.chat(&m, "mock-a", false).await.status, 200, "{p:?}");
        if p != Protocol::Glm {
            assert_eq!(probe(&m, p, "mock-a").await.status, 200, "{p:?}");
        }
    }
    assert_eq!(m.post("/v1/embeddings", &[], &json!({"model": "text-embedding-down", "input": "x"})).await.status, 200);
    assert_eq!(m.get("/_mock/stats").await["down"], json!([]));
}

#[tokio::test]
async fn health_probes_have_each_providers_shape_and_are_counted_not_recorded() {
    let m = Mock::start().await;
    let openai = probe(&m, Protocol::OpenAi, "gpt-4o-mini").await;
    assert_eq!(openai.status, 200);
    assert_eq!(
        openai.json(),
        json!({"id": "gpt-4o-mini", "object": "model", "created": 1_700_000_000, "owned_by": "mock"})
    );
    // Names with slashes (`accounts/x/models/y`) are one model.
    assert_eq!(probe(&m, Protocol::OpenAi, "org/model-x").await.json()["id"], "org/model-x");

    let claude = probe(&m, Protocol::Anthropic, "claude-mock").await.json();
    assert_eq!(claude["type"], "model");
    assert_eq!(claude["id"], "claude-mock");
    assert!(claude["display_name"].is_string() && claude["created_at"].is_string());
    let no_key = m.get_with("/v1/models/claude-mock", &[("anthropic-version", "2023-06-01")]).await;
    assert_eq!((no_key.status, Protocol::Anthropic.error_kind(&no_key)), (401, "authentication_error".into()));
    let no_version = m.get_with("/v1/models/claude-mock", &[("x-api-key", anthropic::KEY)]).await;
    assert_eq!(no_version.status, 400);
    let list = m.get_with("/v1/models", &anthropic::HEADERS).await.json();
    assert_eq!((list["data"][0]["type"].clone(), list["has_more"].clone()), (json!("model"), json!(false)));
    assert_eq!(m.get_with("/v1/models", &[]).await.json()["object"], "list", "OpenAI's list is unchanged");

    let google = probe(&m, Protocol::Gemini, "gemini-mock").await.json();
    assert_eq!(google["name"], "models/gemini-mock");
    assert!(google["inputTokenLimit"].is_u64() && google["supportedGenerationMethods"].is_array());
    let no_key = m.get_with("/v1beta/models/gemini-mock", &[]).await;
    assert_eq!((no_key.status, Protocol::Gemini.error_kind(&no_key)), (403, "PERMISSION_DENIED".into()));
    assert_eq!(m.get_with("/v1beta/models/gemini-mock?key=k", &[]).await.status, 200);

    // Counted per model (refused probes not), and not recorded among the requests.
    probe(&m, Protocol::OpenAi, "gpt-4o-mini").await;
    let stats = m.get("/_mock/stats").await;
    assert_eq!(stats["probes"], json!({"claude-mock": 1, "gemini-mock": 2, "gpt-4o-mini": 2, "org/model-x": 1}));
    assert_eq!(m.mock.state.probes_for("gpt-4o-mini"), 2);
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["requests_by_model"], json!({}));
}

#[tokio::test]
async fn requests_are_counted_per_model_to_measure_a_split() {
    let m = Mock::start().await;
    for _ in 0..3 {
        Protocol::OpenAi.chat(&m, "split-a", false).await;
    }
    Protocol::Anthropic.chat(&m, "split-b", true).await;
    Protocol::Gemini.chat(&m, "split-b", false).await;
    m.post("/v1/embeddings", &[], &json!({"model": "split-e", "input": ["x", "y"]})).await;
    Protocol::OpenAi.chat(&m, "split-fail-500", false).await;
    // Refused for its key: never reached the model.
    m.post("/v1/messages", &[], &json!({"model": "split-b", "max_tokens": 5, "messages": []})).await;

    assert_eq!(
        m.get("/_mock/stats").await["requests_by_model"],
        json!({"split-a": 3, "split-b": 2, "split-e": 1, "split-fail-500": 1})
    );
    assert_eq!(m.mock.state.requests_for("split-a"), 3);
    assert_eq!(m.mock.state.requests_for("never-asked"), 0);
}

#[tokio::test]
async fn every_answer_names_the_model_that_served_it() {
    let m = Mock::start().await;
    for p in ALL {
        for stream in [false, true] {
            let model = format!("served-{}-{stream}", p.tag());
            let answer = p.chat(&m, &model, stream).await;
            assert_eq!(answer.status, 200, "{p:?}: {}", answer.text);
            assert_eq!(p.served_by(&answer, stream), model, "{p:?} stream={stream}");
        }
    }
}

/// The embeddings of `texts` on each protocol that has them, in the order given.
async fn embeddings(m: &Mock, texts: &[&str]) -> Vec<(&'static str, Vec<Vec<f64>>)> {
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    let openai = m.post("/v1/embeddings", &[], &json!({"model": "text-embedding-mock", "input": texts})).await.json();
    let glm = m
        .post(
            "/api/paas/v4/embeddings",
            &[("authorization", &glm_auth())],
            &json!({"model": "embedding-3", "input": texts}),
        )
        .await
        .json();
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| json!({"model": "models/text-embedding-mock", "content": {"parts": [{"text": t}]}}))
        .collect();
    let batch = m
        .post("/v1beta/models/text-embedding-mock:batchEmbedContents", &gemini::HEADERS, &json!({"requests": requests}))
        .await
        .json();
    let mut single = Vec::new();
    for t in texts {
        let one = json!({"content": {"parts": [{"text": t}]}});
        let answer = m.post("/v1beta/models/text-embedding-mock:embedContent", &gemini::HEADERS, &one).await.json();
        single.push(floats(&answer["embedding"]["values"]));
    }
    vec![
        ("openai", openai["data"].as_array().unwrap().iter().map(|d| floats(&d["embedding"])).collect()),
        ("glm", glm["data"].as_array().unwrap().iter().map(|d| floats(&d["embedding"])).collect()),
        ("gemini batch", batch["embeddings"].as_array().unwrap().iter().map(|e| floats(&e["values"])).collect()),
        ("gemini single", single),
    ]
}

#[tokio::test]
async fn embeddings_put_paraphrases_close_on_every_protocol() {
    let m = Mock::start().await;
    let texts = [
        "What's the weather in Paris?",
        "Tell me the weather forecast for Paris",
        "Write a python function to sort a list",
    ];
    let expected: Vec<Vec<f64>> = texts.iter().map(|t| embedding::embed(t)).collect();
    for (protocol, vectors) in embeddings(&m, &texts).await {
        assert_eq!(vectors, expected, "{protocol}: the same vectors everywhere");
        let [weather, forecast, code] = &vectors[..] else { panic!("{protocol}: three vectors") };
        assert_eq!(weather.len(), embedding::DIMENSIONS);
        assert!(cosine(weather, forecast) > 0.7, "{protocol}: {}", cosine(weather, forecast));
        assert!(cosine(weather, code) < 0.1 && cosine(forecast, code) < 0.1, "{protocol}");
    }
    // The shape and usage of the answer are as before.
    let answer =
        m.post("/v1/embeddings", &[], &json!({"model": "text-embedding-mock", "input": ["a b", "c"]})).await.json();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"][1]["index"], 1);
    assert_eq!(answer["data"][1]["object"], "embedding");
    assert_eq!(answer["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
}
