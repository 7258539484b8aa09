//! `NodeId`: the name of a physical node, cheap to clone and compare.
//!
//! Node ids appear in ring tokens, preference lists, version-vector entries
//! and RPC handshakes. In version vectors the entry names an *actor*: the
//! node plus the epoch of its current life (`n1~2`), see
//! [`NodeId::with_epoch`]. They are short printable names (`n1`, `db-03`); the
//! limits live here so that every place that parses one checks the same rules.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// The name of a physical node.
///
/// On the wire it is a plain string. It is encoded from the shared `str`
/// and decoded from a borrowed one, so neither direction makes a `String`
/// on the way (they showed up as a tenth of a put's allocations).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// Why a string is not a valid node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id is {len} bytes; the limit is {MAX_NODE_ID_BYTES}")]
    TooLong { len: usize },
    #[error("node id {0:?} may only contain ASCII letters, digits, '-', '_' and '.' (plus '~<epoch>' in actor ids)")]
    BadCharacter(String),
}

impl NodeId {
    /// Parses and validates a node id, or an actor id `<node>~<epoch>` (see
    /// [`NodeId::with_epoch`]).
    pub fn new(id: &str) -> Result<Self, NodeIdError> {
        let (base, epoch) = match id.split_once('~') {
            Some((base, epoch)) => (base, Some(epoch)),
            None => (id, None),
        };
        if base.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if base.len() > MAX_NODE_ID_BYTES {
            return Err(NodeIdError::TooLong { len: base.len() });
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        // Canonical decimal above 0: digits only, no leading zero, fits u64.
        let epoch_ok = epoch.is_none_or(|e| {
            e.bytes().all(|b| b.is_ascii_digit()) && !e.starts_with('0') && e.parse::<u64>().is_ok()
        });
        if !base.bytes().all(plain) || !epoch_ok {
            return Err(NodeIdError::BadCharacter(id.to_string()));
        }
        Ok(NodeId(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The actor id this node mints dots under in its `epoch`-th life: the
    /// plain id for epoch 0, `<id>~<epoch>` after. A node that may have lost
    /// unsynced writes in a crash starts a new epoch, so it can never mint a
    /// dot that another replica already holds for a different value.
    pub fn with_epoch(&self, epoch: u64) -> NodeId {
        match epoch {
            0 => NodeId(Arc::from(self.member())),
            n => NodeId(Arc::from(format!("{}~{n}", self.member()).as_str())),
        }
    }

    /// The node an actor id belongs to (the id itself for a plain node id).
    pub fn member(&self) -> &str {
        self.0.split_once('~').map_or(&self.0, |(base, _)| base)
    }

    /// Whether this is an actor id with an epoch, not a plain node id.
    pub fn has_epoch(&self) -> bool {
        self.0.contains('~')
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::new(&s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0.to_string()
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = NodeId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeId, E> {
                NodeId::new(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

impl std::str::FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_rejects_the_rest() {
        assert!(NodeId::new("n1").is_ok());
        assert!(NodeId::new("db-03.eu_west").is_ok());
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
        assert!(matches!(
            NodeId::new("a b"),
            Err(NodeIdError::BadCharacter(_))
        ));
        assert!(matches!(
            NodeId::new(&"x".repeat(65)),
            Err(NodeIdError::TooLong { len: 65 })
        ));
    }

    #[test]
    fn actor_ids_carry_an_epoch_after_the_node_id() {
        let n1 = NodeId::new("n1").unwrap();
        assert_eq!(n1.with_epoch(0), n1);
        let a = n1.with_epoch(3);
        assert_eq!(
            (a.as_str(), a.member(), a.has_epoch()),
            ("n1~3", "n1", true)
        );
        assert_eq!(NodeId::new("n1~3"), Ok(a.clone()));
        assert_eq!(a.with_epoch(4).as_str(), "n1~4");
        for bad in [
            "n1~",
            "~3",
            "n1~0",
            "n1~03",
            "n1~x",
            "n1~1~2",
            "a b~1",
            "n1~+3",
            "n1~-3",
            "n1~18446744073709551616",
        ] {
            assert!(NodeId::new(bad).is_err(), "{bad}");
        }
        assert!(NodeId::new("n1~18446744073709551615").is_ok(), "u64::MAX");
    }

    #[test]
    fn the_wire_form_is_a_plain_string_and_decoding_checks_it() {
        let id = NodeId::new("n1~7").unwrap();
        let wire = postcard::to_allocvec(&id).unwrap();
        assert_eq!(wire, postcard::to_allocvec("n1~7").unwrap());
        assert_eq!(postcard::from_bytes::<NodeId>(&wire), Ok(id.clone()));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"n1~7\"");
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        let bad = postcard::to_allocvec("a b").unwrap();
        assert!(postcard::from_bytes::<NodeId>(&bad).is_err());
        let err = serde_json::from_str::<NodeId>("\"n1~0\"").unwrap_err();
        assert!(err.to_string().contains("n1~0"), "{err}");
    }
}
