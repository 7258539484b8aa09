//! What a node says about itself in gossip: its [`NodeRecord`], and the
//! checks every record from a peer must pass.
//!
//! A record is owned by the node it describes. Only that node changes it
//! (through [`super::Membership::update_self`]), and every change bumps the
//! version of its entry, so the newest record of a node is simply the one
//! with the highest `(generation, version)` stamp (see [`super::entry`]).
//!
//! Records arrive from peers, so [`NodeRecord::validate`] bounds everything
//! that could grow: addresses, zone names, capacity, transfer counters. A
//! node also validates its own record before it changes it, so it can never
//! gossip a record its peers would refuse. This module never merges and
//! never compares records by age; that is the entry's job.

use crate::layout::{MAX_CAPACITY, MAX_PARTITIONS};
use crate::layout_history::LayoutStamp;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Longest `host:port` address a record may carry, in bytes: a 253-byte DNS
/// name, the colon and a 5-digit port, with room for IPv6 brackets.
pub const MAX_ADDRESS_BYTES: usize = 261;

/// Longest zone name a record may carry, in bytes (as long as a node id).
pub const MAX_ZONE_BYTES: usize = crate::node_id::MAX_NODE_ID_BYTES;

/// What a node says about itself. Only that node changes its own record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node.
    pub id: NodeId,
    /// Its node-to-node RPC address, `host:port`.
    pub rpc: String,
    /// Its client HTTP address, `host:port`, if it serves one.
    pub http: Option<String>,
    /// Relative weight in the layout, `1..=MAX_CAPACITY`.
    pub capacity: u32,
    /// Failure domain; `None` is the same zone as `Some("")`.
    pub zone: Option<String>,
    /// Layout version whose data this node holds (set when its streaming is
    /// done).
    pub synced: Option<LayoutStamp>,
    /// Newest layout version this node writes with.
    pub acked: Option<LayoutStamp>,
    /// The layout version this node reads with.
    pub read: Option<LayoutStamp>,
    /// Its in-flight streaming, for `admin status` on any node.
    pub transfer: Option<TransferProgress>,
}

/// How far a node's streaming towards layout `version` has come.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransferProgress {
    /// The layout version the node streams towards.
    pub version: u64,
    pub partitions_done: u32,
    pub partitions_total: u32,
    /// Keys and bytes received so far.
    pub keys: u64,
    pub bytes: u64,
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("node {id}: {field} address is {len} bytes; the limit is {MAX_ADDRESS_BYTES}")]
    AddressTooLong {
        id: NodeId,
        field: &'static str,
        len: usize,
    },
    #[error("node {id}: {field} address {address:?} is not host:port")]
    BadAddress {
        id: NodeId,
        field: &'static str,
        address: String,
    },
    #[error("node {id}: zone is {len} bytes; the limit is {MAX_ZONE_BYTES}")]
    ZoneTooLong { id: NodeId, len: usize },
    #[error("node {id}: zone {zone:?} contains a control character")]
    BadZone { id: NodeId, zone: String },
    #[error("node {id}: capacity {capacity} is outside 1..={MAX_CAPACITY}")]
    Capacity { id: NodeId, capacity: u32 },
    #[error(
        "node {id}: transfer has {done} of {total} partitions done (at most {MAX_PARTITIONS})"
    )]
    Transfer { id: NodeId, done: u32, total: u32 },
}

impl NodeRecord {
    /// A record with only the required fields set: no HTTP address, no
    /// zone, nothing synced or acked, no transfer.
    pub fn new(id: NodeId, rpc: impl Into<String>, capacity: u32) -> NodeRecord {
        NodeRecord {
            id,
            rpc: rpc.into(),
            http: None,
            capacity,
            zone: None,
            synced: None,
            acked: None,
            read: None,
            transfer: None,
        }
    }

    /// Checks every bound of a record.
    pub fn validate(&self) -> Result<(), RecordError> {
        let id = || self.id.clone();
        check_address(&self.id, "rpc", &self.rpc)?;
        if let Some(http) = &self.http {
            check_address(&self.id, "http", http)?;
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(RecordError::Capacity {
                id: id(),
                capacity: self.capacity,
            });
        }
        if let Some(zone) = &self.zone {
            if zone.len() > MAX_ZONE_BYTES {
                return Err(RecordError::ZoneTooLong {
                    id: id(),
                    len: zone.len(),
                });
            }
            if zone.chars().any(char::is_control) {
                return Err(RecordError::BadZone {
                    id: id(),
                    zone: zone.clone(),
                });
            }
        }
        if let Some(t) = &self.transfer {
            if t.partitions_done > t.partitions_total || t.partitions_total > MAX_PARTITIONS {
                return Err(RecordError::Transfer {
                    id: id(),
                    done: t.partitions_done,
                    total: t.partitions_total,
                });
            }
        }
        Ok(())
    }
}

