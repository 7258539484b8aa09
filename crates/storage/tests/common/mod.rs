//! Shared test harness: an [`Engine`] trait so every suite runs unchanged
//! against both storage engines, plus small read/write helpers.
//!
//! Test-only code; it must never be used to weaken a check (helpers panic
//! with context instead of returning defaults).
#![allow(dead_code)]

use ringkv_storage::{record, FjallStorage, Keyspace, MemStorage, Storage, WriteBatch};
use tempfile::TempDir;

/// A storage engine under test, with the engine-specific hooks the shared
/// suites need.
pub trait Engine {
    type S: Storage;
    /// A new, empty engine.
    fn fresh() -> Self;
    fn storage(&self) -> &Self::S;
    /// Damages the stored record under `key` so its next read fails its check.
    fn corrupt(&self, ks: Keyspace, key: &[u8]);
    /// Stops and restarts the engine. Callers `sync` first, so nothing may be lost.
    fn restart(&mut self);
    /// What `Storage::sync_blocks` must say for this engine.
    const SYNC_BLOCKS: bool;
}

pub struct Mem(pub MemStorage);

impl Engine for Mem {
    type S = MemStorage;
    const SYNC_BLOCKS: bool = false;

    fn fresh() -> Self {
        Mem(MemStorage::new())
    }
    fn storage(&self) -> &MemStorage {
        &self.0
    }
    fn corrupt(&self, ks: Keyspace, key: &[u8]) {
        assert!(self.0.corrupt(ks, key), "corrupt: key {key:?} absent");
    }
    fn restart(&mut self) {
        self.0.crash();
    }
}

pub struct Fjall {
    // Field order matters: the database closes before its directory goes.
    storage: Option<FjallStorage>,
    dir: TempDir,
}

impl Fjall {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Engine for Fjall {
    type S = FjallStorage;
    const SYNC_BLOCKS: bool = true;

    fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FjallStorage::open(dir.path()).expect("open fjall");
        Fjall {
            storage: Some(storage),
            dir,
        }
    }
    fn storage(&self) -> &FjallStorage {
        self.storage.as_ref().expect("storage is open")
    }
    fn corrupt(&self, ks: Keyspace, key: &[u8]) {
        let value = self.storage().get(ks, key).expect("read before corrupt");
        let value = value.expect("corrupt: key absent");
        let mut raw = record::seal(key, &value);
        if let Some(last) = raw.last_mut() {
            *last ^= 0xff;
        }
        self.storage()
            .raw_put_for_tests(ks, key, &raw)
            .expect("raw put");
    }
    fn restart(&mut self) {
        drop(self.storage.take());
        self.storage = Some(FjallStorage::open(self.dir.path()).expect("reopen fjall"));
    }
}

pub fn put<S: Storage>(s: &S, ks: Keyspace, key: &[u8], value: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(ks, key, value);
    s.write(b).expect("put");
}

pub fn delete<S: Storage>(s: &S, ks: Keyspace, key: &[u8]) {
    let mut b = WriteBatch::new();
    b.delete(ks, key);
    s.write(b).expect("delete");
}

pub fn get<S: Storage>(s: &S, ks: Keyspace, key: &[u8]) -> Option<Vec<u8>> {
    s.get(ks, key).expect("get")
}

/// Every pair in `ks`, in order.
pub fn scan_all<S: Storage>(s: &S, ks: Keyspace) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.scan(ks, b"", None, usize::MAX).expect("scan")
}
