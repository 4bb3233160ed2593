//! The examples of OpenAI's Responses API reference (in `fixtures/responses/`: the examples of
//! `POST /responses` in openai/openai-openapi), through every direction.
//!
//! Two fixtures are composed from the reference's schemas, as it shows no such example whole:
//! `request_function_output.json` is the function example's second turn (its question, the
//! `function_call` item of `response_function.json`, and a `function_call_output`), and
//! `request_structured.json` a Structured Outputs request.
//!
//! The reference's examples were written over time and the API has grown fields since (`logprobs`
//! on text, `completed_at`, `sequence_number`, input token details). An answer here must have every
//! field an example shows, with its value; it may add only the newer fields, named per test.

use llm_proxy_protocol::json::decode;
use llm_proxy_protocol::openai::ResponsesRequest;
use llm_proxy_protocol::sse::{SseDecoder, SseEvent};
use serde_json::{Value, json};

use super::*;
use crate::provider::{ChatChunk, TokenUsage};
use crate::time::UnixMillis;
use crate::translate::{AnswerIds, StreamEncoder};
use crate::unified::{
    ChatRequest, ChatResponse, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, StopReason, StreamEvent,
    SystemPart, ToolChoice, ToolResultPart, WireProtocol,
};

const REQUEST_TEXT: &str = include_str!("../../../fixtures/responses/request_text.json");
const REQUEST_IMAGE: &str = include_str!("../../../fixtures/responses/request_image.json");
const REQUEST_FUNCTION: &str = include_str!("../../../fixtures/responses/request_function.json");
const REQUEST_FUNCTION_OUTPUT: &str = include_str!("../../../fixtures/responses/request_function_output.json");
const REQUEST_STRUCTURED: &str = include_str!("../../../fixtures/responses/request_structured.json");
const REQUEST_REASONING: &str = include_str!("../../../fixtures/responses/request_reasoning.json");
const REQUEST_STREAM: &str = include_str!("../../../fixtures/responses/request_stream.json");
const RESPONSE_TEXT: &str = include_str!("../../../fixtures/responses/response_text.json");
const RESPONSE_IMAGE: &str = include_str!("../../../fixtures/responses/response_image.json");
const RESPONSE_FUNCTION: &str = include_str!("../../../fixtures/responses/response_function.json");
const STREAM_TEXT: &str = include_str!("../../../fixtures/responses/stream_text.sse");

fn request(fixture: &str) -> ResponsesRequest {
    decode(fixture.as_bytes()).expect("the reference's request decodes")
}

fn unified(fixture: &str) -> ChatRequest {
    request_to_unified(request(fixture), &[]).expect("the reference's request translates")
}

fn text(t: &str) -> Part {
    Part::Text { text: t.into(), cache_control: None }
}

