use super::*;
use crate::unified::{Extra, SystemPart};
use proptest::prelude::*;
use serde_json::json;

/// The body as JSON, as the upstream receives it.
fn request_from_unified(r: &ChatRequest) -> Result<Value, TranslateError> {
    super::request_from_unified(r).map(|b| serde_json::to_value(b).unwrap())
}

fn count_tokens_body(r: &ChatRequest) -> Result<Value, TranslateError> {
    super::count_tokens_body(r).map(|b| serde_json::to_value(b).unwrap())
}

fn text(t: &str) -> Part {
    Part::Text { text: t.into(), cache_control: None }
}

fn user(content: Vec<Part>) -> Message {
    Message { role: Role::User, content }
}

fn assistant(content: Vec<Part>) -> Message {
    Message { role: Role::Assistant, content }
}

fn call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn result(call_id: &str, name: Option<&str>, content: Vec<ToolResultPart>, is_error: bool) -> Part {
    Part::ToolResult { call_id: call_id.into(), name: name.map(Into::into), content, is_error, cache_control: None }
}

fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest { model: "gemini-2.5-flash".into(), messages, ..ChatRequest::default() }
}

/// The function-calling conversation of Google's reference (system instruction, an image, a
/// declared tool, a call with a thought signature and its response), as a client would send it.
fn reference_conversation() -> ChatRequest {
    let signed_call = super::call_id::to_unified(
        None,
        || "call_Yq3aaN6V_0".into(),
        Some("CiQBcsjafLNBzYQqkfk7ruG5Y7Zs+QBVqN/KPQU5kh6VZ4Tr2x4="),
    );
    ChatRequest {
        model: "gemini-3-pro-preview".into(),
        system: vec![
            SystemPart { text: "You are a helpful weather assistant.".into(), cache_control: None },
            SystemPart { text: "Answer in one sentence.".into(), cache_control: None },
        ],
        messages: vec![
            user(vec![
                text("What is in this picture?"),
                Part::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgoAAAANSUhEUg==".into(),
                    },
                    cache_control: None,
                },
            ]),
            assistant(vec![text("The Eiffel Tower, in Paris.")]),
            user(vec![
                text("What's the temperature there, and at https://example.com/photos/london.webp?size=l ?"),
                Part::Image {
                    source: ImageSource::Url("https://example.com/photos/london.webp?size=l".into()),
                    cache_control: None,
                },
            ]),
            assistant(vec![
                Part::Thinking {
                    text: "The user wants two temperatures.".into(),
                    signature: Some("anthropic-sig".into()),
                },
                call(&signed_call, "get_current_temperature", r#"{"location": "Paris"}"#),
                call("call_Yq3aaN6V_1", "get_current_temperature", r#"{"location":"London","unit":"celsius"}"#),
            ]),
            user(vec![result(
                &signed_call,
                None,
                vec![ToolResultPart::Text(r#"{"temperature": 25, "unit": "celsius"}"#.into())],
                false,
            )]),
            user(vec![result(
                "call_Yq3aaN6V_1",
                Some("get_current_temperature"),
                vec![ToolResultPart::Text("18 degrees".into())],
                false,
            )]),
        ],
        max_tokens: Some(1024),
        temperature: Some(0.7),
        top_p: Some(0.95),
        top_k: Some(40),
        stop: vec!["END".into()],
        tools: vec![ToolDef {
            name: "get_current_temperature".into(),
            description: Some("Gets the current temperature for a given location.".into()),
            parameters: json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city name, e.g. San Francisco"},
                    "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", null]}
                },
                "required": ["location"],
                "additionalProperties": false
            }),
            cache_control: None,
        }],
        tool_choice: Some(ToolChoice::Auto),
        parallel_tool_calls: Some(true),
        reasoning: Some(Reasoning::Budget(2048)),
        seed: Some(42),
        presence_penalty: Some(0.5),
        frequency_penalty: Some(0.25),
        user: Some("user-123".into()),
        ..ChatRequest::default()
    }
}

#[test]
fn reference_conversation_body() {
    let body = request_from_unified(&reference_conversation()).unwrap();
    insta::assert_json_snapshot!(body);
    // What we send is what Gemini's own types describe.
    let typed: GenerateContentRequest = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), body);
}

#[test]
fn count_tokens_wraps_the_generate_request_with_its_model() {
    let r = reference_conversation();
    let body = count_tokens_body(&r).unwrap();
    let mut inner = request_from_unified(&r).unwrap();
    inner["model"] = json!("models/gemini-3-pro-preview");
    assert_eq!(body, json!({ "generateContentRequest": inner }));
}

