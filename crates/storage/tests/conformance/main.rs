//! The storage conformance suite: every case runs against every engine.
//!
//! Each case is a function generic over [`common::Engine`], in `cases.rs`
//! (single-threaded semantics) or `concurrency.rs` (several threads on one
//! engine). The macro below instantiates each case once per engine, so a
//! failure names both the case and the engine (`mem::scan_respects_order_and_bounds`,
//! `fjall::scan_respects_order_and_bounds`).

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod concurrency;

use cases::*;
use concurrency::*;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod mem {
            $( #[test] fn $case() { super::$case::<super::common::Mem>(); } )*
        }
        mod fjall {
            $( #[test] fn $case() { super::$case::<super::common::Fjall>(); } )*
        }
    };
}

conformance!(
    put_get_delete,
    overwrite_keeps_last_value,
    batch_applies_all_ops_last_write_wins,
    rejected_batch_applies_nothing,
    batches_are_visible_atomically_to_concurrent_scans,
    keyspaces_are_separate,
    scan_respects_order_and_bounds,
    empty_values_and_binary_keys,
    size_limits_are_typed_errors,
    corrupt_records_are_errors_never_values,
    concurrent_writers_all_land,
    approximate_len_counts_inserted_keys,
    sync_succeeds_and_reports_blocking,
    synced_writes_survive_restart,
);
