//! Cluster settings: what every node must agree on besides the member list.
//!
//! Each node computes placement itself, so two nodes started with different
//! partition counts, replication defaults or bucket overrides would disagree
//! on where a key lives and how many replicas must answer. The settings that
//! must match are collected in [`ClusterSettings`]; nodes compare them in the
//! RPC handshake and refuse a peer whose settings differ, naming what differs
//! ([`ClusterSettings::differences`], [`member_differences`]). The digest is a hash of a canonical
//! encoding (buckets are a sorted map), so the same settings give the same
//! digest on every node. This module only describes and compares: it never
//! decides placement and never reads configuration files.

use crate::layout::Member;
use crate::replication::{BucketProps, Replication};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64;

/// The settings every node of a cluster must share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Q: how many equal partitions the hash circle is cut into.
    pub partitions: u32,
    /// The cluster-wide N, R and W.
    pub replication: Replication,
    /// Per-bucket overrides of N, R and W.
    pub buckets: BTreeMap<String, BucketProps>,
}

impl Default for ClusterSettings {
    /// Q = 256 and N = 3, R = W = 2, no bucket overrides.
    fn default() -> Self {
        ClusterSettings {
            partitions: crate::layout::DEFAULT_PARTITIONS,
            replication: Replication::default(),
            buckets: BTreeMap::new(),
        }
    }
}

impl ClusterSettings {
    /// A 64-bit digest of the canonical encoding (stable across nodes).
    pub fn digest(&self) -> u64 {
        let bytes = postcard::to_allocvec(self).expect("settings always encode");
        xxh3_64(&bytes)
    }

    /// Human-readable differences between `self` (this node) and `theirs`
    /// (a peer), one line each; empty when the settings match.
    pub fn differences(&self, theirs: &ClusterSettings) -> Vec<String> {
        let mut out = Vec::new();
        if self.partitions != theirs.partitions {
            out.push(format!(
                "partitions: {} here, {} at the peer",
                self.partitions, theirs.partitions
            ));
        }
        if self.replication != theirs.replication {
            let r = |x: &Replication| format!("n={} r={} w={}", x.n, x.r, x.w);
            out.push(format!(
                "replication: {} here, {} at the peer",
                r(&self.replication),
                r(&theirs.replication)
            ));
        }
        let names: std::collections::BTreeSet<&String> =
            self.buckets.keys().chain(theirs.buckets.keys()).collect();
        for name in names {
            let (ours, peer) = (self.buckets.get(name), theirs.buckets.get(name));
            if ours != peer {
                out.push(format!(
                    "bucket {name:?}: {} here, {} at the peer",
                    describe(ours),
                    describe(peer)
                ));
            }
        }
        out
    }
}

/// Human-readable differences between this node's member list and a
/// peer's, one line each (members in id order); empty when they match.
pub fn member_differences(ours: &[Member], theirs: &[Member]) -> Vec<String> {
    let index = |list: &[Member]| -> BTreeMap<String, (u32, String)> {
        list.iter()
            .map(|m| {
                let zone = m.zone.clone().unwrap_or_default();
                (m.id.as_str().to_string(), (m.capacity, zone))
            })
            .collect()
    };
    let (ours, theirs) = (index(ours), index(theirs));
    let ids: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        match (ours.get(id), theirs.get(id)) {
            (Some(_), None) => out.push(format!("node {id} is a member here, not at the peer")),
            (None, Some(_)) => out.push(format!("node {id} is a member at the peer, not here")),
            (Some((c1, z1)), Some((c2, z2))) => {
                if c1 != c2 {
                    out.push(format!("node {id}: capacity {c1} here, {c2} at the peer"));
                }
                if z1 != z2 {
                    out.push(format!("node {id}: zone {z1:?} here, {z2:?} at the peer"));
                }
            }
            (None, None) => {}
        }
    }
    out
}

fn describe(props: Option<&BucketProps>) -> String {
    let Some(p) = props else {
        return "no override".into();
    };
    let part = |name: &str, v: Option<usize>| v.map(|v| format!("{name}={v}"));
    let parts: Vec<String> = [part("n", p.n), part("r", p.r), part("w", p.w)]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        "an empty override".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            partitions: 256,
            replication: Replication::default(),
            buckets: BTreeMap::new(),
        }
    }

    #[test]
    fn member_differences_name_each_node() {
        let m = |id: &str, capacity, zone: Option<&str>| Member {
            id: crate::NodeId::new(id).unwrap(),
            capacity,
            zone: zone.map(str::to_string),
        };
        let ours = [m("a", 1, None), m("b", 1, Some("x")), m("c", 1, None)];
        let theirs = [m("a", 2, None), m("b", 1, Some("y")), m("d", 1, None)];
        assert_eq!(
            member_differences(&ours, &theirs),
            vec![
                "node a: capacity 1 here, 2 at the peer",
                "node b: zone \"x\" here, \"y\" at the peer",
                "node c is a member here, not at the peer",
                "node d is a member at the peer, not here",
            ]
        );
        assert!(member_differences(&ours, &ours).is_empty());
    }

    #[test]
    fn equal_settings_have_equal_digests_and_no_differences() {
        let (a, b) = (settings(), settings());
        assert_eq!(a.digest(), b.digest());
        assert!(a.differences(&b).is_empty());
    }

    #[test]
    fn every_difference_changes_the_digest_and_is_named() {
        let base = settings();
        let mut q = settings();
        q.partitions = 512;
        let mut rep = settings();
        rep.replication.w = 1;
        let mut bucket = settings();
        bucket.buckets.insert(
            "carts".into(),
            BucketProps {
                n: Some(2),
                ..Default::default()
            },
        );
        for (other, want) in [
            (q, "partitions: 256 here, 512 at the peer"),
            (
                rep,
                "replication: n=3 r=2 w=2 here, n=3 r=2 w=1 at the peer",
            ),
            (
                bucket,
                "bucket \"carts\": no override here, n=2 at the peer",
            ),
        ] {
            assert_ne!(base.digest(), other.digest(), "{want}");
            assert_eq!(base.differences(&other), vec![want.to_string()]);
        }
    }
}
