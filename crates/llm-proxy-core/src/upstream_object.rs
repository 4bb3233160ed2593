//! OpenAI's Files and Batches APIs, passed through to one OpenAI-protocol provider: the request an
//! adapter sends (a path the gateway builds under the provider's base URL, never one the client
//! chose) and the record the gateway keeps of every file and batch made through it, so that each
//! is the business of the key that made it alone, and is found again at the provider that holds it.

use bytes::Bytes;

use crate::UnixMillis;
use crate::media::UploadStream;

/// What an upstream object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    File,
    Batch,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Batch => "batch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "file" => Some(Self::File),
            "batch" => Some(Self::Batch),
            _ => None,
        }
    }
}

/// A file or batch made through the gateway (or, for a batch's output and error files, made by a
/// batch the key owns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamObject {
    /// The provider's id (`file-…`, `batch_…`).
    pub id: String,
    pub kind: ObjectKind,
    /// The provider that holds it: every later call about it goes there.
    pub provider: String,
    /// The virtual key that owns it (the master key's stand-in for its own).
    pub key_id: String,
    /// A file's `purpose`, for listing by purpose.
    pub purpose: Option<String>,
    pub created_at: UnixMillis,
    /// The object as the provider last described it: a JSON object.
    pub object: String,
}

/// A page of a key's objects of one kind, as OpenAI's list endpoints page them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery {
    pub key_id: String,
    pub kind: ObjectKind,
    pub purpose: Option<String>,
    /// The page starts after this object (in the page's order).
    pub after: Option<String>,
    pub limit: u32,
    /// Newest first (OpenAI's default).
    pub descending: bool,
}

/// Whether `id` can be a provider's object id: what the gateway puts into an upstream path is
/// checked by this first, so no id can reach another path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a batch in `status` can still change (its object is then asked of the provider again
/// when listed).
pub fn batch_is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "expired" | "cancelled")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMethod {
    Get,
    Post,
    Delete,
}

/// One call to a provider's Files or Batches API.
pub struct PassRequest {
    pub method: PassMethod,
    /// The path under the provider's base URL (`files`, `files/{id}/content`, `batches/{id}/cancel`):
    /// built by the gateway from a fixed set, with ids checked by `valid_id`.
    pub path: String,
    pub body: PassBody,
}

pub enum PassBody {
    Empty,
    Json(Bytes),
    /// A multipart upload streamed as it arrives: it can be sent once only.
    Upload {
        content_type: String,
        content_length: Option<u64>,
        body: UploadStream,
    },
}

/// What an adapter of another protocol answers.
pub fn unsupported(protocol: &str) -> crate::provider::ProviderError {
    crate::provider::ProviderError::Unsupported(format!(
        "the {protocol} protocol has no OpenAI Files or Batches API; name a provider of the OpenAI protocol"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_leave_their_path_are_refused() {
        assert!(valid_id("file-abc123"));
        assert!(valid_id("batch_6789_X"));
        for bad in ["", "../models", "file-1/content", "a?b=c", "a%2f", "a b", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn only_unfinished_batches_can_change() {
        for s in ["validating", "in_progress", "finalizing", "cancelling"] {
            assert!(!batch_is_final(s), "{s}");
        }
        for s in ["completed", "failed", "expired", "cancelled"] {
            assert!(batch_is_final(s), "{s}");
        }
    }
}
