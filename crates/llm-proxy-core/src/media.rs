//! OpenAI endpoints the gateway passes through without translating (images, audio, moderations):
//! which ones there are, the request as the server read it (a JSON body, or a multipart body whose
//! head was read as far as its `model` field and whose rest is still arriving), and the answer.
//! Only OpenAI-protocol upstreams serve them.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use llm_proxy_protocol::openai::ModelledBody;

use crate::provider::{ProviderError, TokenUsage};

/// A passed-through OpenAI endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEndpoint {
    ImagesGenerations,
    ImagesEdits,
    AudioSpeech,
    AudioTranscriptions,
    AudioTranslations,
    Moderations,
}

impl MediaEndpoint {
    pub const ALL: [Self; 6] = [
        Self::ImagesGenerations,
        Self::ImagesEdits,
        Self::AudioSpeech,
        Self::AudioTranscriptions,
        Self::AudioTranslations,
        Self::Moderations,
    ];

    /// The path under an OpenAI base URL (`…/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Self::ImagesGenerations => "images/generations",
            Self::ImagesEdits => "images/edits",
            Self::AudioSpeech => "audio/speech",
            Self::AudioTranscriptions => "audio/transcriptions",
            Self::AudioTranslations => "audio/translations",
            Self::Moderations => "moderations",
        }
    }

    /// The request log's endpoint name.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::ImagesGenerations => "images.generations",
            Self::ImagesEdits => "images.edits",
            Self::AudioSpeech => "audio.speech",
            Self::AudioTranscriptions => "audio.transcriptions",
            Self::AudioTranslations => "audio.translations",
            Self::Moderations => "moderations",
        }
    }

    /// The model OpenAI uses when a JSON request names none (its reference's defaults); the other
    /// endpoints require one.
    pub fn default_model(self) -> Option<&'static str> {
        match self {
            Self::ImagesGenerations => Some("dall-e-2"),
            Self::Moderations => Some("omni-moderation-latest"),
            _ => None,
        }
    }

    /// What an adapter of another protocol answers, naming the endpoint the client called.
    pub fn unsupported(self, protocol: &str) -> ProviderError {
        ProviderError::Unsupported(format!(
            "the {protocol} protocol has no /v1/{}; use a model of an OpenAI-protocol provider",
            self.path()
        ))
    }
}

/// Bytes of a body in flight; an error ends it (the client went away, or past the size limit).
pub type UploadStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
/// An answer in flight.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<AnswerChunk, ProviderError>> + Send>>;

/// A piece of a streamed answer, as the upstream sent it, and the usage it reported, if it did
/// (an SSE answer's last event: `transcript.text.done`, `speech.audio.done`).
pub struct AnswerChunk {
    pub bytes: Bytes,
    pub usage: Option<TokenUsage>,
}

/// A passed-through request: cloned for an attempt that may be followed by another.
#[derive(Clone)]
pub struct MediaRequest {
    pub endpoint: MediaEndpoint,
    pub body: MediaBody,
}

impl MediaRequest {
    /// The model as the client named it.
    pub fn model(&self) -> &str {
        match &self.body {
            MediaBody::Json(b) => &b.model,
            MediaBody::Multipart(m) => &m.model,
        }
    }
}

#[derive(Clone)]
pub enum MediaBody {
    /// Re-encoded with the upstream model.
    Json(ModelledBody),
    /// Sent as it came, with the model's bytes replaced.
    Multipart(MultipartUpload),
}

/// A `multipart/form-data` body read as far as its `model` field: what came before the value,
/// the value, what was read after it, and the rest of the client's body, still arriving.
#[derive(Clone)]
pub struct MultipartUpload {
    /// The client's `content-type`, boundary and all: the body goes upstream with it unchanged.
    pub content_type: String,
    pub before_model: Bytes,
    pub model: String,
    pub after_model: Bytes,
    /// The client's `content-length`, when it sent one: the upstream's is made from it.
    pub content_length: Option<u64>,
    /// The body not read yet; `None` when it was all read. Only one attempt can send it: the first
    /// takes it, and a failure after that is final (`ProviderError::Spent`).
    pub rest: Option<Arc<Mutex<Option<UploadStream>>>>,
}

impl MultipartUpload {
    /// The body's length once `upstream_model` replaces the client's model, when it is known.
    pub fn upstream_length(&self, upstream_model: &str) -> Option<u64> {
        let length = self.content_length?;
        length.checked_sub(self.model.len() as u64).map(|l| l + upstream_model.len() as u64)
    }

    /// The rest of the body, for the one attempt that sends it. `Err` when an earlier attempt
    /// already took it.
    pub fn take_rest(&self) -> Result<Option<UploadStream>, ProviderError> {
        let Some(slot) = &self.rest else { return Ok(None) };
        // A poisoned lock only means another attempt panicked holding it: the slot is still valid.
        let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.take().map(Some).ok_or_else(|| {
            ProviderError::Spent(Box::new(ProviderError::Protocol("the upload was already sent upstream".into())))
        })
    }
}

/// A passed-through answer with a success status.
pub struct MediaAnswer {
    pub status: u16,
    /// The upstream's `content-type`, passed on.
    pub content_type: Option<String>,
    pub body: MediaAnswerBody,
}

pub enum MediaAnswerBody {
    /// A JSON answer, read whole (they are small) and scanned for usage.
    Json { body: Bytes, usage: Option<TokenUsage> },
    /// Anything else (audio, text, SSE): passed on as it arrives, an SSE one scanned for usage.
    Stream(AnswerStream),
}
