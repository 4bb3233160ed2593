//! What a request said, in protocol-independent terms: the text an `echo` model answers with, so a
//! test can prove that translation delivered system prompts, images, tools and tool results.
//! Each protocol module fills one from its own request shape.

use serde_json::Value;

/// Serialized in field order, compactly: `{"system":…,"messages":…,…}`.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Summary {
    /// Every system text, joined with `\n`; `None` when there is none.
    pub system: Option<String>,
    /// Turns, system excluded. Consecutive messages from one side make one turn; tool results
    /// are on the user's side (as Anthropic and Gemini carry them in user turns).
    pub messages: u64,
    /// Image parts anywhere, tool results included.
    pub images: u64,
    /// Tool names, in order.
    pub tools: Vec<String>,
    /// The text of each tool result, in order.
    pub tool_results: Vec<String>,
    pub max_tokens: Option<u64>,
    /// The text of the last user turn (tool results excluded), pieces joined with `\n`.
    pub last_user_text: String,
    #[serde(skip)]
    user_side: Option<bool>,
    /// How many tool results came before the current user turn.
    #[serde(skip)]
    results_before_turn: usize,
}

impl Summary {
    pub fn add_system(&mut self, text: &str) {
        match &mut self.system {
            Some(s) => {
                s.push('\n');
                s.push_str(text);
            }
            None => self.system = Some(text.to_string()),
        }
    }

    /// A message from the user's side (`true`: user or tool result) or the assistant's.
    pub fn message(&mut self, user_side: bool) {
        if self.user_side != Some(user_side) {
            self.messages += 1;
            self.user_side = Some(user_side);
            if user_side {
                self.last_user_text.clear();
                self.results_before_turn = self.tool_results.len();
            }
        }
    }

    /// A piece of text from the user in the current turn.
    pub fn user_text(&mut self, text: &str) {
        if !self.last_user_text.is_empty() {
            self.last_user_text.push('\n');
        }
        self.last_user_text.push_str(text);
    }

    /// The last tool result, when the conversation ends with a user turn that answers tool calls:
    /// what an `agent` model reads back.
    pub fn answered_tool(&self) -> Option<&str> {
        (self.user_side == Some(true) && self.tool_results.len() > self.results_before_turn)
            .then(|| self.tool_results.last().map(String::as_str))
            .flatten()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Text parts of an OpenAI or Anthropic content value (a string, or blocks of `type: text`),
/// joined with `\n`.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A deterministic token count: whitespace-separated words of every text in `v`.
pub(crate) fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(items) => items.iter().map(words).sum(),
        Value::Object(m) => {
            m.get("text").or_else(|| m.get("content")).or_else(|| m.get("parts")).map(words).unwrap_or(0)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_group_one_side() {
        let mut s = Summary::default();
        s.message(true);
        s.user_text("a");
        s.message(true);
        s.user_text("b");
        assert_eq!(s.last_user_text, "a\nb");
        s.message(false);
        s.message(true);
        assert_eq!(s.messages, 3);
        assert_eq!(s.last_user_text, "");
        assert_eq!(
            s.to_json(),
            r#"{"system":null,"messages":3,"images":0,"tools":[],"tool_results":[],"max_tokens":null,"last_user_text":""}"#
        );
    }
}
