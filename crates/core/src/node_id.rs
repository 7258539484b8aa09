//! `NodeId`: the name of a physical node, cheap to clone and compare.
//!
//! Node ids appear in ring tokens, preference lists, version-vector entries
//! and RPC handshakes. They are short printable names (`n1`, `db-03`); the
//! limits live here so that every place that parses one checks the same rules.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// The name of a physical node.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

/// Why a string is not a valid node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id is {len} bytes; the limit is {MAX_NODE_ID_BYTES}")]
    TooLong { len: usize },
    #[error("node id {0:?} may only contain ASCII letters, digits, '-', '_' and '.'")]
    BadCharacter(String),
}

impl NodeId {
    /// Parses and validates a node id.
    pub fn new(id: &str) -> Result<Self, NodeIdError> {
        if id.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if id.len() > MAX_NODE_ID_BYTES {
            return Err(NodeIdError::TooLong { len: id.len() });
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(NodeIdError::BadCharacter(id.to_string()));
        }
        Ok(NodeId(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
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
}
