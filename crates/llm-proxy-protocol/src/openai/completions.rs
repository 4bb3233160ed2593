//! The legacy Completions API (`POST /v1/completions`): a prompt in, text that continues it out.
//!
//! As with Chat Completions, the request keeps what the gateway does not read in `extra`, so a
//! same-protocol passthrough forwards the client's body with only `model` rewritten. Answers, whole
//! or streamed, are `text_completion` objects whose `choices` carry `finish_reason` and whose
//! `usage` is Chat Completions' `Usage`: the passthrough scans them with `ChunkScan`, as it scans a
//! chat stream.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::StreamOptions;

/// `POST /v1/completions` body. Every documented field is typed, so that a translation can refuse
/// by name what a chat model cannot do; fields of other servers (vLLM's `top_k`...) ride along in
/// `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// Required, though it may be `null`.
    pub prompt: Prompt,
    /// At most this many tokens are generated; `DEFAULT_MAX_TOKENS` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Completions per prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Text that comes after the completion (insertion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Whether the answer repeats the prompt before the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// How many likely alternatives to report per token, with their log probabilities (0–5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Candidates generated server-side, of which the `n` best are returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Token id (as a string) → bias, in the model's own tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CompletionRequest {
    /// What OpenAI generates at most when `max_tokens` is absent.
    pub const DEFAULT_MAX_TOKENS: u64 = 16;

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The most tokens the answer may have, OpenAI's default included.
    pub fn max_tokens_or_default(&self) -> u64 {
        self.max_tokens.unwrap_or(Self::DEFAULT_MAX_TOKENS)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false)
    }

    /// Asks upstream for the usage chunk, which the gateway needs to count tokens; the caller strips
    /// it again if the client did not ask for it.
    pub fn request_stream_usage(&mut self) {
        self.stream_options.get_or_insert_with(StreamOptions::default).include_usage = Some(true);
    }
}

/// `prompt`: one text, several (each completed on its own), or the same as token ids of the
/// model's tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `null`: the API's default, the document separator: the model writes as if from the start of
    /// a new document.
    Null,
    Text(String),
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

impl Prompt {
    /// About how many bytes of text the prompt stands for (a token id is about four).
    pub fn text_len(&self) -> usize {
        match self {
            Self::Null => 0,
            Self::Text(text) => text.len(),
            Self::Texts(texts) => texts.iter().map(String::len).sum(),
            Self::Tokens(tokens) => tokens.len() * 4,
            Self::TokenLists(lists) => lists.iter().map(|l| l.len() * 4).sum(),
        }
    }
}

