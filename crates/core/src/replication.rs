//! N, R and W: how many replicas hold a key and how many must answer (A5).
//!
//! The cluster has a default, a bucket may override it, and a request may
//! override R or W. [`Replication::resolve`] layers those and validates the
//! result: `1 <= R, W <= N <= nodes`. R + W > N gives overlapping quorums;
//! W = 1 keeps a key writable while any of its replicas is reachable.

use serde::{Deserialize, Serialize};

/// Replication factor and quorum sizes for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    pub n: usize,
    pub r: usize,
    pub w: usize,
}

/// A bucket's overrides of the cluster defaults (any subset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketProps {
    pub n: Option<usize>,
    pub r: Option<usize>,
    pub w: Option<usize>,
}

/// A request's overrides (`?r=` / `?w=` / `?pw=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestQuorum {
    pub r: Option<usize>,
    pub w: Option<usize>,
    /// Acknowledgements a write needs from the key's own replicas, not
    /// stand-ins (Riak's PW). Unset: 0, every acknowledgement counts.
    pub pw: Option<usize>,
}

/// Why a combination of N, R and W is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("pw = {pw} must not exceed n = {n}")]
    PwExceedsN { pw: usize, n: usize },
    #[error("n must be at least 1")]
    ZeroN,
    #[error("n = {n} exceeds the {nodes} nodes of the cluster")]
    NExceedsNodes { n: usize, nodes: usize },
    #[error("{which} = {value} must be between 1 and n = {n}")]
    QuorumOutOfRange {
        which: &'static str,
        value: usize,
        n: usize,
    },
}

impl Default for Replication {
    /// N = 3, R = W = 2: one replica down costs nothing (N2).
    fn default() -> Self {
        Replication { n: 3, r: 2, w: 2 }
    }
}

impl Replication {
    /// Layers bucket and request overrides over `self` and validates for a
    /// cluster of `nodes` nodes.
    pub fn resolve(
        &self,
        bucket: &BucketProps,
        request: &RequestQuorum,
        nodes: usize,
    ) -> Result<Replication, ReplicationError> {
        let resolved = Replication {
            n: bucket.n.unwrap_or(self.n),
            r: request.r.or(bucket.r).unwrap_or(self.r),
            w: request.w.or(bucket.w).unwrap_or(self.w),
        };
        resolved.validate(nodes)?;
        Ok(resolved)
    }

    /// The request's PW: 0 unless set; at most N. As in Riak, a PW above W
    /// raises what the write waits for: PW acknowledgements from homes are
    /// also PW acknowledgements.
    pub fn primary_writes(&self, request: &RequestQuorum) -> Result<usize, ReplicationError> {
        let pw = request.pw.unwrap_or(0);
        if pw > self.n {
            return Err(ReplicationError::PwExceedsN { pw, n: self.n });
        }
        Ok(pw)
    }

    /// Checks `1 <= R, W <= N <= nodes`.
    pub fn validate(&self, nodes: usize) -> Result<(), ReplicationError> {
        if self.n == 0 {
            return Err(ReplicationError::ZeroN);
        }
        if self.n > nodes {
            return Err(ReplicationError::NExceedsNodes { n: self.n, nodes });
        }
        for (which, value) in [("r", self.r), ("w", self.w)] {
            if value == 0 || value > self.n {
                return Err(ReplicationError::QuorumOutOfRange {
                    which,
                    value,
                    n: self.n,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_layers_request_over_bucket_over_cluster() {
        let cluster = Replication::default();
        let bucket = BucketProps {
            n: Some(2),
            r: Some(1),
            w: None,
        };
        let got = cluster
            .resolve(
                &bucket,
                &RequestQuorum {
                    r: None,
                    w: Some(1),
                    pw: None,
                },
                3,
            )
            .unwrap();
        assert_eq!(got, Replication { n: 2, r: 1, w: 1 });
        let got = cluster
            .resolve(&BucketProps::default(), &RequestQuorum::default(), 3)
            .unwrap();
        assert_eq!(got, cluster);
    }

    #[test]
    fn pw_defaults_to_zero_and_may_not_exceed_n() {
        let rep = Replication { n: 3, r: 2, w: 2 };
        let ask = |pw| RequestQuorum {
            pw,
            ..RequestQuorum::default()
        };
        assert_eq!(rep.primary_writes(&ask(None)), Ok(0));
        assert_eq!(
            rep.primary_writes(&ask(Some(3))),
            Ok(3),
            "above W is allowed"
        );
        assert_eq!(
            rep.primary_writes(&ask(Some(4))),
            Err(ReplicationError::PwExceedsN { pw: 4, n: 3 })
        );
    }

    #[test]
    fn validation_table() {
        let cases = [
            (
                Replication { n: 0, r: 1, w: 1 },
                3,
                Some(ReplicationError::ZeroN),
            ),
            (
                Replication { n: 4, r: 1, w: 1 },
                3,
                Some(ReplicationError::NExceedsNodes { n: 4, nodes: 3 }),
            ),
            (
                Replication { n: 3, r: 0, w: 1 },
                3,
                Some(ReplicationError::QuorumOutOfRange {
                    which: "r",
                    value: 0,
                    n: 3,
                }),
            ),
            (
                Replication { n: 3, r: 1, w: 4 },
                5,
                Some(ReplicationError::QuorumOutOfRange {
                    which: "w",
                    value: 4,
                    n: 3,
                }),
            ),
            (Replication { n: 3, r: 3, w: 1 }, 3, None),
        ];
        for (rep, nodes, want) in cases {
            assert_eq!(rep.validate(nodes).err(), want, "{rep:?}");
        }
    }
}
