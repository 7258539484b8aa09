//! Named limits: every bound a client, a peer or a disk can push against.
//!
//! Each limit has a name, a default, a typed error where it is enforced, and a
//! test. Operators change the configurable ones through [`Limits`]; the fixed
//! ones are protocol constants.

use serde::{Deserialize, Serialize};

/// Limits an operator may configure (all sizes in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest key accepted from a client (default 1 KiB).
    pub max_key_bytes: usize,
    /// Largest value accepted from a client (default 1 MiB).
    pub max_value_bytes: usize,
    /// Most concurrent versions a key may hold; a put that would create more
    /// is refused until a client reads and reconciles (default 64, as Riak's
    /// `max_siblings` refuses writes past its limit).
    pub max_siblings: usize,
    /// Longest causal context token accepted, encoded (default 8 KiB).
    pub max_context_bytes: usize,
    /// Most client requests a node coordinates at once; more get 503 (default 4096).
    pub max_in_flight_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_siblings: 64,
            max_context_bytes: 8 * 1024,
            max_in_flight_requests: 4096,
        }
    }
}

/// Longest bucket name, in bytes.
pub const MAX_BUCKET_BYTES: usize = 64;

/// Largest key (bytes, bucket excluded) a node accepts from a peer or reads
/// back from disk. Nodes may configure different `max_key_bytes` for their
/// clients, so peers are held to this fixed bound instead; it leaves room
/// for the 9-byte layout header and a 64-byte bucket under the storage key
/// limit (64 KiB - 2), and every node's `max_key_bytes` must stay within it
/// ([`Limits::validate`]) so any key a client may write can cross the wire.
pub const MAX_KEY_BYTES_ON_WIRE: usize = 32 * 1024;

/// Largest RPC frame between nodes. A replica object can hold up to
/// `max_siblings` values, so this must exceed `max_siblings * max_value_bytes`
/// plus clocks; [`Limits::validate`] checks that it does.
pub const MAX_FRAME_BYTES: usize = 128 * 1024 * 1024;

/// Most entries a decoded version vector may hold (one per node that ever
/// coordinated a write of the key; see `version_vector` for why that is small).
pub const MAX_CLOCK_ENTRIES: usize = 1024;

/// Longest TTL a put may carry (`?ttl=`): ten years, in seconds.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

impl Limits {
    /// Checks the limits are usable together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 || self.max_siblings == 0 {
            return Err(
                "max_key_bytes, max_value_bytes and max_siblings must be at least 1".into(),
            );
        }
        if self.max_key_bytes > MAX_KEY_BYTES_ON_WIRE {
            return Err(format!(
                "max_key_bytes ({}) must be at most {MAX_KEY_BYTES_ON_WIRE}, the largest key peers accept",
                self.max_key_bytes
            ));
        }
        if self.max_in_flight_requests == 0 {
            return Err("max_in_flight_requests must be at least 1".into());
        }
        if self.max_context_bytes < 64 {
            return Err("max_context_bytes must be at least 64".into());
        }
        let object = self.max_siblings.saturating_mul(self.max_value_bytes + 256);
        if object >= MAX_FRAME_BYTES {
            return Err(format!(
                "max_siblings ({}) x max_value_bytes ({}) must stay below the {} byte RPC frame limit",
                self.max_siblings, self.max_value_bytes, MAX_FRAME_BYTES
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documented_values() {
        let l = Limits::default();
        assert_eq!(l.max_key_bytes, 1024);
        assert_eq!(l.max_value_bytes, 1 << 20);
        assert!(l.validate().is_ok());
    }

    #[test]
    fn objects_that_cannot_fit_a_frame_are_rejected() {
        let l = Limits {
            max_siblings: 1000,
            max_value_bytes: 1 << 20,
            ..Limits::default()
        };
        assert!(l.validate().unwrap_err().contains("frame limit"));
        let zero = Limits {
            max_siblings: 0,
            ..Limits::default()
        };
        assert!(zero.validate().is_err());
        let huge_keys = Limits {
            max_key_bytes: MAX_KEY_BYTES_ON_WIRE + 1,
            ..Limits::default()
        };
        assert!(huge_keys.validate().unwrap_err().contains("max_key_bytes"));
        let wire_keys = Limits {
            max_key_bytes: MAX_KEY_BYTES_ON_WIRE,
            ..Limits::default()
        };
        assert!(wire_keys.validate().is_ok());
    }
}
