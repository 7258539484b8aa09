//! The layout's wire form, for gossip and for disk, and its validation.
//!
//! A format byte, then postcard of (version, Q, N, members, assignment),
//! where the assignment packs the `Q * N` member indices at
//! `ceil(log2 members)` bits each, least significant bit first. The
//! encoding is canonical (members sorted by id, replicas in preference
//! order), so equal layouts have equal bytes and equal digests.
//!
//! [`Layout::decode`] takes untrusted bytes: it never panics, checks lengths
//! before allocating, and validates what the types cannot: Q and N, the
//! member list, every index in range, no node twice in a partition, no zone
//! over its cap, and the canonical replica order. Derived data (fallbacks)
//! is recomputed, never read.

use super::member::{self, Member, Zones};
use super::{check_params, rendezvous, Layout, LayoutError, LayoutParams};
use crate::codec::{self, CodecError};
use serde::{Deserialize, Serialize};

/// Format byte of layouts written by this release.
pub const LAYOUT_FORMAT_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Wire {
    version: u64,
    partitions: u32,
    replication: u32,
    members: Vec<Member>,
    assignment: Vec<u8>,
}

/// Why bytes are not a valid layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutDecodeError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("layout version 0 does not exist")]
    ZeroVersion,
    #[error(transparent)]
    Params(#[from] LayoutError),
    #[error("members are not sorted by id")]
    MembersNotSorted,
    #[error("assignment is {got} bytes; Q, N and the member count need {want}")]
    AssignmentLength { got: usize, want: usize },
    #[error("partition {partition} names member {index}; there are {members}")]
    IndexOutOfRange {
        partition: u32,
        index: u16,
        members: usize,
    },
    #[error("partition {partition} names a node twice")]
    DuplicateNode { partition: u32 },
    #[error("partition {partition} holds more than {cap} replicas in one zone")]
    ZoneOverCap { partition: u32, cap: u32 },
    #[error("partition {partition}'s replicas are not in preference order")]
    NotCanonical { partition: u32 },
}

/// Bits per packed member index.
fn index_bits(members: usize) -> u32 {
    (usize::BITS - (members.max(2) - 1).leading_zeros()).max(1)
}

fn pack(indices: &[u16], bits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((indices.len() * bits as usize).div_ceil(8));
    let (mut acc, mut held) = (0u64, 0u32);
    for &i in indices {
        acc |= u64::from(i) << held;
        held += bits;
        while held >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            held -= 8;
        }
    }
    if held > 0 {
        out.push(acc as u8);
    }
    out
}

fn unpack(bytes: &[u8], bits: u32, count: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(count);
    let (mut acc, mut held) = (0u64, 0u32);
    let mut bytes = bytes.iter();
    let mask = (1u64 << bits) - 1;
    while out.len() < count {
        while held < bits {
            acc |= u64::from(*bytes.next().unwrap_or(&0)) << held;
            held += 8;
        }
        out.push((acc & mask) as u16);
        acc >>= bits;
        held -= bits;
    }
    out
}

impl Layout {
    /// The canonical encoding (see the module docs of `codec`).
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            version: self.version,
            partitions: self.partitions,
            replication: self.replication as u32,
            members: self.members.clone(),
            assignment: pack(&self.replicas, index_bits(self.members.len())),
        };
        codec::encode(LAYOUT_FORMAT_V1, &wire).expect("a layout always encodes")
    }

    /// Decodes and fully validates a layout from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Layout, LayoutDecodeError> {
        let wire: Wire = codec::decode(LAYOUT_FORMAT_V1, bytes)?;
        if wire.version == 0 {
            return Err(LayoutDecodeError::ZeroVersion);
        }
        let members = member::validate(wire.members.clone()).map_err(LayoutError::from)?;
        if members != wire.members {
            return Err(LayoutDecodeError::MembersNotSorted);
        }
        let (q, n) = (wire.partitions, wire.replication as usize);
        check_params(
            LayoutParams {
                partitions: q,
                replication: n,
            },
            members.len(),
        )?;
        let bits = index_bits(members.len());
        let count = q as usize * n;
        let want = (count * bits as usize).div_ceil(8);
        if wire.assignment.len() != want {
            return Err(LayoutDecodeError::AssignmentLength {
                got: wire.assignment.len(),
                want,
            });
        }
        let replicas = unpack(&wire.assignment, bits, count);
        validate_table(&replicas, &members, q, n)?;
        Ok(Layout::from_parts(wire.version, q, n, members, replicas))
    }
}

fn validate_table(
    replicas: &[u16],
    members: &[Member],
    q: u32,
    n: usize,
) -> Result<(), LayoutDecodeError> {
    let zones = Zones::new(members);
    let cap = zones.cap(n);
    let seeds: Vec<u64> = members
        .iter()
        .map(|m| rendezvous::seed(m.id.as_str()))
        .collect();
    for (p, chunk) in replicas.chunks(n).enumerate() {
        let partition = p as u32;
        for (j, &i) in chunk.iter().enumerate() {
            if i as usize >= members.len() {
                return Err(LayoutDecodeError::IndexOutOfRange {
                    partition,
                    index: i,
                    members: members.len(),
                });
            }
            if chunk[..j].contains(&i) {
                return Err(LayoutDecodeError::DuplicateNode { partition });
            }
            let z = zones.of[i as usize];
            if chunk[..=j]
                .iter()
                .filter(|&&x| zones.of[x as usize] == z)
                .count() as u32
                > cap
            {
                return Err(LayoutDecodeError::ZoneOverCap { partition, cap });
            }
        }
        let mut sorted = chunk.to_vec();
        rendezvous::sort(partition, &seeds, &mut sorted);
        if sorted != chunk {
            return Err(LayoutDecodeError::NotCanonical { partition });
        }
    }
    debug_assert_eq!(replicas.len(), q as usize * n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_at_every_width() {
        for members in [1usize, 2, 3, 4, 5, 1000, 4096] {
            let bits = index_bits(members);
            let indices: Vec<u16> = (0..37).map(|i| (i * 7919 % members) as u16).collect();
            let packed = pack(&indices, bits);
            assert_eq!(packed.len(), (37 * bits as usize).div_ceil(8));
            assert_eq!(unpack(&packed, bits, 37), indices, "{members}");
        }
        assert_eq!(
            [1, 2, 3, 4, 5, 1000, 4096].map(index_bits),
            [1, 1, 2, 2, 3, 10, 12]
        );
    }
}
