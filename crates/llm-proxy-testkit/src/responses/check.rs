//! A Responses API request checked as OpenAI checks it where a gateway's translation bug would
//! show: Chat Completions shapes sent to the wrong API (a `tool` role, `text` parts, nested
//! `function` tools), parts on the wrong side of the conversation, tool outputs without their
//! call and calls without their output. Each problem is a [`Refusal`] worded as OpenAI words it,
//! with the `param` at fault.

use std::collections::HashSet;

use serde_json::Value;

use crate::refusal::Refusal;

/// Input item types the API knows (`ResponseInputItemParam` in OpenAI's SDKs).
const ITEM_TYPES: [&str; 30] = [
    "message",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "function_call",
    "function_call_output",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "reasoning",
    "compaction",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call_output",
    "custom_tool_call",
    "compaction_trigger",
    "item_reference",
    "program",
    "program_output",
];

/// Tool types the API knows (`ToolParam`): `function` is the only one the mock calls.
const TOOL_TYPES: [&str; 18] = [
    "function",
    "file_search",
    "computer",
    "computer_use_preview",
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "mcp",
    "code_interpreter",
    "programmatic_tool_calling",
    "image_generation",
    "local_shell",
    "shell",
    "custom",
    "namespace",
    "tool_search",
    "apply_patch",
];

const ROLES: [&str; 4] = ["assistant", "system", "developer", "user"];
/// Content parts of a message from the user's side, and of one from the assistant.
const INPUT_PARTS: [&str; 3] = ["input_text", "input_image", "input_file"];
const OUTPUT_PARTS: [&str; 2] = ["output_text", "refusal"];

/// The type of an input item: its `type`, or, as the API infers it, `message` for an item with a
/// `role` and `item_reference` for one with only an `id`.
pub(crate) fn item_type(item: &Value) -> &str {
    match item["type"].as_str() {
        Some(t) => t,
        None if item.get("role").is_some() => "message",
        None if item.get("id").is_some() => "item_reference",
        None => "",
    }
}

/// The request's own problems, before its conversation is looked up.
pub(crate) fn shape(body: &Value) -> Result<(), Refusal> {
    if !body["model"].is_string() {
        return Err(Refusal::missing("model"));
    }
    if !matches!(body["stream"], Value::Null | Value::Bool(_)) {
        return Err(Refusal::invalid_type("stream", "a boolean", &body["stream"]));
    }
    if !matches!(body["instructions"], Value::Null | Value::String(_)) {
        return Err(Refusal::invalid_type("instructions", "a string", &body["instructions"]));
    }
    match &body["max_output_tokens"] {
        Value::Null => {}
        v => match v.as_u64() {
            Some(n) if n >= 16 => {}
            Some(n) => {
                return Err(Refusal::new(
                    format!(
                        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {n} instead."
                    ),
                    "max_output_tokens",
                    Some("integer_below_min_value"),
                ));
            }
            None => return Err(Refusal::invalid_type("max_output_tokens", "an integer", v)),
        },
    }
    match &body["input"] {
        Value::Null if body.get("prompt").is_none() => return Err(Refusal::missing("input")),
        Value::Null | Value::String(_) => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_item(item, &format!("input[{i}]"))?;
            }
        }
        other => return Err(Refusal::invalid_type("input", "one of a string or array of input items", other)),
    }
    check_tools(&body["tools"])
}

fn check_item(item: &Value, at: &str) -> Result<(), Refusal> {
    if !item.is_object() {
        return Err(Refusal::invalid_type(at, "an input item object", item));
    }
    let kind = item_type(item);
    if kind.is_empty() {
        return Err(Refusal::missing(&format!("{at}.type")));
    }
    if !ITEM_TYPES.contains(&kind) {
        return Err(Refusal::invalid_value(&format!("{at}.type"), kind, &ITEM_TYPES));
    }
    let required = |field: &str| -> Result<(), Refusal> {
        if item[field].is_string() { Ok(()) } else { Err(Refusal::missing(&format!("{at}.{field}"))) }
    };
    match kind {
        "message" => check_message(item, at),
        "function_call" => {
            required("call_id")?;
            required("name")?;
            required("arguments")
        }
        "function_call_output" => {
            required("call_id")?;
            match &item["output"] {
                Value::String(_) | Value::Array(_) => Ok(()),
                Value::Null => Err(Refusal::missing(&format!("{at}.output"))),
                other => Err(Refusal::invalid_type(
                    &format!("{at}.output"),
                    "one of a string or array of output content",
                    other,
                )),
            }
        }
        _ => Ok(()),
    }
}