/// Asserts that `ours` has every field of `documented` with the same value, ids aside (those are
/// this answer's own: they must keep their prefix), and no field but those and `newer`.
fn assert_documented(ours: &Value, documented: &Value, newer: &[&str], at: &str) {
    match (ours, documented) {
        (Value::Object(o), Value::Object(d)) => {
            for (key, want) in d {
                let path = format!("{at}.{key}");
                let got = o.get(key).unwrap_or_else(|| panic!("{path} is missing"));
                match (key.as_str(), got.as_str(), want.as_str()) {
                    ("id" | "item_id", Some(got), Some(want)) => {
                        let prefix = |id: &str| id.split('_').next().unwrap_or_default().to_string();
                        assert_eq!(prefix(got), prefix(want), "{path}");
                    }
                    _ => assert_documented(got, want, newer, &path),
                }
            }
            for key in o.keys().filter(|k| !d.contains_key(*k)) {
                assert!(newer.contains(&key.as_str()), "{at}.{key} is not in the reference");
            }
        }
        (Value::Array(o), Value::Array(d)) => {
            assert_eq!(o.len(), d.len(), "{at}: {ours} vs {documented}");
            for (i, (o, d)) in o.iter().zip(d).enumerate() {
                assert_documented(o, d, newer, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(ours, documented, "{at}"),
    }
}

fn sse(text: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut decoder = SseDecoder::new();
    decoder.feed(text.as_bytes(), &mut events).expect("an event stream");
    decoder.finish(&mut events);
    events
}

fn at_seconds(v: &Value) -> UnixMillis {
    UnixMillis::from_millis(v.as_u64().expect("a time in seconds") * 1000)
}

#[test]
fn text_and_image_inputs_are_user_turns() {
    let r = unified(REQUEST_TEXT);
    assert_eq!(r.model, "gpt-5.4");
    assert_eq!(
        r.messages,
        vec![Message {
            role: Role::User,
            content: vec![text("Tell me a three sentence bedtime story about a unicorn.")]
        }]
    );
    assert_eq!((r.stream, r.stream_usage, r.max_tokens), (false, false, None));
    assert_eq!(r.extra.from, Some(WireProtocol::OpenAi));
    assert!(r.extra.fields.is_empty(), "no Responses field is a Chat Completions field");
    let r = unified(REQUEST_IMAGE);
    let url = "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg";
    assert_eq!(
        r.messages[0].content,
        vec![text("what is in this image?"), Part::Image { source: ImageSource::Url(url.into()), cache_control: None }]
    );
}

#[test]
fn function_tools_become_tool_definitions() {
    let r = unified(REQUEST_FUNCTION);
    let want: Value = serde_json::from_str::<Value>(REQUEST_FUNCTION).unwrap()["tools"][0]["parameters"].clone();
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].name, "get_current_weather");
    assert_eq!(r.tools[0].description.as_deref(), Some("Get the current weather in a given location"));
    assert_eq!(r.tools[0].parameters, want, "the schema as sent");
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
}

#[test]
fn a_function_result_answers_the_call_of_the_turn_before() {
    let r = unified(REQUEST_FUNCTION_OUTPUT);
    assert_eq!(r.messages.iter().map(|m| m.role).collect::<Vec<_>>(), [Role::User, Role::Assistant, Role::User]);
    assert_eq!(
        r.messages[1].content,
        vec![Part::ToolCall {
            id: "call_unLAR8MvFNptuiZK6K6HCy5k".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location":"Boston, MA","unit":"celsius"}"#.into(),
        }]
    );
    assert_eq!(
        r.messages[2].content,
        vec![Part::ToolResult {
            call_id: "call_unLAR8MvFNptuiZK6K6HCy5k".into(),
            name: Some("get_current_weather".into()),
            content: vec![ToolResultPart::Text(r#"{"temperature":"18","unit":"celsius"}"#.into())],
            is_error: false,
            cache_control: None,
        }]
    );
}

#[test]
fn structured_output_reasoning_and_instructions() {
    let r = unified(REQUEST_STRUCTURED);
    assert_eq!(r.system, vec![SystemPart { text: "Extract the event information.".into(), cache_control: None }]);
    assert_eq!(r.messages.len(), 1, "the system message leads, so it is the system prompt");
    let format: Value = serde_json::from_str::<Value>(REQUEST_STRUCTURED).unwrap()["text"]["format"].clone();
    assert_eq!(
        r.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "calendar_event".into(),
            schema: format["schema"].clone(),
            strict: Some(true)
        })
    );
    assert_eq!(unified(REQUEST_REASONING).reasoning, Some(Reasoning::Effort("high".into())));
    let r = unified(REQUEST_STREAM);
    assert_eq!(r.system, vec![SystemPart { text: "You are a helpful assistant.".into(), cache_control: None }]);
    assert!(r.stream && r.stream_usage, "a Responses stream always ends with the usage");
}

/// The reference's answers, made from what an upstream of another protocol would have said.
#[test]
fn documented_responses_are_produced_field_for_field() {
    let cases = [
        (REQUEST_TEXT, RESPONSE_TEXT, 36, 87, &["logprobs"][..]),
        (REQUEST_IMAGE, RESPONSE_IMAGE, 328, 52, &["logprobs"][..]),
        (REQUEST_FUNCTION, RESPONSE_FUNCTION, 291, 23, &["input_tokens_details"][..]),
    ];
    for (req, documented, input, output, newer) in cases {
        let documented: Value = serde_json::from_str(documented).unwrap();
        let meta =
            ResponseMeta::of(&request(req), at_seconds(&documented["created_at"]), AnswerIds::from_seed("fixture"));
        let content = documented["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| match item["type"].as_str().unwrap() {
                "message" => text(item["content"][0]["text"].as_str().unwrap()),
                _ => Part::ToolCall {
                    id: item["call_id"].as_str().unwrap().into(),
                    name: item["name"].as_str().unwrap().into(),
                    arguments: item["arguments"].as_str().unwrap().into(),
                },
            })
            .collect();
        let answer = ChatResponse {
            id: "chatcmpl-upstream".into(),
            model: "upstream-model".into(),
            content,
            stop_reason: Some(StopReason::EndTurn),
            usage: Some(TokenUsage { prompt_tokens: input, completion_tokens: output, ..Default::default() }),
        };
        let ours = response_from_unified(
            &answer,
            &meta,
            at_seconds(&documented["completed_at"]),
            AnswerIds::from_seed("fixture"),
        );
        assert_documented(&ours, &documented, newer, "response");
    }
}

