//! Streaming events of `POST /v1/messages` with `"stream": true`.
//!
//! Every SSE event is named (`event: content_block_delta`) and its data repeats the name as
//! `type`. A stream is `message_start`, then per content block `content_block_start`, deltas and
//! `content_block_stop`, then `message_delta` (stop reason, cumulative usage) and `message_stop`;
//! `ping`s may come anywhere and an `error` may end it. Anthropic may add event and delta types,
//! which decode as `Unknown` and are to be ignored.

use serde::{Deserialize, Serialize};

use super::{ContentBlock, ErrorDetail, Message, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message with empty `content`; its usage holds the input counts.
    MessageStart {
        message: Message,
    },
    /// A block begins: empty text, a tool call with `input: {}`, empty thinking, or a whole
    /// redacted-thinking block. `index` is the block's position in the final `content`.
    ContentBlockStart {
        index: usize,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        /// Cumulative; usually `output_tokens` only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
    #[serde(other, skip_serializing)]
    Unknown,
}

impl StreamEvent {
    /// The SSE event name, which is the `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
            Self::Ping => "ping",
            Self::Error { .. } => "error",
            Self::Unknown => "unknown",
        }
    }
}

/// Deserialised by hand (`FlatDelta`): as an internally tagged enum serde would buffer every
/// delta whole before looking at its `type`, and deltas are nearly every event of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    TextDelta {
        text: String,
    },
    /// A fragment of a tool call's `input` JSON; the fragments concatenate to the object.
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    /// The thinking block's signature, sent just before its `content_block_stop`.
    SignatureDelta {
        signature: String,
    },
    /// `citations_delta` and whatever comes later.
    #[serde(skip_serializing)]
    Unknown,
}

/// Every field any delta has, read in one pass whatever their order.
#[derive(Deserialize)]
struct FlatDelta {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let f = FlatDelta::deserialize(d)?;
        let field = |v: Option<String>, name: &'static str| v.ok_or_else(|| D::Error::missing_field(name));
        Ok(match f.kind.as_str() {
            "text_delta" => Self::TextDelta { text: field(f.text, "text")? },
            "input_json_delta" => Self::InputJsonDelta { partial_json: field(f.partial_json, "partial_json")? },
            "thinking_delta" => Self::ThinkingDelta { thinking: field(f.thinking, "thinking")? },
            "signature_delta" => Self::SignatureDelta { signature: field(f.signature, "signature")? },
            _ => Self::Unknown,
        })
    }
}

/// The data of a `content_block_delta` event, read directly when the SSE event name says so
/// (nearly every event of a stream), without going through `StreamEvent`'s tag.
#[derive(Debug, Deserialize)]
pub struct ContentBlockDeltaData {
    pub index: usize,
    pub delta: Delta,
}

/// Top-level changes to the message: why it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::{TextBlock, ToolUseBlock};
    use super::*;

    #[test]
    fn reference_events_decode() {
        let e: StreamEvent = serde_json::from_str(
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            StreamEvent::ContentBlockDelta {
                index: 1,
                delta: Delta::InputJsonDelta { partial_json: "{\"location\":".into() }
            }
        );
        let e: StreamEvent = serde_json::from_str(
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            StreamEvent::ContentBlockStart { index: 1, content_block: ContentBlock::ToolUse(ToolUseBlock { .. }) }
        ));
        let e: StreamEvent = serde_json::from_str(
            r#"{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}}"#,
        )
        .unwrap();
        assert!(matches!(e, StreamEvent::MessageDelta { usage: None, .. }));
    }

    #[test]
    fn deltas_read_the_same_whichever_way_and_order() {
        for data in [
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hi \"x\""}}"#,
            r#"{"index":2,"delta":{"text":"Hi \"x\"","type":"text_delta"},"type":"content_block_delta"}"#,
        ] {
            let direct: ContentBlockDeltaData = serde_json::from_str(data).unwrap();
            let tagged: StreamEvent = serde_json::from_str(data).unwrap();
            assert_eq!(direct.delta, Delta::TextDelta { text: "Hi \"x\"".into() });
            assert_eq!(tagged, StreamEvent::ContentBlockDelta { index: direct.index, delta: direct.delta });
        }
        let e = serde_json::from_str::<Delta>(r#"{"type":"signature_delta"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `signature`"), "{e}");
    }

    #[test]
    fn unknown_events_and_deltas_are_tolerated() {
        let e: StreamEvent = serde_json::from_str(r#"{"type":"brand_new_event","x":1}"#).unwrap();
        assert_eq!(e, StreamEvent::Unknown);
        let e: StreamEvent = serde_json::from_str(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
        )
        .unwrap();
        assert_eq!(e, StreamEvent::ContentBlockDelta { index: 0, delta: Delta::Unknown });
    }

    #[test]
    fn events_serialize_as_anthropic_sends_them() {
        let e = StreamEvent::ContentBlockStart {
            index: 0,
            content_block: ContentBlock::Text(TextBlock { text: String::new(), cache_control: None, citations: None }),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
        );
        assert_eq!(serde_json::to_string(&StreamEvent::MessageStop).unwrap(), r#"{"type":"message_stop"}"#);
    }
}
