//! The OpenAI Responses API: the response object, the event stream, stored conversations and the
//! checks OpenAI makes.

use llm_proxy_testkit::{SECOND_TOOL_ARGUMENTS, TOOL_ARGUMENTS};
use serde_json::{Value, json};

use crate::{Answer, Mock};

const PATH: &str = "/v1/responses";

fn request(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "instructions": "Be brief.",
           "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}],
           "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
                      "parameters": {"type": "object"}, "strict": false}]})
}

/// The `event:` names of a stream, checking on the way that each event's data repeats its name in
/// `type` and that `sequence_number` counts from 0.
fn names(answer: &Answer) -> Vec<String> {
    let events = answer.events();
    for (n, (name, data)) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(Some(data["type"].as_str().unwrap()), name.as_deref(), "{data}");
        assert_eq!(data["sequence_number"], n, "{data}");
    }
    events.into_iter().map(|(name, _)| name.unwrap()).collect()
}

fn error_of(answer: &Answer) -> Value {
    let body = answer.json();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{}", answer.text);
    body["error"].clone()
}

#[tokio::test]
async fn a_text_answer_is_a_response_object() {
    let m = Mock::start().await;
    let answer = m.post(PATH, &[], &request("gpt-mock", false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["object"], "response");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-mock");
    assert_eq!(body["instructions"], "Be brief.", "the request's settings are repeated");
    assert_eq!(body["tools"][0]["name"], "get_weather");
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(output[0]["status"], "completed");
    assert_eq!(
        output[0]["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "echo: What is the weather in Paris?"}])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 8, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11}),
        "instructions (2 words) and the input (6) are the prompt"
    );
    let recorded = m.mock.state.requests();
    assert_eq!(recorded[0].path, PATH);
    assert_eq!(recorded[0].body["instructions"], "Be brief.");
}

#[tokio::test]
async fn a_text_stream_follows_openais_event_sequence() {
    let m = Mock::start().await;
    let answer = m.post(PATH, &[], &request("gpt-mock", true)).await;
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(answer.text.starts_with("event: response.created\ndata: {"), "{}", answer.text);
    assert!(!answer.text.contains("[DONE]"), "the Responses API ends on response.completed");
    assert_eq!(
        names(&answer),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let data = answer.data();
    assert_eq!(data[0]["response"]["status"], "in_progress");
    assert_eq!(data[0]["response"]["output"], json!([]));
    let id = data[0]["response"]["id"].as_str().unwrap();
    let item_id = data[2]["item"]["id"].as_str().unwrap();
    assert_eq!(data[2]["item"]["status"], "in_progress");
    for delta in &data[3..=8] {
        assert_eq!((delta["item_id"].as_str(), &delta["output_index"]), (Some(item_id), &json!(0)), "{delta}");
        assert_eq!(delta["content_index"], 0);
    }
    let text: String = data
        .iter()
        .filter(|d| d["type"] == "response.output_text.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello w1 w2");
    assert_eq!(data[7]["text"], "Hello w1 w2");
    assert_eq!(data[9]["item"]["content"][0]["text"], "Hello w1 w2");
    let completed = &data[10]["response"];
    assert_eq!((completed["id"].as_str(), &completed["status"]), (Some(id), &json!("completed")));
    assert_eq!(completed["output"][0], data[9]["item"], "the response holds the finished items");
    assert_eq!((&completed["usage"]["input_tokens"], &completed["usage"]["output_tokens"]), (&json!(8), &json!(3)));
    let stats = m.get("/_mock/stats").await;
    assert_eq!(stats["streams_completed"], 1);
}

#[tokio::test]
async fn a_streamed_function_calls_argument_deltas_rebuild_the_arguments() {
    let m = Mock::start().await;
    let answer = m.post(PATH, &[], &request("gpt-tool", true)).await;
    let names = names(&answer);
    assert_eq!(names[2], "response.output_item.added");
    assert_eq!(
        &names[names.len() - 3..],
        ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    );
    let data = answer.data();
    let added = &data[2]["item"];
    assert_eq!(
        (&added["type"], &added["name"], &added["arguments"], &added["status"]),
        (&json!("function_call"), &json!("get_weather"), &json!(""), &json!("in_progress"))
    );
    let deltas: Vec<&Value> = data.iter().filter(|d| d["type"] == "response.function_call_arguments.delta").collect();
    assert!(deltas.len() > 3, "the arguments arrive in several pieces");
    assert!(deltas.iter().all(|d| d["item_id"] == added["id"] && d["output_index"] == 0));
    let arguments: String = deltas.iter().map(|d| d["delta"].as_str().unwrap()).collect();
    assert_eq!(arguments, TOOL_ARGUMENTS, "the bytes, exactly");
    let done = data.iter().find(|d| d["type"] == "response.function_call_arguments.done").unwrap();
    assert_eq!((done["arguments"].as_str(), &done["name"]), (Some(TOOL_ARGUMENTS), &json!("get_weather")));
    let completed = &data.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["call_id"], added["call_id"]);
    assert_eq!(completed["output"][0]["arguments"], TOOL_ARGUMENTS);

    let body = m.post(PATH, &[], &request("gpt-tools-2", false)).await.json();
    let calls = body["output"].as_array().unwrap();
    assert_eq!(
        (calls[0]["arguments"].as_str(), calls[1]["arguments"].as_str()),
        (Some(TOOL_ARGUMENTS), Some(SECOND_TOOL_ARGUMENTS))
    );
    assert_ne!(calls[0]["call_id"], calls[1]["call_id"]);
    assert_eq!(calls[1]["id"].as_str().map(|id| id.starts_with("fc_")), Some(true));
}

#[tokio::test]
async fn previous_response_id_continues_a_stored_conversation() {
    let m = Mock::start().await;
    let first = m
        .post(PATH, &[], &json!({"model": "gpt-echo", "input": "My name is Ada.", "instructions": "Be brief."}))
        .await
        .json();
    let id = first["id"].as_str().unwrap();

    let follow_up = json!({"model": "gpt-echo", "previous_response_id": id, "input": "What is my name?"});
    let second = m.post(PATH, &[], &follow_up).await.json();
    assert_eq!(second["previous_response_id"], id);
    let summary: Value = serde_json::from_str(second["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(summary["messages"], 3, "the stored user turn, the stored answer, the new question");
    assert_eq!(summary["last_user_text"], "What is my name?");
    assert_eq!(summary["system"], Value::Null, "instructions are not carried over");
    assert_eq!(second["usage"]["input_tokens"], 4, "the prompt is this request's input");

    // Chains go on: the third sees all five turns.
    let third = json!({"model": "gpt-echo", "previous_response_id": second["id"], "input": "And again?"});
    let text = m.post(PATH, &[], &third).await.json()["output"][0]["content"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["messages"], 5);

    let unknown =
        m.post(PATH, &[], &json!({"model": "gpt-echo", "previous_response_id": "resp_nope", "input": "hi"})).await;
    assert_eq!(unknown.status, 404);
    let error = error_of(&unknown);
    assert_eq!(error["message"], "Previous response with id 'resp_nope' not found.");
    assert_eq!(
        (&error["param"], &error["code"]),
        (&json!("previous_response_id"), &json!("previous_response_not_found"))
    );

    let unstored = m.post(PATH, &[], &json!({"model": "gpt-echo", "input": "hi", "store": false})).await.json();
    let after = json!({"model": "gpt-echo", "previous_response_id": unstored["id"], "input": "hi"});
    assert_eq!(m.post(PATH, &[], &after).await.status, 404, "store: false answers cannot be continued");
}

#[tokio::test]
async fn an_agent_runs_its_shell_and_reads_back_the_output() {
    let m = Mock::start().await;
    let shell = json!([{"type": "function", "name": "shell", "parameters": {"type": "object"}}]);
    let first = m
        .post(PATH, &[], &json!({"model": "gpt-agent", "stream": true, "input": "List the files.", "tools": shell}))
        .await;
    let data = first.data();
    let completed = &data.last().unwrap()["response"];
    let call = &completed["output"][0];
    assert_eq!((&call["type"], &call["name"]), (&json!("function_call"), &json!("shell")));
    assert!(call["arguments"].as_str().unwrap().contains("echo mock-agent-ok"));
    let call_id = call["call_id"].as_str().unwrap();

    // Continued from the stored response: the output alone answers the call.
    let output = json!({"type": "function_call_output", "call_id": call_id, "output": "mock-agent-ok\n"});
    let second = m
        .post(
            PATH,
            &[],
            &json!({"model": "gpt-agent", "previous_response_id": completed["id"], "input": [output], "tools": shell}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json()["output"][0]["content"][0]["text"], "The tool said: mock-agent-ok");

    // Stateless, as Codex CLI sends it (`store: false`, the call repeated in the input): the same.
    let stateless = json!({"model": "gpt-agent", "store": false, "tools": shell,
        "input": [{"role": "user", "content": "List the files."}, call, output]});
    assert_eq!(
        m.post(PATH, &[], &stateless).await.json()["output"][0]["content"][0]["text"],
        "The tool said: mock-agent-ok"
    );

    // An output whose call is nowhere: refused as OpenAI refuses it.
    let orphan = m.post(PATH, &[], &json!({"model": "gpt-agent", "tools": shell, "input": [output]})).await;
    assert_eq!(orphan.status, 400);
    let error = error_of(&orphan);
    assert_eq!(error["message"], format!("No tool call found for function call output with call_id {call_id}."));
    assert_eq!((&error["param"], &error["code"]), (&json!("input"), &Value::Null));

    // A call left unanswered in the continued conversation: refused too.
    let unanswered =
        json!({"model": "gpt-agent", "previous_response_id": completed["id"], "input": "and?", "tools": shell});
    let answer = m.post(PATH, &[], &unanswered).await;
    assert_eq!(error_of(&answer)["message"], format!("No tool output found for function call {call_id}."));
}

#[tokio::test]
async fn chat_completions_shapes_are_refused_in_openais_error_shape() {
    let m = Mock::start().await;
    let no_model = m.post(PATH, &[], &json!({"input": "hi"})).await;
    assert_eq!(no_model.status, 400);
    assert_eq!(
        error_of(&no_model),
        json!({"message": "Missing required parameter: 'model'.", "type": "invalid_request_error", "param": "model",
               "code": "missing_required_parameter"})
    );

    let tool_role = m
        .post(PATH, &[], &json!({"model": "m", "input": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]}))
        .await;
    let error = error_of(&tool_role);
    assert_eq!((&error["param"], &error["code"]), (&json!("input[0].role"), &json!("invalid_value")));
    assert!(error["message"].as_str().unwrap().starts_with("Invalid value: 'tool'."));

    let nested_tools = m
        .post(
            PATH,
            &[],
            &json!({"model": "m", "input": "hi",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}),
        )
        .await;
    assert_eq!(error_of(&nested_tools)["param"], "tools[0].name");

    let text_part = m
        .post(
            PATH,
            &[],
            &json!({"model": "m", "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
        )
        .await;
    assert_eq!(error_of(&text_part)["param"], "input[0].content[0].type");

    let messages = m.post(PATH, &[], &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(error_of(&messages)["message"], "Missing required parameter: 'input'.");

    let object_input = m.post(PATH, &[], &json!({"model": "m", "input": {"role": "user", "content": "hi"}})).await;
    assert_eq!(error_of(&object_input)["code"], "invalid_type");

    let no_tools = m.post(PATH, &[], &json!({"model": "m-tool", "input": "hi"})).await;
    assert_eq!(no_tools.status, 400, "a tool model needs a function tool");
    assert_eq!(m.mock.state.requests().len(), 7, "refused requests are recorded too");
}

#[tokio::test]
async fn usage_reasoning_cache_and_incomplete_answers() {
    let m = Mock::start().await;
    let answer = m.post(PATH, &[], &request("gpt-reason-cache", true)).await;
    let names = names(&answer);
    assert_eq!(
        &names[2..9],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
        ]
    );
    let data = answer.data();
    assert_eq!(data[8]["item"]["summary"], json!([{"type": "summary_text", "text": "Let me think about this."}]));
    assert_eq!(data[9]["output_index"], 1, "the message follows the reasoning");
    let usage = &data.last().unwrap()["response"]["usage"];
    assert_eq!(
        *usage,
        json!({"input_tokens": 1208, "input_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 1213})
    );

    let mut with_encrypted = request("gpt-reason", false);
    with_encrypted["include"] = json!(["reasoning.encrypted_content"]);
    let body = m.post(PATH, &[], &with_encrypted).await.json();
    assert_eq!(body["output"][0]["type"], "reasoning");
    assert!(body["output"][0]["encrypted_content"].is_string());
    assert_eq!(body["usage"]["output_tokens_details"]["reasoning_tokens"], 2);

    for (model, reason) in [("gpt-max-tokens", "max_output_tokens"), ("gpt-refuse", "content_filter")] {
        let body = m.post(PATH, &[], &request(model, false)).await.json();
        assert_eq!((&body["status"], &body["incomplete_details"]["reason"]), (&json!("incomplete"), &json!(reason)));
        assert_eq!(body["output"][0]["status"], "incomplete");
        let streamed = m.post(PATH, &[], &request(model, true)).await.data();
        let last = streamed.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["incomplete_details"]["reason"], reason);
    }

    let body = m.post(PATH, &[], &request("gpt-no-usage", false)).await.json();
    assert_eq!(body["usage"], Value::Null);
}

#[tokio::test]
async fn faults_speak_openai() {
    let m = Mock::start().await;
    let limited = m.post(PATH, &[], &request("gpt-fail-429", false)).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(limited.json()["error"]["type"], "rate_limit_exceeded");

    let answer = m.post(PATH, &[], &request("gpt-error-after-2", true)).await;
    let names = names(&answer);
    assert_eq!(names.last().map(String::as_str), Some("response.failed"));
    assert!(!names.iter().any(|n| n == "response.completed"));
    let data = answer.data();
    let failed = &data.last().unwrap()["response"];
    assert_eq!((&failed["status"], &failed["error"]["code"]), (&json!("failed"), &json!("server_error")));

    m.post("/_mock/down/gpt-down", &[], &json!({})).await;
    assert_eq!(m.post(PATH, &[], &request("gpt-down", true)).await.status, 503);
}
