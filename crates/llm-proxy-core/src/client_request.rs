//! What routing reads of a client's request, in the request's own protocol: the conversation it
//! belongs to (for `conversation_hash` routes) and its last user message (what a `semantic` route
//! embeds). Protocol knowledge lives here, beside the request types, so the server never walks a
//! protocol's JSON. Messages are decoded one at a time and the walk stops as soon as it can.

use llm_proxy_protocol::json::DecodeError;
use llm_proxy_protocol::openai::{
    Content, ContentPart, InputItem, MessageRole, Prompt, ReasoningPart, ResponsesInput, SummaryPart,
};
use serde_json::Value;

use crate::provider::{ChatInput, ResponsesCall};
use crate::routing::conversation_key;
use crate::token_estimate::TokenCounter;

/// Ends a walk over the messages early (or on a message that does not decode).
enum Walk {
    Done,
    Bad,
}

impl From<DecodeError> for Walk {
    fn from(_: DecodeError) -> Self {
        Self::Bad
    }
}

impl ChatInput {
    /// The conversation this request belongs to: a `session` the client named (the
    /// `x-session-id` header), else the client's user (`user`, Anthropic's `metadata.user_id`),
    /// else its system prompt and first user message, which are the same for every turn of one
    /// conversation. The hash of these is pinned (`routing::conversation_key`): a change would
    /// move every running conversation after an upgrade.
    pub fn conversation_key(&self, session: Option<&str>) -> u64 {
        if let Some(session) = session.filter(|s| !s.is_empty()) {
            return conversation_key(&["session", session]);
        }
        match self {
            Self::OpenAi(r) => {
                if let Some(user) = r.extra.get("user").and_then(Value::as_str) {
                    return conversation_key(&["user", user]);
                }
                let (mut system, mut first) = (None, None);
                let _ = r.messages.try_for_each(|_, m| {
                    let content = || m.rest.get("content").map(content_text).unwrap_or_default();
                    if system.is_none() && (m.role == "system" || m.role == "developer") {
                        system = Some(content());
                    } else if first.is_none() && m.role == "user" {
                        first = Some(content());
                    }
                    if system.is_some() && first.is_some() { Err(Walk::Done) } else { Ok(()) }
                });
                conversation_key(&["start", &system.unwrap_or_default(), &first.unwrap_or_default()])
            }
            Self::Anthropic(r) => {
                if let Some(user) = r.extra.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
                    return conversation_key(&["user", user]);
                }
                let system = r.system.as_ref().map(content_text).unwrap_or_default();
                let mut first = None;
                let _ = r.messages.try_for_each(|_, m| {
                    if m.role == "user" {
                        first = Some(content_text(&m.content));
                        return Err(Walk::Done);
                    }
                    Ok(())
                });
                conversation_key(&["start", &system, &first.unwrap_or_default()])
            }
            Self::Responses(c) => {
                if let Some(user) = c.request.user.as_deref() {
                    return conversation_key(&["user", user]);
                }
                // The instructions, or else the first system message, and the first user message
                // of the whole conversation (stored turns included): the same on every turn.
                let (mut system, mut first) = (c.request.instructions.clone(), None);
                c.walk(|item| {
                    if let InputItem::Message(m) = item {
                        match m.role {
                            MessageRole::System | MessageRole::Developer if system.is_none() => {
                                system = Some(text_of(&m.content));
                            }
                            MessageRole::User if first.is_none() => first = Some(text_of(&m.content)),
                            _ => {}
                        }
                    }
                    first.is_none()
                });
                conversation_key(&["start", &system.unwrap_or_default(), &first.unwrap_or_default()])
            }
            // The prompt is the first (and only) user message: a chat request of that one message
            // without a system prompt has the same key.
            Self::Completions(r) => match r.user.as_deref() {
                Some(user) => conversation_key(&["user", user]),
                None => conversation_key(&["start", "", &prompt_key(&r.prompt)]),
            },
        }
    }

    /// The text of the last user message, if it has any (images alone have none).
    pub fn last_user_text(&self) -> Option<String> {
        let mut last = None;
        match self {
            Self::OpenAi(r) => {
                let _ = r.messages.try_for_each(|_, m| -> Result<(), Walk> {
                    if m.role == "user" {
                        last = m.rest.get("content").map(content_text);
                    }
                    Ok(())
                });
            }
            Self::Anthropic(r) => {
                let _ = r.messages.try_for_each(|_, m| -> Result<(), Walk> {
                    if m.role == "user" {
                        last = Some(content_text(&m.content));
                    }
                    Ok(())
                });
            }
            Self::Responses(c) => c.walk(|item| {
                if let InputItem::Message(m) = item
                    && m.role == MessageRole::User
                {
                    last = Some(text_of(&m.content));
                }
                true
            }),
            Self::Completions(r) => {
                last = match &r.prompt {
                    Prompt::Text(text) => Some(text.clone()),
                    Prompt::Texts(texts) => texts.last().cloned(),
                    // Token ids are no text to embed.
                    Prompt::Tokens(_) | Prompt::TokenLists(_) | Prompt::Null => None,
                }
            }
        }
        last.filter(|t: &String| !t.trim().is_empty())
    }
}