#[test]
fn minimal_request_has_only_contents() {
    let body = request_from_unified(&request(vec![user(vec![text("Hi")])])).unwrap();
    assert_eq!(body, json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
}

#[test]
fn consecutive_turns_of_one_role_merge_and_empty_ones_vanish() {
    let r = request(vec![
        user(vec![text("a")]),
        user(vec![text("")]),
        user(vec![text("b")]),
        assistant(vec![Part::RedactedThinking { data: "xyz".into() }]),
        assistant(vec![text("c")]),
        assistant(vec![text("d")]),
    ]);
    let body = request_from_unified(&r).unwrap();
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]}
        ])
    );
}

#[test]
fn system_messages_mid_conversation_fold_into_the_system_instruction() {
    let mut r = request(vec![
        user(vec![text("a")]),
        Message { role: Role::System, content: vec![text("Answer in French.")] },
        user(vec![text("b")]),
    ]);
    r.system = vec![SystemPart { text: "Be brief.".into(), cache_control: None }];
    let body = request_from_unified(&r).unwrap();
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}));
    assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]));
}

#[test]
fn a_request_with_no_content_is_refused() {
    let err = request_from_unified(&request(vec![user(vec![text("")])])).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages"));
    assert!(request_from_unified(&request(vec![])).is_err());
}

#[test]
fn tool_call_arguments() {
    let body = |args: &str| {
        request_from_unified(&request(vec![user(vec![text("q")]), assistant(vec![call("c1", "f", args)])]))
            .map(|b| b["contents"][1]["parts"][0]["functionCall"].clone())
    };
    assert_eq!(body("").unwrap(), json!({"name": "f", "args": {}}));
    assert_eq!(body("  ").unwrap(), json!({"name": "f", "args": {}}));
    assert_eq!(body(r#"{"a":[1,{"b":null}]}"#).unwrap(), json!({"name": "f", "args": {"a": [1, {"b": null}]}}));
    let err = body("{not json").unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[1].content[0].arguments"));
    assert!(err.message.contains("not valid JSON"), "{}", err.message);
    let err = body("[1,2]").unwrap_err();
    assert!(err.message.contains("JSON object"), "{}", err.message);
}

#[test]
fn gemini_ids_and_signatures_go_back_where_they_came_from() {
    let id = super::call_id::to_unified(Some("fc_42"), || unreachable!(), Some("c2lnbmF0dXJl+/8="));
    let r = ChatRequest {
        model: "gemini-2.5-pro".into(),
        ..request(vec![
            user(vec![text("q")]),
            assistant(vec![call(&id, "f", "{}")]),
            user(vec![result(&id, None, vec![ToolResultPart::Text("ok".into())], false)]),
        ])
    };
    let body = request_from_unified(&r).unwrap();
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"id": "fc_42", "name": "f", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl+/8="})
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"id": "fc_42", "name": "f", "response": {"content": "ok"}}})
    );
}

#[test]
fn foreign_calls_get_the_skip_signature_sentinel_on_gemini_3_only() {
    let conversation = |model: &str| ChatRequest {
        model: model.into(),
        ..request(vec![
            user(vec![text("q")]),
            assistant(vec![call("toolu_01", "f", "{}"), call("toolu_02", "g", "{}")]),
            user(vec![
                result("toolu_01", None, vec![ToolResultPart::Text("1".into())], false),
                result("toolu_02", None, vec![ToolResultPart::Text("2".into())], false),
            ]),
        ])
    };
    let body = request_from_unified(&conversation("gemini-3-flash-preview")).unwrap();
    let parts = &body["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], json!("skip_thought_signature_validator"));
    assert_eq!(parts[1].get("thoughtSignature"), None);
    // Foreign ids are not sent as Gemini ids.
    assert_eq!(parts[0]["functionCall"], json!({"name": "f", "args": {}}));
    assert_eq!(body["contents"][2]["parts"][1]["functionResponse"], json!({"name": "g", "response": {"content": "2"}}));

    for older in ["gemini-2.5-flash", "models/gemini-2.0-flash", "gemini-1.5-pro", "gemma-3-27b-it"] {
        let body = request_from_unified(&conversation(older)).unwrap();
        assert_eq!(body["contents"][1]["parts"][0].get("thoughtSignature"), None, "{older}");
    }
}

#[test]
fn a_turn_gemini_signed_is_left_alone() {
    let signed = super::call_id::to_unified(None, || "call_x_0".into(), Some("AAAA"));
    let r = ChatRequest {
        model: "gemini-3-pro-preview".into(),
        ..request(vec![user(vec![text("q")]), assistant(vec![call(&signed, "f", "{}"), call("call_x_1", "f", "{}")])])
    };
    let body = request_from_unified(&r).unwrap();
    assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], json!("AAAA"));
    assert_eq!(body["contents"][1]["parts"][1].get("thoughtSignature"), None);
}

