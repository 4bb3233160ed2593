//! Wire types of the protocols llm-proxy speaks, and the SSE codec.
//!
//! Pure data and pure functions: no I/O, no async runtime, no HTTP types. Everything here compiles
//! and tests in seconds, so translation code can be iterated on without linking the server.

pub mod anthropic;
pub mod gemini;
pub mod json;
pub mod messages;
pub mod multipart;
pub mod openai;
pub mod sse;
