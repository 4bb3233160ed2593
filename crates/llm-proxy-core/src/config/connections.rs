//! The `connections:` section: what one client connection may hold and for how long, and how many
//! connections and requests the gateway takes at once. The defaults hold on a small host: a client
//! that never finishes its headers, never sends another request, or never reads its answer is cut
//! loose within seconds, and a flood waits in the kernel's backlog instead of taking every file
//! descriptor.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Env, env_parse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open client connections at most; further ones wait in the listen backlog. Lowered at start
    /// to fit the process's open-file limit.
    pub max_connections: usize,
    /// From a connection's first byte (or its accept) to the end of a request's headers.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a write to the client may stay blocked (a client that stopped reading).
    pub write_timeout: Duration,
    /// Requests on `/v1` in flight at once, streams included; past it, 503 with `retry-after`.
    pub max_in_flight: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_in_flight: 2_048,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnections {
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
    max_in_flight: Option<usize>,
}

impl RawConnections {
    /// The section with `LLM_PROXY_MAX_CONNECTIONS` and `LLM_PROXY_MAX_IN_FLIGHT` applied; every
    /// value must be at least 1.
    pub(super) fn build(self, env: &dyn Env, errors: &mut Vec<ConfigError>) -> ConnectionLimits {
        let d = ConnectionLimits::default();
        let max_connections = env_parse(env, "MAX_CONNECTIONS", errors).or(self.max_connections);
        let max_in_flight = env_parse(env, "MAX_IN_FLIGHT", errors).or(self.max_in_flight);
        for (name, zero) in [
            ("max_connections", max_connections == Some(0)),
            ("header_read_timeout_secs", self.header_read_timeout_secs == Some(0)),
            ("idle_timeout_secs", self.idle_timeout_secs == Some(0)),
            ("write_timeout_secs", self.write_timeout_secs == Some(0)),
            ("max_in_flight", max_in_flight == Some(0)),
        ] {
            if zero {
                errors.push(ConfigError { path: format!("connections.{name}"), message: "must be at least 1".into() });
            }
        }
        let secs = |v: Option<u64>, default: Duration| v.map(Duration::from_secs).unwrap_or(default);
        ConnectionLimits {
            max_connections: max_connections.unwrap_or(d.max_connections),
            header_read_timeout: secs(self.header_read_timeout_secs, d.header_read_timeout),
            idle_timeout: secs(self.idle_timeout_secs, d.idle_timeout),
            write_timeout: secs(self.write_timeout_secs, d.write_timeout),
            max_in_flight: max_in_flight.unwrap_or(d.max_in_flight),
        }
    }
}
