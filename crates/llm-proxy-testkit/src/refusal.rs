//! A request OpenAI would refuse, answered in OpenAI's error shape and worded as OpenAI words it:
//! shared by the mock's Responses and Completions APIs, whose checks say what is wrong.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults;

/// A request OpenAI would refuse, as its error body says it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl Refusal {
    pub fn new(message: String, param: impl Into<String>, code: Option<&'static str>) -> Self {
        Refusal { status: 400, message, param: Some(param.into()), code }
    }

    pub fn missing(param: &str) -> Self {
        Self::new(format!("Missing required parameter: '{param}'."), param, Some("missing_required_parameter"))
    }

    pub fn invalid_type(param: &str, expected: &str, got: &Value) -> Self {
        Self::new(
            format!("Invalid type for '{param}': expected {expected}, but got {} instead.", kind(got)),
            param,
            Some("invalid_type"),
        )
    }

    pub fn invalid_value(param: &str, got: &str, supported: &[&str]) -> Self {
        Self::new(
            format!("Invalid value: '{got}'. Supported values are: {}.", quoted_list(supported)),
            param,
            Some("invalid_value"),
        )
    }

    /// `previous_response_id` names a response the mock never produced (or did not store).
    pub fn unknown_previous(id: &str) -> Self {
        Refusal {
            status: 404,
            message: format!("Previous response with id '{id}' not found."),
            param: Some("previous_response_id".into()),
            code: Some("previous_response_not_found"),
        }
    }

    /// A 400 with no parameter at fault: a body that is not JSON, a `tool` model without tools.
    pub fn bad_request(message: String) -> Self {
        Refusal { status: 400, message, param: None, code: None }
    }

    pub fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": "invalid_request_error",
                                    "param": self.param, "code": self.code}});
        (faults::status_code(self.status), Json(body)).into_response()
    }
}

/// `'a', 'b', and 'c'`, as OpenAI lists the values it accepts.
fn quoted_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// How OpenAI names a JSON value's type in its errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_openai_writes_them() {
        assert_eq!(quoted_list(&["a"]), "'a'");
        assert_eq!(quoted_list(&["a", "b"]), "'a' and 'b'");
        assert_eq!(quoted_list(&["a", "b", "c"]), "'a', 'b', and 'c'");
    }
}