#[test]
fn tool_result_name_comes_from_the_nearest_earlier_call() {
    let r = request(vec![
        user(vec![text("q")]),
        assistant(vec![call("c1", "old", "{}")]),
        user(vec![result("c1", None, vec![], false)]),
        assistant(vec![call("c1", "new", "{}")]),
        user(vec![result("c1", None, vec![], false)]),
    ]);
    let body = request_from_unified(&r).unwrap();
    assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["name"], json!("old"));
    assert_eq!(
        body["contents"][4]["parts"][0]["functionResponse"],
        json!({"name": "new", "response": {"content": ""}})
    );
}

#[test]
fn tool_result_without_name_or_call_is_an_error_naming_its_path() {
    let r = request(vec![user(vec![text("q")]), user(vec![text("x"), result("nope", None, vec![], false)])]);
    let err = request_from_unified(&r).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[1].content[1]"));
    assert!(err.message.contains("`nope`"), "{}", err.message);
    // A call later in the conversation does not count.
    let r = request(vec![user(vec![result("c9", None, vec![], false)]), assistant(vec![call("c9", "f", "{}")])]);
    assert_eq!(request_from_unified(&r).unwrap_err().param.as_deref(), Some("messages[0].content[0]"));
}

#[test]
fn tool_result_bodies() {
    let response = |content: Vec<ToolResultPart>, is_error: bool| {
        let r = request(vec![user(vec![result("c", Some("f"), content, is_error)])]);
        request_from_unified(&r).unwrap()["contents"][0]["parts"].clone()
    };
    let t = |s: &str| ToolResultPart::Text(s.into());
    assert_eq!(response(vec![t(r#"{"temp": 21}"#)], false)[0]["functionResponse"]["response"], json!({"temp": 21}));
    assert_eq!(response(vec![t("[1,2]")], false)[0]["functionResponse"]["response"], json!({"content": "[1,2]"}));
    assert_eq!(response(vec![t("a"), t("b")], false)[0]["functionResponse"]["response"], json!({"content": "a\nb"}));
    assert_eq!(response(vec![t("boom")], true)[0]["functionResponse"]["response"], json!({"error": "boom"}));
    let parts = response(
        vec![
            t("see image"),
            ToolResultPart::Image(ImageSource::Base64 { media_type: "image/jpeg".into(), data: "/9j/4AAQ".into() }),
            ToolResultPart::Image(ImageSource::Url("gs://bucket/chart.png".into())),
        ],
        false,
    );
    assert_eq!(
        parts,
        json!([
            {"functionResponse": {"name": "f", "response": {"content": "see image"}}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
            {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/chart.png"}}
        ])
    );
}

#[test]
fn image_url_mime_types() {
    assert_eq!(image_mime_from_url("https://x.io/a/b.PNG"), "image/png");
    assert_eq!(image_mime_from_url("https://x.io/a.webp?w=1#f"), "image/webp");
    assert_eq!(image_mime_from_url("https://x.io/a.gif"), "image/gif");
    assert_eq!(image_mime_from_url("https://x.io/a.heic"), "image/heic");
    assert_eq!(image_mime_from_url("https://x.io/a.heif"), "image/heif");
    assert_eq!(image_mime_from_url("https://x.io/a.jpg"), "image/jpeg");
    assert_eq!(image_mime_from_url("https://x.io/image"), "image/jpeg");
    assert_eq!(image_mime_from_url("https://x.io"), "image/jpeg");
}

#[test]
fn tool_choices() {
    let with = |choice: Option<ToolChoice>| {
        let r = ChatRequest {
            tools: vec![ToolDef { name: "f".into(), description: None, parameters: json!({}), cache_control: None }],
            tool_choice: choice,
            ..request(vec![user(vec![text("q")])])
        };
        request_from_unified(&r).unwrap()
    };
    assert_eq!(with(None).get("toolConfig"), None);
    assert_eq!(with(None)["tools"], json!([{"functionDeclarations": [{"name": "f"}]}]));
    let mode = |c| with(Some(c))["toolConfig"]["functionCallingConfig"].clone();
    assert_eq!(mode(ToolChoice::Auto), json!({"mode": "AUTO"}));
    assert_eq!(mode(ToolChoice::None), json!({"mode": "NONE"}));
    assert_eq!(mode(ToolChoice::Required), json!({"mode": "ANY"}));
    assert_eq!(mode(ToolChoice::Tool("f".into())), json!({"mode": "ANY", "allowedFunctionNames": ["f"]}));

    // No tools, no tool config.
    let r = ChatRequest { tool_choice: Some(ToolChoice::Required), ..request(vec![user(vec![text("q")])]) };
    assert_eq!(request_from_unified(&r).unwrap().get("toolConfig"), None);
}

#[test]
fn tool_schemas_pass_as_json_schema() {
    assert_eq!(json_schema(&json!(null)), None);
    assert_eq!(json_schema(&json!({})), None);
    assert_eq!(json_schema(&json!({"$schema": "x"})), None);
    let schema = json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/n"}]}},
                        "$defs": {"n": {"type": "number"}}, "additionalProperties": false});
    assert_eq!(json_schema(&schema), Some(schema));
}

#[test]
fn response_formats() {
    let config = |format: ResponseFormat| {
        let r = ChatRequest { response_format: Some(format), ..request(vec![user(vec![text("q")])]) };
        request_from_unified(&r).unwrap().get("generationConfig").cloned()
    };
    assert_eq!(config(ResponseFormat::Text), None);
    assert_eq!(config(ResponseFormat::JsonObject), Some(json!({"responseMimeType": "application/json"})));
    let schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                        "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
    assert_eq!(
        config(ResponseFormat::JsonSchema { name: "answer".into(), schema, strict: Some(true) }),
        Some(json!({"responseMimeType": "application/json", "responseJsonSchema": {
            "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}))
    );
}

#[test]
fn reasoning_settings() {
    let thinking = |reasoning: Reasoning| {
        let r = ChatRequest { reasoning: Some(reasoning), ..request(vec![user(vec![text("q")])]) };
        request_from_unified(&r).unwrap()["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(thinking(Reasoning::Budget(3000)), json!({"thinkingBudget": 3000, "includeThoughts": true}));
    assert_eq!(thinking(Reasoning::Effort("high".into())), json!({"thinkingBudget": 16384, "includeThoughts": true}));
    assert_eq!(thinking(Reasoning::Effort("minimal".into())), json!({"thinkingBudget": 1024, "includeThoughts": true}));
    assert_eq!(thinking(Reasoning::Disabled), json!({"thinkingBudget": 0}));
    assert_eq!(thinking(Reasoning::Budget(u64::MAX))["thinkingBudget"], json!(24576), "clamped, never overflowing");
}

#[test]
fn gemini_extra_fields_are_kept_but_never_override() {
    let mut fields = Map::new();
    fields
        .insert("safetySettings".into(), json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]));
    fields.insert("contents".into(), json!("ignored"));
    let gemini = ChatRequest {
        extra: Extra { from: Some(WireProtocol::Gemini), fields: fields.clone() },
        ..request(vec![user(vec![text("q")])])
    };
    let body = request_from_unified(&gemini).unwrap();
    assert_eq!(body["safetySettings"][0]["threshold"], json!("BLOCK_NONE"));
    assert_eq!(body["contents"][0]["parts"][0]["text"], json!("q"));

    let openai = ChatRequest { extra: Extra { from: Some(WireProtocol::OpenAi), fields }, ..gemini };
    assert_eq!(request_from_unified(&openai).unwrap().get("safetySettings"), None);
}

proptest! {
    /// Whatever JSON object a client's arguments hold, Gemini receives that object.
    #[test]
    fn arguments_reach_gemini_unchanged(args in crate::translate::gemini::tests::json_object()) {
        let text = serde_json::to_string_pretty(&args).unwrap();
        let r = request(vec![user(vec![Part::Text { text: "q".into(), cache_control: None }]), assistant(vec![call("c", "f", &text)])]);
        let body = request_from_unified(&r).unwrap();
        prop_assert_eq!(&body["contents"][1]["parts"][0]["functionCall"]["args"], &args);
    }
}

#[test]
fn thinking_budgets_are_clamped_to_what_the_model_takes() {
    let mut r = ChatRequest {
        model: "gemini-2.5-flash".into(),
        reasoning: Some(Reasoning::Budget(31999)),
        ..Default::default()
    };
    r.messages.push(Message { role: Role::User, content: vec![Part::Text { text: "x".into(), cache_control: None }] });
    assert_eq!(request_from_unified(&r).unwrap()["generationConfig"]["thinkingConfig"]["thinkingBudget"], 24576);
    r.model = "gemini-2.5-pro".into();
    assert_eq!(request_from_unified(&r).unwrap()["generationConfig"]["thinkingConfig"]["thinkingBudget"], 31999);
}
