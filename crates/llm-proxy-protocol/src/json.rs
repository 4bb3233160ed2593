//! Strict JSON decoding that names the offending field.

use serde::de::DeserializeOwned;

/// A body that could not be decoded, with the path of the field at fault when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Human-readable reason, e.g. `invalid type: string "yes", expected a boolean`.
    pub message: String,
    /// Dotted path of the offending field (`messages[0].role`), `None` when the body as a whole is bad.
    pub param: Option<String>,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Longest error message returned for a body that does not decode.
const MAX_MESSAGE_CHARS: usize = 300;

/// Decodes `bytes` as `T`, reporting the path of the first field that does not fit.
///
/// serde_json's own recursion limit (128 levels) bounds nesting depth, so a hostile deeply nested
/// body fails here with a 400 rather than exhausting the stack.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    // Tracking the path costs every field of every body (a third of decoding a small request);
    // only a body that fails needs it, so that one is decoded a second time, with the path.
    // Neither pass looks past the value for trailing bytes, so both accept the same bodies.
    if let Ok(value) = T::deserialize(&mut serde_json::Deserializer::from_slice(bytes)) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if !matches!(inner.classify(), serde_json::error::Category::Data) {
            // Syntax errors have no field; line and column are what help here.
            return DecodeError { message: format!("the body is not valid JSON: {inner}"), param: None };
        }
        // serde_json appends " at line L column C"; the field path says more to an API user.
        let mut message = inner.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // serde quotes the offending value; a huge one must not come back whole.
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        let param = (path != "." && path != "?" && !path.is_empty()).then_some(path);
        DecodeError { message, param }
    })?;
    Ok(value)
}

/// Decodes `value` as `T`, naming a field that does not fit below `path`: `input[2]` and
/// `content[0].text` make `input[2].content[0].text`. For translators that decode a body piece by
/// piece and must still say where in the client's body a fault is.
pub fn decode_value<T: DeserializeOwned>(value: &serde_json::Value, path: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| located(path, e))
}

/// `decode_value` for a piece kept as JSON text.
pub fn decode_str<T: DeserializeOwned>(text: &str, path: &str) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| located(path, e))
}

fn located(path: &str, e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let inner = e.path().to_string();
    let param = match inner.as_str() {
        "." | "" | "?" => path.to_string(),
        _ if path.is_empty() => inner,
        index if index.starts_with('[') => format!("{path}{index}"),
        field => format!("{path}.{field}"),
    };
    let mut message = e.into_inner().to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    DecodeError { message, param: (!param.is_empty()).then_some(param) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only decoded, to see where decoding fails")]
    struct Outer {
        items: Vec<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only decoded, to see where decoding fails")]
    struct Inner {
        flag: bool,
    }

    #[test]
    fn names_the_nested_field_at_fault() {
        let err = decode::<Outer>(br#"{"items":[{"flag":true},{"flag":"yes"}]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("items[1].flag"));
        assert!(err.message.contains("expected a boolean"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_have_no_param() {
        let err = decode::<Outer>(b"{not json").unwrap_err();
        assert_eq!(err.param, None);
    }

    #[test]
    fn pieces_name_their_fields_below_their_path() {
        let value = serde_json::json!({"items": [{"flag": true}, {"flag": 1}]});
        let err = decode_value::<Outer>(&value, "input[3]").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[3].items[1].flag"));
        let err = decode_str::<Vec<Inner>>(r#"[{"flag": "x"}]"#, "tools").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tools[0].flag"));
        assert!(!err.message.contains(" at line "), "{}", err.message);
        let err = decode_str::<Inner>("5", "tools[0]").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tools[0]"));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let body = format!("{{\"items\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode::<serde_json::Value>(body.as_bytes()).is_err());
    }
}
