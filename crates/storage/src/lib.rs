//! ringkv storage: where a node's bytes live.
//!
//! Everything above this crate talks to one small trait, [`Storage`]: read a
//! key ([`Storage::get`]), apply a [`WriteBatch`] atomically
//! ([`Storage::write`]), make the writes so far durable ([`Storage::sync`]),
//! and scan a key range in byte order ([`Storage::scan`]). Keys live in one
//! of three separate [`Keyspace`]s (`Data`, `Hints`, `Meta`).
//!
//! Two engines implement it:
//! - [`FjallStorage`], the durable engine, built on the fjall LSM-tree. One
//!   database per node directory, one fjall keyspace per [`Keyspace`].
//! - [`MemStorage`], a deterministic in-memory engine for tests and the
//!   cluster simulation. It tracks what was synced and what was only
//!   written; [`MemStorage::crash`] forgets the latter, the way a power
//!   cut would, and [`MemStorage::crash_keeping`] keeps a seeded subset of
//!   the unsynced batches, the way a disk that wrote some pages would.
//!   [`MemStorage::with_lying_sync`] is the fault that lets tests fail: an
//!   engine whose `sync` makes nothing durable.
//!
//! Writing and syncing are separate on purpose: a node can apply many
//! batches and pay for one fsync before acknowledging them all. A write is
//! visible to reads as soon as `write` returns, but only durable once a later
//! `sync` returns.
//!
//! Both engines store every value inside a checksummed [`record`] envelope
//! (version byte, crc32 over key and payload, payload) and verify it on every
//! read, so a damaged or misplaced record is a [`StorageError::Corrupt`],
//! never a wrong value. Keys and values are bounded by
//! [`MAX_STORAGE_KEY_BYTES`] and [`MAX_STORAGE_VALUE_BYTES`].
//!
//! The same conformance suite (`tests/conformance/`) and model-based
//! property test (`tests/model.rs`) run against both engines; `tests/crash.rs`
//! kills a real writer process with SIGKILL and checks that every
//! acknowledged write survived.
//!
//! Boundary: this crate knows nothing about replication, version vectors or
//! networking; it stores opaque bytes.

mod batch;
pub mod damage;
mod error;
mod fjall_engine;
mod journal_sync;
mod keyspace;
mod limits;
mod mem_engine;
pub mod record;
mod storage;

pub use batch::WriteBatch;
pub use damage::{classify_open_error, DamageKind};
pub use error::{StorageError, MAX_ERROR_KEY_BYTES};
pub use fjall_engine::{
    FjallStorage, DATA_MEMTABLE_BYTES, FJALL_CACHE_BYTES, SMALL_MEMTABLE_BYTES,
};
pub use keyspace::Keyspace;
pub use limits::{MAX_STORAGE_KEY_BYTES, MAX_STORAGE_VALUE_BYTES};
pub use mem_engine::{MemStorage, PowerLoss};
pub use storage::{CorruptRecord, Scanned, Storage};
