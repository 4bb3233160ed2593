//! Providers llm-proxy knows by name: their wire protocol, base URL, key variables and models.

use serde::{Deserialize, Serialize};

/// The wire protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Openai,
    Anthropic,
    Gemini,
    Glm,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::Openai),
            "anthropic" => Some(Self::Anthropic),
            "gemini" => Some(Self::Gemini),
            "glm" => Some(Self::Glm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Glm => "glm",
        }
    }
}

/// A provider known by name, so that `openai: { api_key: ... }` (or just `OPENAI_API_KEY` in the
/// environment) is a complete configuration.
#[derive(Debug)]
pub struct KnownProvider {
    pub name: &'static str,
    /// Other names users write for it (`xai` for `grok`).
    pub aliases: &'static [&'static str],
    pub protocol: Protocol,
    /// What the provider's own SDK takes as base URL; `None` when the user must say where it runs.
    pub base_url: Option<&'static str>,
    /// Environment variables holding its key, first match wins.
    pub key_vars: &'static [&'static str],
    /// Models served when the config lists none: lets bare ids like `gpt-4o` resolve.
    pub models: &'static [&'static str],
    /// Whether it accepts `stream_options` (OpenAI protocol only); the gateway uses it to ask for
    /// the usage chunk of a stream.
    pub stream_options: bool,
}

pub const KNOWN_PROVIDERS: &[KnownProvider] = &[
    KnownProvider {
        name: "openai",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://api.openai.com/v1"),
        key_vars: &["OPENAI_API_KEY"],
        stream_options: true,
        models: &[
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "o3",
            "o3-mini",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
        ],
    },
    KnownProvider {
        name: "anthropic",
        aliases: &[],
        protocol: Protocol::Anthropic,
        base_url: Some("https://api.anthropic.com"),
        key_vars: &["ANTHROPIC_API_KEY"],
        stream_options: true,
        models: &["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"],
    },
    KnownProvider {
        name: "gemini",
        aliases: &["google"],
        protocol: Protocol::Gemini,
        base_url: Some("https://generativelanguage.googleapis.com"),
        key_vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        stream_options: true,
        models: &["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"],
    },
    KnownProvider {
        name: "glm",
        aliases: &["zhipuai"],
        protocol: Protocol::Glm,
        base_url: Some("https://open.bigmodel.cn/api/paas/v4"),
        key_vars: &["GLM_API_KEY", "ZHIPUAI_API_KEY"],
        // GLM puts usage in the finish chunk of every stream; `stream_options` is not in its API.
        stream_options: false,
        models: &["glm-4.6", "glm-4.5", "glm-4.5-air"],
    },
    KnownProvider {
        name: "groq",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://api.groq.com/openai/v1"),
        key_vars: &["GROQ_API_KEY"],
        stream_options: true,
        models: &["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b", "openai/gpt-oss-20b"],
    },
    KnownProvider {
        name: "grok",
        aliases: &["xai"],
        protocol: Protocol::Openai,
        base_url: Some("https://api.x.ai/v1"),
        key_vars: &["XAI_API_KEY", "GROK_API_KEY"],
        stream_options: true,
        models: &["grok-4", "grok-4-fast", "grok-3", "grok-3-mini", "grok-code-fast-1"],
    },
    KnownProvider {
        name: "deepseek",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://api.deepseek.com"),
        key_vars: &["DEEPSEEK_API_KEY"],
        stream_options: true,
        models: &["deepseek-chat", "deepseek-reasoner"],
    },
    KnownProvider {
        name: "mistral",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://api.mistral.ai/v1"),
        key_vars: &["MISTRAL_API_KEY"],
        // Mistral answers 422 "extra inputs are not permitted" to `stream_options`, and reports
        // usage in the last chunk of every stream anyway.
        stream_options: false,
        models: &[
            "mistral-large-latest",
            "mistral-medium-latest",
            "mistral-small-latest",
            "codestral-latest",
            "mistral-embed",
        ],
    },
    KnownProvider {
        name: "openrouter",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://openrouter.ai/api/v1"),
        key_vars: &["OPENROUTER_API_KEY"],
        stream_options: true,
        models: &[],
    },
    KnownProvider {
        name: "together",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("https://api.together.xyz/v1"),
        key_vars: &["TOGETHER_API_KEY", "TOGETHERAI_API_KEY"],
        stream_options: true,
        models: &[],
    },
    KnownProvider {
        name: "ollama",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: Some("http://127.0.0.1:11434/v1"),
        key_vars: &[],
        stream_options: true,
        models: &[],
    },
    KnownProvider {
        name: "vllm",
        aliases: &[],
        protocol: Protocol::Openai,
        base_url: None,
        key_vars: &[],
        stream_options: true,
        models: &[],
    },
];

/// Looks a provider up by its name or one of its aliases.
pub fn known_provider(name: &str) -> Option<&'static KnownProvider> {
    KNOWN_PROVIDERS.iter().find(|p| p.name == name || p.aliases.contains(&name))
}
