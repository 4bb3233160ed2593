//! Counting tokens locally, for upstreams that do not count for us (OpenAI-protocol servers have
//! no counting endpoint). The count uses OpenAI's `o200k_base` encoding: exact for current OpenAI
//! models and an estimate for everyone else's tokenizer.

use crate::unified::{ChatRequest, Part, ToolResultPart};

/// Tokens charged per image when its size is unknown: roughly what a ~1 megapixel image costs on
/// Anthropic ((w·h)/750) and OpenAI (high detail).
const IMAGE_TOKENS: u64 = 1000;
/// Per-message framing (role markers) that chat templates add.
const PER_MESSAGE: u64 = 3;

/// Bytes of text one count tokenizes exactly (about half a second of work); the rest of a bigger
/// input is extrapolated at the rate seen so far. A 9 MB prompt once took 5.3 s to count.
pub const EXACT_BYTES: usize = 1024 * 1024;
/// Bytes per token assumed when nothing has been counted exactly yet.
const BYTES_PER_TOKEN: f64 = 4.0;

/// Set once the tokenizer's tables are built.
static BUILT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether counting can start at once. The tables take ~150 ms of CPU and ~48 MB to build, so
/// they are built on first use rather than at start (most gateways never count locally); until
/// then a count of any size belongs on a blocking thread, never on an async worker.
pub fn tokenizer_built() -> bool {
    BUILT.load(std::sync::atomic::Ordering::Acquire)
}

fn tokenizer() -> &'static tiktoken_rs::CoreBPE {
    let bpe = tiktoken_rs::o200k_base_singleton();
    BUILT.store(true, std::sync::atomic::Ordering::Release);
    bpe
}

/// Tokens of `text` in `o200k_base` (exact up to [`EXACT_BYTES`], extrapolated beyond).
pub fn count_text(text: &str) -> u64 {
    let mut c = TokenCounter::default();
    c.add_text(text);
    c.total()
}

/// Adds up the tokens of many texts with a bounded amount of tokenizing: texts are counted
/// exactly until [`EXACT_BYTES`] have been tokenized, then estimated from their length at the
/// bytes-per-token rate of what was counted. All arithmetic saturates.
#[derive(Debug, Default, Clone)]
pub struct TokenCounter {
    exact_bytes: usize,
    exact_tokens: u64,
    /// Text past the exact budget, in bytes.
    estimated_bytes: usize,
    /// Tokens added as such (framing, images).
    fixed: u64,
}

impl TokenCounter {
    pub fn add_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let room = EXACT_BYTES.saturating_sub(self.exact_bytes);
        if room == 0 {
            self.estimated_bytes = self.estimated_bytes.saturating_add(text.len());
            return;
        }
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let (exact, rest) = text.split_at(cut);
        self.exact_tokens += tokenizer().encode_ordinary(exact).len() as u64;
        self.exact_bytes += exact.len();
        self.estimated_bytes = self.estimated_bytes.saturating_add(rest.len());
    }

    pub fn add_tokens(&mut self, n: u64) {
        self.fixed = self.fixed.saturating_add(n);
    }

    pub fn total(&self) -> u64 {
        let rate =
            if self.exact_tokens > 0 { self.exact_bytes as f64 / self.exact_tokens as f64 } else { BYTES_PER_TOKEN };
        let estimated = (self.estimated_bytes as f64 / rate).ceil() as u64;
        self.exact_tokens.saturating_add(estimated).saturating_add(self.fixed)
    }
}

/// Input tokens of a request: system prompt, every turn, and the tool definitions.
pub fn estimate_input(r: &ChatRequest) -> u64 {
    let mut n = TokenCounter::default();
    for s in &r.system {
        n.add_text(&s.text);
    }
    for m in &r.messages {
        n.add_tokens(PER_MESSAGE);
        for p in &m.content {
            match p {
                Part::Text { text, .. } | Part::Thinking { text, .. } => n.add_text(text),
                Part::Image { .. } => n.add_tokens(IMAGE_TOKENS),
                Part::ToolCall { name, arguments, .. } => {
                    n.add_text(name);
                    n.add_text(arguments);
                }
                Part::ToolResult { content, .. } => {
                    for c in content {
                        match c {
                            ToolResultPart::Text(t) => n.add_text(t),
                            ToolResultPart::Image(_) => n.add_tokens(IMAGE_TOKENS),
                        }
                    }
                }
                Part::RedactedThinking { data } => n.add_text(data),
            }
        }
    }
    for t in &r.tools {
        n.add_text(&t.name);
        n.add_text(t.description.as_deref().unwrap_or(""));
        n.add_text(&t.parameters.to_string());
    }
    n.total()
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
    fn past_the_exact_budget_the_count_is_extrapolated_and_close() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let repeats = 2 * EXACT_BYTES / sentence.len();
        let big = sentence.repeat(repeats);
        let exact = tiktoken_rs::o200k_base_singleton().encode_ordinary(&big).len() as u64;
        let counted = count_text(&big);
        assert!(counted.abs_diff(exact) as f64 / (exact as f64) < 0.01, "{counted} vs {exact}");
        // Splitting the text across many calls gives about the same (each call loses the merge
        // of a trailing space with the next word, as separate messages would).
        let mut c = TokenCounter::default();
        for _ in 0..repeats {
            c.add_text(sentence);
        }
        assert!(c.total().abs_diff(exact) as f64 / (exact as f64) < 0.15, "{} vs {exact}", c.total());
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