fn check_message(item: &Value, at: &str) -> Result<(), Refusal> {
    let Some(role) = item["role"].as_str() else {
        return Err(Refusal::missing(&format!("{at}.role")));
    };
    if !ROLES.contains(&role) {
        return Err(Refusal::invalid_value(&format!("{at}.role"), role, &ROLES));
    }
    let parts = match &item["content"] {
        Value::String(_) => return Ok(()),
        Value::Array(parts) => parts,
        Value::Null => return Err(Refusal::missing(&format!("{at}.content"))),
        other => {
            return Err(Refusal::invalid_type(
                &format!("{at}.content"),
                "one of a string or array of input content",
                other,
            ));
        }
    };
    let allowed: &[&str] = if role == "assistant" { &OUTPUT_PARTS } else { &INPUT_PARTS };
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let kind = part["type"].as_str().unwrap_or("");
        if !allowed.contains(&kind) {
            return Err(Refusal::invalid_value(&format!("{at}.type"), kind, allowed));
        }
        match kind {
            "input_text" | "output_text" if !part["text"].is_string() => {
                return Err(Refusal::missing(&format!("{at}.text")));
            }
            "input_image" if !part["image_url"].is_string() && !part["file_id"].is_string() => {
                return Err(Refusal::missing(&format!("{at}.image_url")));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_tools(tools: &Value) -> Result<(), Refusal> {
    let tools = match tools {
        Value::Null => return Ok(()),
        Value::Array(tools) => tools,
        other => return Err(Refusal::invalid_type("tools", "an array", other)),
    };
    for (i, tool) in tools.iter().enumerate() {
        let Some(kind) = tool["type"].as_str() else {
            return Err(Refusal::missing(&format!("tools[{i}].type")));
        };
        if !TOOL_TYPES.contains(&kind) {
            return Err(Refusal::invalid_value(&format!("tools[{i}].type"), kind, &TOOL_TYPES));
        }
        // Function tools are flat here: Chat Completions' `{"type":"function","function":{…}}`
        // has no `name` at the top, which is how OpenAI refuses it.
        if kind == "function" && !tool["name"].is_string() {
            return Err(Refusal::missing(&format!("tools[{i}].name")));
        }
    }
    Ok(())
}

/// Every `function_call_output` answers a `function_call` that came before it, in `earlier` (the
/// stored conversation `previous_response_id` continues) or in `input`; and every call is
/// answered by an output after it.
pub(crate) fn pairing(earlier: &[Value], input: &[Value]) -> Result<(), Refusal> {
    let mut calls: Vec<&str> = Vec::new();
    let mut answered: HashSet<&str> = HashSet::new();
    for (n, item) in earlier.iter().chain(input).enumerate() {
        let call_id = item["call_id"].as_str().unwrap_or("");
        match item_type(item) {
            "function_call" => calls.push(call_id),
            "function_call_output" if n >= earlier.len() && !calls.contains(&call_id) => {
                return Err(Refusal::new(
                    format!("No tool call found for function call output with call_id {call_id}."),
                    "input",
                    None,
                ));
            }
            "function_call_output" => {
                answered.insert(call_id);
            }
            _ => {}
        }
    }
    match calls.into_iter().find(|call| !answered.contains(call)) {
        Some(call) => Err(Refusal::new(format!("No tool output found for function call {call}."), "input", None)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(input: Value) -> Value {
        json!({"model": "m", "input": input})
    }

    fn param(r: Result<(), Refusal>) -> Option<String> {
        r.unwrap_err().param
    }

    #[test]
    fn chat_completions_shapes_are_refused_where_openai_refuses_them() {
        assert_eq!(shape(&request(json!("hi"))), Ok(()));
        assert_eq!(shape(&json!({"input": "hi"})).unwrap_err().message, "Missing required parameter: 'model'.");
        assert_eq!(param(shape(&request(json!({"role": "user"})))), Some("input".into()));

        let tool_role = request(json!([{"role": "tool", "tool_call_id": "c1", "content": "sunny"}]));
        let refusal = shape(&tool_role).unwrap_err();
        assert_eq!(refusal.param.as_deref(), Some("input[0].role"));
        assert_eq!(
            refusal.message,
            "Invalid value: 'tool'. Supported values are: 'assistant', 'system', 'developer', and 'user'."
        );

        let text_part = request(json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
        assert_eq!(param(shape(&text_part)), Some("input[0].content[0].type".into()));
        let input_in_assistant =
            request(json!([{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]));
        assert!(shape(&input_in_assistant).unwrap_err().message.contains("'output_text' and 'refusal'"));
        assert_eq!(param(shape(&request(json!([{"type": "tool_result"}])))), Some("input[0].type".into()));

        let mut nested_tool = request(json!("hi"));
        nested_tool["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
        assert_eq!(shape(&nested_tool).unwrap_err().message, "Missing required parameter: 'tools[0].name'.");
        nested_tool["tools"] = json!([{"type": "function", "name": "f", "parameters": {}}, {"type": "web_search"}]);
        assert_eq!(shape(&nested_tool), Ok(()));

        let mut small = request(json!("hi"));
        small["max_output_tokens"] = json!(5);
        assert_eq!(shape(&small).unwrap_err().code, Some("integer_below_min_value"));
    }

    #[test]
    fn outputs_need_their_calls_and_calls_their_outputs() {
        let call = json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "sunny"});
        assert_eq!(pairing(&[], &[call.clone(), output.clone()]), Ok(()));
        assert_eq!(pairing(std::slice::from_ref(&call), std::slice::from_ref(&output)), Ok(()));
        assert_eq!(
            pairing(&[], std::slice::from_ref(&output)).unwrap_err().message,
            "No tool call found for function call output with call_id c1."
        );
        assert_eq!(pairing(&[], &[output.clone(), call.clone()]).unwrap_err().param.as_deref(), Some("input"));
        assert_eq!(
            pairing(&[call], &[json!({"role": "user", "content": "and?"})]).unwrap_err().message,
            "No tool output found for function call c1."
        );
    }
}
