//! Counting tokens locally, for upstreams that do not count for us (OpenAI-protocol servers have
//! no counting endpoint). The count uses OpenAI's `o200k_base` encoding: exact for current OpenAI
//! models and an estimate for everyone else's tokenizer.

use crate::unified::{ChatRequest, Part, ToolResultPart};

/// Tokens charged per image when its size is unknown: roughly what a ~1 megapixel image costs on
/// Anthropic ((w·h)/750) and OpenAI (high detail).
const IMAGE_TOKENS: u64 = 1000;
/// Per-message framing (role markers) that chat templates add.
const PER_MESSAGE: u64 = 3;

/// Tokens of `text` in `o200k_base`.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

/// Input tokens of a request: system prompt, every turn, and the tool definitions.
pub fn estimate_input(r: &ChatRequest) -> u64 {
    let mut n = 0;
    for s in &r.system {
        n += count_text(&s.text);
    }
    for m in &r.messages {
        n += PER_MESSAGE;
        for p in &m.content {
            n += match p {
                Part::Text { text, .. } | Part::Thinking { text, .. } => count_text(text),
                Part::Image { .. } => IMAGE_TOKENS,
                Part::ToolCall { name, arguments, .. } => count_text(name) + count_text(arguments),
                Part::ToolResult { content, .. } => content
                    .iter()
                    .map(|c| match c {
                        ToolResultPart::Text(t) => count_text(t),
                        ToolResultPart::Image(_) => IMAGE_TOKENS,
                    })
                    .sum(),
                Part::RedactedThinking { data } => count_text(data),
            };
        }
    }
    for t in &r.tools {
        n += count_text(&t.name)
            + t.description.as_deref().map_or(0, count_text)
            + count_text(&t.parameters.to_string());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified::{Message, Role};

    #[test]
    fn counts_known_text_exactly() {
        // "Hello, world!" is 4 tokens in o200k_base.
        assert_eq!(count_text("Hello, world!"), 4);
        assert_eq!(count_text(""), 0);
    }

    #[test]
    fn estimate_grows_with_every_part() {
        let mut r = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: vec![Part::Text { text: "Hello, world!".into(), cache_control: None }],
            }],
            ..Default::default()
        };
        assert_eq!(estimate_input(&r), 4 + PER_MESSAGE);
        r.messages[0].content.push(Part::Image {
            source: crate::unified::ImageSource::Url("https://x/y.png".into()),
            cache_control: None,
        });
        assert_eq!(estimate_input(&r), 4 + PER_MESSAGE + IMAGE_TOKENS);
    }
}