/// The reference's streaming example, from the same answer told by an upstream in two text deltas.
#[test]
fn the_documented_text_stream_is_produced_event_for_event() {
    let documented = sse(STREAM_TEXT);
    let first: Value = serde_json::from_str(&documented[0].data).unwrap();
    let meta = ResponseMeta::of(
        &request(REQUEST_STREAM),
        at_seconds(&first["response"]["created_at"]),
        AnswerIds::from_seed("fixture"),
    );
    let mut encoder =
        ResponsesEncoder::new(meta, AnswerIds::from_seed("fixture"), || UnixMillis::from_millis(1_741_290_959_000));
    let mut ours: Vec<ChatChunk> = Vec::new();
    for event in [
        StreamEvent::Start { id: "msg_upstream".into(), model: "claude".into() },
        StreamEvent::Text("Hi".into()),
        StreamEvent::Text(" there! How can I assist you today?".into()),
        StreamEvent::Stop(StopReason::EndTurn),
        StreamEvent::Usage(TokenUsage { prompt_tokens: 37, completion_tokens: 11, ..Default::default() }),
    ] {
        encoder.encode(event, &mut ours);
    }
    encoder.finish(&mut ours);
    for (i, chunk) in ours.iter().enumerate() {
        let v: Value = serde_json::from_str(&chunk.data).unwrap();
        assert_eq!(v["sequence_number"], i, "sequence numbers count the events from 0");
        assert_eq!(chunk.event.as_deref(), v["type"].as_str(), "the SSE name is the event's type");
    }
    // The reference shows the first delta and elides the rest (`...`): so is the second one here.
    let second_delta = 5;
    assert_eq!(ours[second_delta].event.as_deref(), Some("response.output_text.delta"));
    let shown: Vec<&ChatChunk> = ours.iter().enumerate().filter(|(i, _)| *i != second_delta).map(|(_, c)| c).collect();
    assert_eq!(shown.len(), documented.len());
    for (ours, documented) in shown.into_iter().zip(&documented) {
        assert_eq!(ours.event.as_deref(), documented.event.as_deref());
        let (o, d): (Value, Value) =
            (serde_json::from_str(&ours.data).unwrap(), serde_json::from_str(&documented.data).unwrap());
        let name = documented.event.as_deref().unwrap_or_default();
        assert_documented(&o, &d, &["sequence_number", "logprobs", "completed_at", "input_tokens_details"], name);
    }
    assert_eq!(ours.last().and_then(|c| c.usage).map(|u| u.prompt_tokens), Some(37), "metered at the end");
}

/// The reference shows no whole function-call stream, only each event: this checks the order the
/// reference describes, each event's required fields (those of its schema), and the examples'
/// values.
#[test]
fn a_function_call_stream_has_the_documented_events() {
    let documented: Value = serde_json::from_str(RESPONSE_FUNCTION).unwrap();
    let call = &documented["output"][0];
    let meta = ResponseMeta::of(
        &request(REQUEST_FUNCTION),
        at_seconds(&documented["created_at"]),
        AnswerIds::from_seed("fixture"),
    );
    let mut encoder =
        ResponsesEncoder::new(meta, AnswerIds::from_seed("fixture"), || UnixMillis::from_millis(1_741_294_022_000));
    let mut ours = Vec::new();
    for event in [
        StreamEvent::ToolCallStart {
            index: 0,
            id: call["call_id"].as_str().unwrap().into(),
            name: "get_current_weather".into(),
        },
        StreamEvent::ToolCallArgs { index: 0, fragment: r#"{"location":"#.into() },
        StreamEvent::ToolCallArgs { index: 0, fragment: r#""Boston, MA","unit":"celsius"}"#.into() },
        StreamEvent::Stop(StopReason::ToolUse),
        StreamEvent::Usage(TokenUsage { prompt_tokens: 291, completion_tokens: 23, ..Default::default() }),
    ] {
        encoder.encode(event, &mut ours);
    }
    encoder.finish(&mut ours);
    let events: Vec<Value> = ours.iter().map(|c| serde_json::from_str(&c.data).unwrap()).collect();
    let required: &[(&str, &[&str])] = &[
        ("response.created", &["type", "response", "sequence_number"]),
        ("response.in_progress", &["type", "response", "sequence_number"]),
        ("response.output_item.added", &["type", "output_index", "item", "sequence_number"]),
        ("response.function_call_arguments.delta", &["type", "item_id", "output_index", "delta", "sequence_number"]),
        ("response.function_call_arguments.delta", &["type", "item_id", "output_index", "delta", "sequence_number"]),
        (
            "response.function_call_arguments.done",
            &["type", "item_id", "name", "output_index", "arguments", "sequence_number"],
        ),
        ("response.output_item.done", &["type", "output_index", "item", "sequence_number"]),
        ("response.completed", &["type", "response", "sequence_number"]),
    ];
    assert_eq!(events.len(), required.len());
    for (event, (name, fields)) in events.iter().zip(required) {
        assert_eq!(event["type"], *name);
        let mut keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{name}");
    }
    let item_id = events[2]["item"]["id"].as_str().unwrap();
    assert!(item_id.starts_with("fc_"));
    assert_eq!(
        events[2]["item"],
        json!({"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
        "call_id": call["call_id"], "name": "get_current_weather"})
    );
    assert_eq!(events[5]["arguments"], call["arguments"]);
    assert_eq!(events[5]["item_id"], item_id);
    assert_documented(&events[6]["item"], call, &[], "item");
    assert_documented(&events[7]["response"], &documented, &["input_tokens_details"], "response");
}
