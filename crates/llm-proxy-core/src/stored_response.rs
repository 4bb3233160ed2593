//! Responses API answers the gateway keeps (`store: true`, OpenAI's default), so that
//! `previous_response_id` continues a conversation on any upstream and `GET /v1/responses/{id}`
//! returns it, to the key that made it and no other.
//!
//! Each answer is kept with its own turn only (the input items of its request and the response
//! object, whose `output` holds the answer's items) and the id of the answer it continued: a
//! conversation is the chain of its answers, walked back from the newest, so a long agent session
//! is not stored again with every turn.

use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_…`, as the client received it.
    pub id: String,
    /// The virtual key that made it: the only one that may read, continue or delete it.
    pub key_id: String,
    pub created_at: UnixMillis,
    /// When retention removes it.
    pub expires_at: UnixMillis,
    /// The answer this one continued (`previous_response_id`), if any.
    pub previous_id: Option<String>,
    /// The provider that holds the conversation itself, when an OpenAI-protocol upstream served it
    /// as a passthrough with its own `store`: a follow-up sent there forwards
    /// `previous_response_id` as it is rather than the items.
    pub upstream: Option<String>,
    /// This turn's input items: a JSON array.
    pub input: String,
    /// The response object as the client received it: a JSON object.
    pub response: String,
}

/// How many answers back a conversation is followed: past this, older turns are left out (a
/// loop of ids written by a broken store cannot hang a request either).
pub const MAX_CHAIN: u32 = 10_000;
