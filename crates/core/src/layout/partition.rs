//! Partitions: the 64-bit hash circle cut into Q equal, contiguous ranges.
//!
//! Q is a power of two, so a key's partition is the top `log2 Q` bits of its
//! position ([`crate::ring::key_position`]) and each partition is one
//! contiguous range of storage keys (they start with the position, big
//! endian): handing a partition to another node is one range scan. This
//! module only does arithmetic; it never looks at members or layouts.

/// Partition count of a new cluster unless configured otherwise (as Garage).
pub const DEFAULT_PARTITIONS: u32 = 256;

/// Most partitions a cluster may have. It bounds the layout's size (it has
/// one preference list per partition) and the per-partition bookkeeping.
pub const MAX_PARTITIONS: u32 = 65_536;

/// Whether `q` is an allowed partition count: a power of two in
/// `1..=MAX_PARTITIONS`.
pub fn valid_partition_count(q: u32) -> bool {
    q.is_power_of_two() && q <= MAX_PARTITIONS
}

/// Number of position bits that name the partition (`log2 q`).
fn partition_bits(q: u32) -> u32 {
    debug_assert!(valid_partition_count(q), "bad partition count {q}");
    q.trailing_zeros()
}

/// The partition of a key position: its top `log2 q` bits. With `q = 1`
/// every position is in partition 0 (a shift by 64 would overflow, so it is
/// handled apart). `q` must be a valid partition count.
pub fn partition_of(position: u64, q: u32) -> u32 {
    match partition_bits(q) {
        0 => 0,
        bits => (position >> (64 - bits)) as u32,
    }
}

/// The first and last position (inclusive) of partition `p` out of `q`.
/// `p` must be below `q`, and `q` a valid partition count.
pub fn partition_range(p: u32, q: u32) -> (u64, u64) {
    debug_assert!(p < q, "partition {p} out of {q}");
    match partition_bits(q) {
        0 => (0, u64::MAX),
        bits => {
            let shift = 64 - bits;
            let first = u64::from(p) << shift;
            (first, first | (u64::MAX >> bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_powers_of_two_up_to_the_limit_are_valid() {
        for q in [1, 2, 4, 256, 1024, MAX_PARTITIONS] {
            assert!(valid_partition_count(q), "{q}");
        }
        for q in [0, 3, 6, 255, 257, MAX_PARTITIONS * 2, u32::MAX] {
            assert!(!valid_partition_count(q), "{q}");
        }
    }

    #[test]
    fn partition_of_is_the_top_bits_of_the_position() {
        // (position, q, partition)
        let cases: [(u64, u32, u32); 12] = [
            (0, 1, 0),
            (u64::MAX, 1, 0),
            (0, 2, 0),
            (1 << 63, 2, 1),
            ((1 << 63) - 1, 2, 0),
            (u64::MAX, 2, 1),
            (0, 256, 0),
            (0x00ff_ffff_ffff_ffff, 256, 0),
            (0x0100_0000_0000_0000, 256, 1),
            (0xab12_3456_789a_bcde, 256, 0xab),
            (u64::MAX, 256, 255),
            (0xfedc_ba98_7654_3210, 65_536, 0xfedc),
        ];
        for (position, q, want) in cases {
            assert_eq!(partition_of(position, q), want, "{position:#x} q={q}");
        }
    }

    #[test]
    fn partition_range_is_inclusive_and_contiguous() {
        // (p, q, first, last)
        let cases: [(u32, u32, u64, u64); 6] = [
            (0, 1, 0, u64::MAX),
            (0, 2, 0, (1 << 63) - 1),
            (1, 2, 1 << 63, u64::MAX),
            (0, 256, 0, 0x00ff_ffff_ffff_ffff),
            (0xab, 256, 0xab00_0000_0000_0000, 0xabff_ffff_ffff_ffff),
            (65_535, 65_536, 0xffff_0000_0000_0000, u64::MAX),
        ];
        for (p, q, first, last) in cases {
            assert_eq!(partition_range(p, q), (first, last), "p={p} q={q}");
        }
    }

    #[test]
    fn ranges_tile_the_circle_and_agree_with_partition_of() {
        for q in [1, 2, 8, 256, 65_536] {
            let mut next = 0u64;
            for p in 0..q {
                let (first, last) = partition_range(p, q);
                assert_eq!(first, next, "q={q} p={p}");
                assert!(first <= last);
                assert_eq!(partition_of(first, q), p);
                assert_eq!(partition_of(last, q), p);
                next = last.wrapping_add(1);
            }
            assert_eq!(next, 0, "q={q}: the last range ends at u64::MAX");
        }
    }
}