impl Serialize for Prompt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Text(text) => s.serialize_str(text),
            Self::Texts(texts) => texts.serialize(s),
            Self::Tokens(tokens) => tokens.serialize(s),
            Self::TokenLists(lists) => lists.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Prompt {
    // By hand rather than `untagged`: a bad element is then named (`prompt[2]`) and said what it
    // should be, rather than the whole prompt said to match no variant.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PromptVisitor;
        impl<'de> Visitor<'de> for PromptVisitor {
            type Value = Prompt;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of strings, an array of token ids or an array of token-id arrays")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Prompt, E> {
                Ok(Prompt::Null)
            }

            fn visit_none<E: de::Error>(self) -> Result<Prompt, E> {
                Ok(Prompt::Null)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Prompt, E> {
                Ok(Prompt::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Prompt, E> {
                Ok(Prompt::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Prompt, A::Error> {
                let mixed =
                    || de::Error::custom("a prompt array holds strings, token ids or token-id arrays, not a mix");
                let mut prompt = Prompt::Texts(Vec::new());
                let mut first = true;
                while let Some(element) = seq.next_element::<Element>()? {
                    match (&mut prompt, element) {
                        (Prompt::Texts(texts), Element::Text(text)) => texts.push(text),
                        (Prompt::Tokens(tokens), Element::Token(token)) => tokens.push(token),
                        (Prompt::TokenLists(lists), Element::Tokens(tokens)) => lists.push(tokens),
                        (_, element) if first => {
                            prompt = match element {
                                Element::Text(text) => Prompt::Texts(vec![text]),
                                Element::Token(token) => Prompt::Tokens(vec![token]),
                                Element::Tokens(tokens) => Prompt::TokenLists(vec![tokens]),
                            }
                        }
                        _ => return Err(mixed()),
                    }
                    first = false;
                }
                Ok(prompt)
            }
        }
        d.deserialize_any(PromptVisitor)
    }
}

/// One element of a prompt array.
enum Element {
    Text(String),
    Token(u32),
    Tokens(Vec<u32>),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Element, E> {
                Ok(Element::Text(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                u32::try_from(v)
                    .map(Element::Token)
                    .map_err(|_| E::custom(format_args!("token id {v} is out of range")))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                let mut tokens = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(token) = seq.next_element::<u32>()? {
                    tokens.push(token);
                }
                Ok(Element::Tokens(tokens))
            }
        }
        d.deserialize_any(ElementVisitor)
    }
}

/// `stop`: up to four sequences where the model stops, the sequence itself left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode;
    use serde_json::json;

    #[test]
    fn keeps_unknown_fields_and_rewrites_only_model() {
        let body = br#"{"model":"fast","prompt":["Say this","is a test"],"max_tokens":7,"temperature":0.5,
            "n":2,"best_of":3,"echo":true,"logprobs":2,"suffix":".","stop":["\n"],"logit_bias":{"50256":-100},
            "seed":7,"user":"u1","presence_penalty":0.1,"frequency_penalty":0.2,"top_k":40,"stream":false}"#;
        let mut req: CompletionRequest = decode(body).unwrap();
        assert_eq!(req.extra.keys().collect::<Vec<_>>(), ["top_k"], "only what the API does not document");
        req.model = "gpt-3.5-turbo-instruct".into();
        let out = serde_json::to_value(&req).unwrap();
        let mut want: Value = serde_json::from_slice(body).unwrap();
        want["model"] = "gpt-3.5-turbo-instruct".into();
        assert_eq!(out, want);
    }

    #[test]
    fn a_prompt_is_a_text_texts_or_tokens() {
        let prompt = |p: Value| decode::<CompletionRequest>(json!({"model": "m", "prompt": p}).to_string().as_bytes());
        assert_eq!(prompt(json!("Say this is a test")).unwrap().prompt, Prompt::Text("Say this is a test".into()));
        assert_eq!(prompt(json!(null)).unwrap().prompt, Prompt::Null);
        assert_eq!(prompt(json!(["a", "b"])).unwrap().prompt, Prompt::Texts(vec!["a".into(), "b".into()]));
        assert_eq!(prompt(json!([1212, 318])).unwrap().prompt, Prompt::Tokens(vec![1212, 318]));
        assert_eq!(
            prompt(json!([[1212], [318, 13]])).unwrap().prompt,
            Prompt::TokenLists(vec![vec![1212], vec![318, 13]])
        );
        assert_eq!(prompt(json!([])).unwrap().prompt, Prompt::Texts(Vec::new()));
        for (bad, param) in [
            (json!(["a", 1]), "prompt"),
            (json!([1, "a"]), "prompt"),
            (json!([true]), "prompt[0]"),
            (json!([[1, -2]]), "prompt[0][1]"),
            (json!(5), "prompt"),
            (json!({"text": "a"}), "prompt"),
        ] {
            let err = prompt(bad.clone()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{bad}: {err}");
        }
        let err = decode::<CompletionRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert!(err.message.contains("missing field `prompt`"), "{}", err.message);
        for p in [json!(null), json!("x"), json!(["a"]), json!([1, 2]), json!([[1], [2, 3]])] {
            let req = prompt(p.clone()).unwrap();
            assert_eq!(serde_json::to_value(&req.prompt).unwrap(), p, "written back as it came");
        }
    }

    #[test]
    fn defaults_and_stream_usage() {
        let mut req: CompletionRequest =
            decode(br#"{"model":"m","prompt":"x","stream":true,"stream_options":{"x":1}}"#).unwrap();
        assert_eq!(req.max_tokens_or_default(), 16, "OpenAI's default");
        assert!(req.is_stream() && !req.wants_stream_usage());
        req.request_stream_usage();
        assert_eq!(serde_json::to_value(&req).unwrap()["stream_options"], json!({"include_usage": true, "x": 1}));
        assert_eq!(
            decode::<CompletionRequest>(br#"{"model":"m","prompt":"x","stop":"\n"}"#).unwrap().stop.map(Stop::into_vec),
            Some(vec!["\n".to_string()])
        );
        let err = decode::<CompletionRequest>(br#"{"model":"m","prompt":"x","n":-1}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("n"));
    }
}