/// `host:port`: a non-empty host without whitespace or control characters,
/// a colon, and a port that parses as `u16`. IPv6 hosts come in brackets
/// (`[::1]:7000`); the last colon separates the port.
fn check_address(id: &NodeId, field: &'static str, address: &str) -> Result<(), RecordError> {
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(RecordError::AddressTooLong {
            id: id.clone(),
            field,
            len: address.len(),
        });
    }
    let well_formed = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.chars().any(|c| c.is_whitespace() || c.is_control())
            && port.parse::<u16>().is_ok()
    });
    if !well_formed {
        return Err(RecordError::BadAddress {
            id: id.clone(),
            field,
            address: address.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> NodeRecord {
        NodeRecord::new(NodeId::new("n1").unwrap(), "10.0.0.1:7000", 1)
    }

    #[test]
    fn a_plain_record_and_the_limits_themselves_are_valid() {
        assert_eq!(record().validate(), Ok(()));
        let host = "h".repeat(MAX_ADDRESS_BYTES - 6);
        let full = NodeRecord {
            rpc: format!("{host}:65535"),
            http: Some("[::1]:8080".into()),
            capacity: MAX_CAPACITY,
            zone: Some("z".repeat(MAX_ZONE_BYTES)),
            transfer: Some(TransferProgress {
                version: 3,
                partitions_done: MAX_PARTITIONS,
                partitions_total: MAX_PARTITIONS,
                keys: u64::MAX,
                bytes: u64::MAX,
            }),
            ..record()
        };
        assert_eq!(full.rpc.len(), MAX_ADDRESS_BYTES);
        assert_eq!(full.validate(), Ok(()));
    }

    #[test]
    fn every_bound_is_refused_with_its_own_error() {
        let id = || NodeId::new("n1").unwrap();
        let long = format!("{}:1", "h".repeat(MAX_ADDRESS_BYTES));
        let transfer = |done, total| {
            Some(TransferProgress {
                version: 1,
                partitions_done: done,
                partitions_total: total,
                keys: 0,
                bytes: 0,
            })
        };
        let cases: Vec<(NodeRecord, RecordError)> = vec![
            (
                NodeRecord {
                    rpc: long.clone(),
                    ..record()
                },
                RecordError::AddressTooLong {
                    id: id(),
                    field: "rpc",
                    len: long.len(),
                },
            ),
            (
                NodeRecord {
                    http: Some(long.clone()),
                    ..record()
                },
                RecordError::AddressTooLong {
                    id: id(),
                    field: "http",
                    len: long.len(),
                },
            ),
            (
                NodeRecord {
                    capacity: 0,
                    ..record()
                },
                RecordError::Capacity {
                    id: id(),
                    capacity: 0,
                },
            ),
            (
                NodeRecord {
                    capacity: MAX_CAPACITY + 1,
                    ..record()
                },
                RecordError::Capacity {
                    id: id(),
                    capacity: MAX_CAPACITY + 1,
                },
            ),
            (
                NodeRecord {
                    zone: Some("z".repeat(MAX_ZONE_BYTES + 1)),
                    ..record()
                },
                RecordError::ZoneTooLong {
                    id: id(),
                    len: MAX_ZONE_BYTES + 1,
                },
            ),
            (
                NodeRecord {
                    zone: Some("a\nb".into()),
                    ..record()
                },
                RecordError::BadZone {
                    id: id(),
                    zone: "a\nb".into(),
                },
            ),
            (
                NodeRecord {
                    transfer: transfer(3, 2),
                    ..record()
                },
                RecordError::Transfer {
                    id: id(),
                    done: 3,
                    total: 2,
                },
            ),
            (
                NodeRecord {
                    transfer: transfer(0, MAX_PARTITIONS + 1),
                    ..record()
                },
                RecordError::Transfer {
                    id: id(),
                    done: 0,
                    total: MAX_PARTITIONS + 1,
                },
            ),
        ];
        for (bad, want) in cases {
            assert_eq!(bad.validate(), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn addresses_must_be_host_colon_port() {
        for bad in [
            "",
            "host",
            ":7000",
            "host:",
            "host:99999",
            "host:x",
            "a b:1",
            "h\t:1",
        ] {
            let r = NodeRecord {
                rpc: bad.into(),
                ..record()
            };
            assert!(
                matches!(r.validate(), Err(RecordError::BadAddress { .. })),
                "{bad:?} accepted"
            );
        }
        for good in ["localhost:7000", "[::1]:0", "db-3.example.com:65535"] {
            let r = NodeRecord {
                rpc: good.into(),
                ..record()
            };
            assert_eq!(r.validate(), Ok(()), "{good:?}");
        }
    }
}