impl ChatInput {
    /// Decodes a chat request body in the client's `protocol` (for a body kept as bytes, read
    /// again only when needed).
    pub fn decode(protocol: crate::unified::WireProtocol, body: &[u8]) -> Option<Self> {
        use crate::unified::WireProtocol;
        match protocol {
            WireProtocol::Anthropic => llm_proxy_protocol::json::decode(body).ok().map(Self::Anthropic),
            WireProtocol::OpenAi => llm_proxy_protocol::json::decode(body).ok().map(Self::OpenAi),
            // Without the stored turns it continues: what the body alone says.
            WireProtocol::Responses => {
                llm_proxy_protocol::json::decode(body).ok().map(|r| Self::Responses(Box::new(ResponsesCall::new(r))))
            }
            WireProtocol::Completions => llm_proxy_protocol::json::decode(body).ok().map(Self::Completions),
            _ => None,
        }
    }

    /// Prompt tokens of the request counted with `o200k_base`, in its own shape: the text of the
    /// system prompt and of every message (its text parts and tool-call arguments too), plus a
    /// little framing per message. Past the counter's exact budget the rest is extrapolated (see
    /// `TokenCounter`): this is for answers the upstream reported no usage for.
    pub fn prompt_tokens(&self) -> u64 {
        let mut n = TokenCounter::default();
        match self {
            Self::OpenAi(r) => {
                let _ = r.messages.try_for_each(|_, m| -> Result<(), Walk> {
                    n.add_tokens(PER_MESSAGE);
                    m.rest.iter().for_each(|(k, v)| count_strings(v, Some(k), &mut n));
                    Ok(())
                });
            }
            Self::Anthropic(r) => {
                if let Some(system) = &r.system {
                    count_strings(system, Some("system"), &mut n);
                }
                let _ = r.messages.try_for_each(|_, m| -> Result<(), Walk> {
                    n.add_tokens(PER_MESSAGE);
                    count_strings(&m.content, Some("content"), &mut n);
                    Ok(())
                });
            }
            Self::Responses(c) => {
                if let Some(instructions) = &c.request.instructions {
                    n.add_text(instructions);
                }
                c.walk(|item| {
                    n.add_tokens(PER_MESSAGE);
                    match item {
                        InputItem::Message(m) => n.add_text(&text_of(&m.content)),
                        InputItem::FunctionCall(f) => n.add_text(&f.arguments),
                        InputItem::FunctionCallOutput(o) => n.add_text(&text_of(&o.output)),
                        InputItem::Reasoning(r) => {
                            r.summary.iter().for_each(|SummaryPart::SummaryText { text }| n.add_text(text));
                            let parts = r.content.iter().flatten();
                            parts.for_each(|ReasoningPart::ReasoningText { text }| n.add_text(text));
                        }
                        InputItem::Other(_) => {}
                    }
                    true
                });
            }
            // A prompt is read as it is, without a chat template's framing.
            Self::Completions(r) => match &r.prompt {
                Prompt::Text(text) => n.add_text(text),
                Prompt::Texts(texts) => texts.iter().for_each(|t| n.add_text(t)),
                Prompt::Tokens(tokens) => n.add_tokens(tokens.len() as u64),
                Prompt::TokenLists(lists) => lists.iter().for_each(|l| n.add_tokens(l.len() as u64)),
                // The document separator the API puts in its place.
                Prompt::Null => n.add_tokens(1),
            },
        }
        n.total()
    }
}

impl ResponsesCall {
    /// Hands each item of the conversation to `f`, stored turns first, until `f` says `false`.
    /// Items that do not decode are skipped: the translator reports them.
    fn walk(&self, mut f: impl FnMut(InputItem) -> bool) {
        for v in self.history.iter() {
            if let Ok(item) = InputItem::from_value(v, "previous_response_id")
                && !f(item)
            {
                return;
            }
        }
        match &self.request.input {
            Some(ResponsesInput::Text(text)) => {
                let message = llm_proxy_protocol::openai::MessageItem {
                    role: MessageRole::User,
                    content: Content::Text(text.clone()),
                };
                f(InputItem::Message(message));
            }
            Some(ResponsesInput::Items(items)) => {
                for raw in items.iter() {
                    if let Ok(item) = InputItem::from_json(raw.get(), "input")
                        && !f(item)
                    {
                        return;
                    }
                }
            }
            None => {}
        }
    }
}

/// The text of a Responses message content: a string, or its text parts joined.
fn text_of(content: &Content) -> String {
    match content {
        Content::Text(text) => text.clone(),
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::InputText { text } | ContentPart::OutputText { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// What tells one completion prompt from another: its texts, or its token ids written out.
fn prompt_key(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Text(text) => text.clone(),
        Prompt::Texts(texts) => texts.join("\n"),
        Prompt::Tokens(tokens) => format!("{tokens:?}"),
        Prompt::TokenLists(lists) => format!("{lists:?}"),
        Prompt::Null => String::new(),
    }
}

/// Per-message framing (role markers) that chat templates add.
const PER_MESSAGE: u64 = 3;

/// Counts the strings under `content`, `text`, `system` and `arguments` keys, at any depth:
/// what a model reads of a message in either protocol.
fn count_strings(v: &Value, key: Option<&str>, out: &mut TokenCounter) {
    match v {
        Value::String(s) if matches!(key, Some("content" | "text" | "system" | "arguments")) => out.add_text(s),
        Value::Array(items) => items.iter().for_each(|i| count_strings(i, key, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| count_strings(v, Some(k), out)),
        _ => {}
    }
}

/// The text of a message content in either protocol: a string, or the `text` of its parts.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(body: Value) -> ChatInput {
        ChatInput::OpenAi(serde_json::from_value(body).unwrap())
    }

    fn anthropic(body: Value) -> ChatInput {
        ChatInput::Anthropic(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn a_conversation_keeps_its_key_from_turn_to_turn() {
        let turn1 = openai(serde_json::json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}));
        let turn2 = openai(serde_json::json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": [{"type": "text", "text": "more"}]}]}));
        let other = openai(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "bye"}]}));
        assert_eq!(turn1.conversation_key(None), turn2.conversation_key(None));
        assert_ne!(turn1.conversation_key(None), other.conversation_key(None));
        // Pinned to the same parts as ever: system text, then the first user text.
        assert_eq!(turn1.conversation_key(None), conversation_key(&["start", "be brief", "hi"]));
        assert_eq!(turn1.conversation_key(Some("s-1")), conversation_key(&["session", "s-1"]));
        assert_eq!(turn2.last_user_text().as_deref(), Some("more"));
    }

    #[test]
    fn anthropic_requests_read_their_own_shape() {
        let r = anthropic(
            serde_json::json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "sys"}],
            "metadata": {"user_id": "u-7"},
            "messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}),
        );
        assert_eq!(r.conversation_key(None), conversation_key(&["user", "u-7"]));
        // The last user turn has only an image: nothing to embed.
        assert_eq!(r.last_user_text(), None);
        let r = anthropic(serde_json::json!({"model": "m", "max_tokens": 5, "system": "sys",
            "messages": [{"role": "user", "content": "first"}]}));
        assert_eq!(r.conversation_key(None), conversation_key(&["start", "sys", "first"]));
        assert_eq!(r.last_user_text().as_deref(), Some("first"));
    }

    #[test]
    fn responses_requests_read_the_stored_turns_too() {
        let call = |body: Value, history: Vec<Value>| {
            let mut c = ResponsesCall::new(serde_json::from_value(body).unwrap());
            c.history = history.into();
            ChatInput::Responses(Box::new(c))
        };
        let turn1 = call(serde_json::json!({"model": "m", "instructions": "sys", "input": "first"}), vec![]);
        // The next turn continues a stored conversation and brings only its new input.
        let stored = vec![
            serde_json::json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}),
            serde_json::json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}),
        ];
        let turn2 = call(
            serde_json::json!({"model": "m", "instructions": "sys", "previous_response_id": "resp_1",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "second"}]}]}),
            stored,
        );
        assert_eq!(turn1.conversation_key(None), turn2.conversation_key(None), "one conversation, one key");
        assert_eq!(turn1.conversation_key(None), conversation_key(&["start", "sys", "first"]));
        assert_eq!(turn2.last_user_text().as_deref(), Some("second"));
        let hello = crate::token_estimate::count_text("first");
        assert_eq!(turn1.prompt_tokens(), crate::token_estimate::count_text("sys") + PER_MESSAGE + hello);
        assert!(turn2.prompt_tokens() > turn1.prompt_tokens(), "the stored turns count");
        let user = call(serde_json::json!({"model": "m", "user": "u-9", "input": "x"}), vec![]);
        assert_eq!(user.conversation_key(None), conversation_key(&["user", "u-9"]));
    }

    #[test]
    fn a_completion_prompt_is_read_as_one_user_message() {
        let completion = |body: Value| ChatInput::Completions(serde_json::from_value(body).unwrap());
        let text = completion(serde_json::json!({"model": "m", "prompt": "hello world"}));
        let chat = openai(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]}));
        assert_eq!(text.conversation_key(None), chat.conversation_key(None), "routed as the same one-message chat");
        assert_eq!(text.last_user_text().as_deref(), Some("hello world"));
        let hello = crate::token_estimate::count_text("hello world");
        assert_eq!(text.prompt_tokens(), hello, "no chat framing");
        let tokens = completion(serde_json::json!({"model": "m", "prompt": [[1212, 318], [257]], "user": "u-1"}));
        assert_eq!(tokens.prompt_tokens(), 3, "token ids count as themselves");
        assert_eq!(tokens.last_user_text(), None);
        assert_eq!(tokens.conversation_key(None), conversation_key(&["user", "u-1"]));
        let body = br#"{"model":"m","prompt":["a b","hello world"]}"#;
        let decoded = ChatInput::decode(crate::unified::WireProtocol::Completions, body).unwrap();
        assert_eq!(decoded.last_user_text().as_deref(), Some("hello world"));
        assert_eq!(decoded.prompt_tokens(), crate::token_estimate::count_text("a b") + hello);
    }

    #[test]
    fn prompt_tokens_count_what_the_model_reads_in_either_shape() {
        let o = openai(serde_json::json!({"model": "m", "user": "not counted", "messages": [
            {"role": "system", "content": "hello world"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "hello world"}}]},
            {"role": "user", "content": [{"type": "text", "text": "hello world"}]}]}));
        let hello = crate::token_estimate::count_text("hello world");
        assert_eq!(o.prompt_tokens(), 3 * (PER_MESSAGE + hello));
        let a = anthropic(serde_json::json!({"model": "m", "max_tokens": 5, "system": "hello world",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]}));
        assert_eq!(a.prompt_tokens(), PER_MESSAGE + 2 * hello);
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#;
        let decoded = ChatInput::decode(crate::unified::WireProtocol::OpenAi, body).unwrap();
        assert_eq!(decoded.prompt_tokens(), PER_MESSAGE + hello);
    }
}
