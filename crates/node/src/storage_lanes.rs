//! Storage lanes: where engine calls run, so they never block the async workers.
//!
//! A real engine can block for a long time: fjall sleeps in its write
//! throttle (100 ms at a time) when compaction falls behind, and an fsync
//! waits for the disk. The node's runtime has two workers; an engine call
//! made on one of them froze every RPC reader and timer behind it. So every
//! engine call goes through one of three lanes, and its result comes back
//! over a oneshot:
//!
//! - the **write lane**, one thread fed by a bounded queue
//!   ([`WRITE_LANE_QUEUE`]): every read-modify-write of a key and every
//!   engine commit runs here, one at a time, in queue order. One thread
//!   serialises writes, so the replica needs no per-key locks, and commit
//!   tickets are handed out in write order. Only code running on this lane
//!   holds a [`WriteTurn`], which `Committer::write_on_lane` demands.
//! - the **read lane**, [`READ_LANE_THREADS`] threads sharing one bounded
//!   queue ([`READ_LANE_QUEUE`]): reads of any key still answer while the
//!   write lane is stalled in the engine. A read skips the lane and runs
//!   inline on its worker when the [`ReadGate`] allows it: one inline read
//!   at a time, and only while reads are fast (a thread hop per read cost
//!   about a sixth of get throughput; see `read_gate.rs`).
//! - the **sync lane**, one thread for the group-commit fsync, so a sync
//!   never waits behind writes and never borrows tokio's blocking pool.
//!
//! A full queue is a typed [`LaneError::Overloaded`], never unbounded memory
//! and never a blocked worker. A job keeps running if its caller stops
//! waiting (a write is applied or refused as a whole); a job that panics is
//! caught, reported as [`LaneError::Panicked`], and the lane goes on.
//!
//! For an engine that does not block ([`Storage::sync_blocks`] false: the
//! in-memory engine of tests and the simulation), [`StorageLanes::inline`]
//! runs every job at once on the caller's thread, with one mutex standing in
//! for the write lane. No thread is started and nothing yields, so a
//! simulation on one thread stays deterministic and replayable.
//!
//! This module must never call the engine itself, await while holding a
//! lock, or queue without a bound.

use crate::read_gate::ReadGate;
use ringkv_storage::Storage;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Threads serving reads.
pub const READ_LANE_THREADS: usize = 2;
/// Most reads queued for the read lane; one more is [`LaneError::Overloaded`].
/// As large as the default in-flight client request limit, so in normal
/// operation admission control refuses work before the lane does.
pub const READ_LANE_QUEUE: usize = 4096;
/// Most writes (updates, merges, commits) queued for the write lane.
pub const WRITE_LANE_QUEUE: usize = 4096;
/// Most syncs queued: the syncer task and `Committer::close` each have at
/// most one sync in flight, so two can never overflow.
const SYNC_LANE_QUEUE: usize = 2;

/// Which lane a job went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    Read,
    Write,
    Sync,
}

impl fmt::Display for LaneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LaneKind::Read => "read",
            LaneKind::Write => "write",
            LaneKind::Sync => "sync",
        })
    }
}

/// Why a job did not run to completion on its lane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// The lane's queue is full: the engine is behind; retry later.
    #[error("storage {lane} lane is full ({capacity} calls queued)")]
    Overloaded { lane: LaneKind, capacity: usize },
    /// The lanes were closed (the node is shutting down).
    #[error("storage {lane} lane is stopped: node is shutting down")]
    Stopped { lane: LaneKind },
    /// The job panicked; the lane itself carries on.
    #[error("a storage call on the {lane} lane panicked")]
    Panicked { lane: LaneKind },
}

/// Proof that the code holding it runs on the write lane (or, inline, under
/// its mutex). Only this module makes one.
pub struct WriteTurn(());

/// Lane sizes, for [`StorageLanes::threads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneSizes {
    pub read_threads: usize,
    pub read_queue: usize,
    pub write_queue: usize,
    /// Let reads run inline through the [`ReadGate`] (default true).
    pub inline_reads: bool,
}

impl Default for LaneSizes {
    fn default() -> Self {
        LaneSizes {
            read_threads: READ_LANE_THREADS,
            read_queue: READ_LANE_QUEUE,
            write_queue: WRITE_LANE_QUEUE,
            inline_reads: true,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Where engine calls run: on lane threads, or inline for a non-blocking engine.
pub struct StorageLanes {
    mode: Mode,
}

enum Mode {
    Inline { write: Mutex<()> },
    Threads(Box<ThreadLanes>),
}

struct ThreadLanes {
    /// Whether a read may skip the read lane and run inline (see
    /// [`ReadGate`]); `None`: every read takes the lane.
    gate: Option<ReadGate>,
    read: Lane,
    write: Lane,
    sync: Lane,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageLanes {
    /// Lane threads if `storage` blocks, inline otherwise.
    pub fn for_engine(storage: &dyn Storage) -> std::io::Result<Self> {
        if storage.sync_blocks() {
            Self::threads(LaneSizes::default())
        } else {
            Ok(Self::inline())
        }
    }

    /// Runs every job at once on the caller's thread (non-blocking engines).
    pub fn inline() -> Self {
        StorageLanes {
            mode: Mode::Inline {
                write: Mutex::new(()),
            },
        }
    }

    /// Starts the lane threads.
    pub fn threads(sizes: LaneSizes) -> std::io::Result<Self> {
        Ok(StorageLanes {
            mode: Mode::Threads(Box::new(ThreadLanes {
                gate: sizes.inline_reads.then(ReadGate::default),
                read: Lane::start(LaneKind::Read, sizes.read_threads.max(1), sizes.read_queue)?,
                write: Lane::start(LaneKind::Write, 1, sizes.write_queue)?,
                sync: Lane::start(LaneKind::Sync, 1, SYNC_LANE_QUEUE)?,
            })),
        })
    }

    /// True when jobs run on the caller's thread: a read may then be
    /// answered without a hop (see `LocalReplica::read_now`).
    pub fn is_inline(&self) -> bool {
        matches!(self.mode, Mode::Inline { .. })
    }

    /// Runs a read-only engine call on the read lane.
    pub async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        match &self.mode {
            Mode::Inline { .. } => Ok(job()),
            Mode::Threads(lanes) => match lanes.gate.as_ref().and_then(ReadGate::try_inline) {
                Some(_inline) => {
                    catch_unwind(AssertUnwindSafe(job)).map_err(|_| LaneError::Panicked {
                        lane: LaneKind::Read,
                    })
                }
                None => lanes.read.run(job).await,
            },
        }
    }

    /// Runs a read-only job at once on the caller's thread if it may run
    /// inline (inline lanes, or the read gate admits it); `None` otherwise.
    pub fn read_inline<T>(&self, job: impl FnOnce() -> T) -> Option<Result<T, LaneError>> {
        match &self.mode {
            Mode::Inline { .. } => Some(Ok(job())),
            Mode::Threads(lanes) => {
                let _inline = lanes.gate.as_ref().and_then(ReadGate::try_inline)?;
                Some(
                    catch_unwind(AssertUnwindSafe(job)).map_err(|_| LaneError::Panicked {
                        lane: LaneKind::Read,
                    }),
                )
            }
        }
    }

    /// Queues a read-only job on the read lane without waiting for it (it
    /// reports its own result); runs it at once with inline lanes.
    pub fn spawn_read(&self, job: impl FnOnce() + Send + 'static) -> Result<(), LaneError> {
        match &self.mode {
            Mode::Inline { .. } => {
                job();
                Ok(())
            }
            Mode::Threads(lanes) => match lanes.gate.as_ref().and_then(ReadGate::try_inline) {
                Some(_inline) => {
                    catch_unwind(AssertUnwindSafe(job)).map_err(|_| LaneError::Panicked {
                        lane: LaneKind::Read,
                    })
                }
                None => lanes.read.submit(Box::new(job)),
            },
        }
    }

    /// Runs `job` on the write lane, after every write queued before it.
    pub async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&WriteTurn) -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        match &self.mode {
            Mode::Inline { write } => Ok(write_inline(write, job)),
            Mode::Threads(lanes) => lanes.write.run(move || job(&WriteTurn(()))).await,
        }
    }

    /// Runs an engine sync on the sync lane.
    pub async fn sync<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        match &self.mode {
            Mode::Inline { .. } => Ok(job()),
            Mode::Threads(lanes) => lanes.sync.run(job).await,
        }
    }

    /// Refuses new jobs, lets the queued ones finish, and waits until every
    /// lane thread has exited. Later calls get [`LaneError::Stopped`].
    pub async fn close(&self) {
        if let Mode::Threads(lanes) = &self.mode {
            for lane in [&lanes.read, &lanes.write, &lanes.sync] {
                lane.close().await;
            }
        }
    }
}

/// The inline write lane: `job` under the mutex, with no await inside.
fn write_inline<T>(write: &Mutex<()>, job: impl FnOnce(&WriteTurn) -> T) -> T {
    let _turn = lock(write);
    job(&WriteTurn(()))
}

/// One bounded queue and the threads that serve it.
struct Lane {
    kind: LaneKind,
    capacity: usize,
    /// `None` once closed; dropping the sender lets the threads exit.
    queue: Mutex<Option<SyncSender<Job>>>,
    /// One per thread, completed when the thread exits.
    exits: Mutex<Vec<oneshot::Receiver<()>>>,
}

impl Lane {
    fn start(kind: LaneKind, threads: usize, capacity: usize) -> std::io::Result<Lane> {
        let (tx, rx) = sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let mut exits = Vec::with_capacity(threads);
        for i in 0..threads {
            let (exited, exit) = oneshot::channel::<()>();
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("ringkv-{kind}-{i}"))
                .spawn(move || {
                    serve(kind, &rx);
                    drop(exited);
                })?;
            exits.push(exit);
        }
        Ok(Lane {
            kind,
            capacity,
            queue: Mutex::new(Some(tx)),
            exits: Mutex::new(exits),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move || {
            // The caller may have stopped waiting; the job ran regardless.
            let _ = tx.send(job());
        });
        self.submit(boxed)?;
        rx.await
            .map_err(|_| LaneError::Panicked { lane: self.kind })
    }

    fn submit(&self, job: Job) -> Result<(), LaneError> {
        let queue = lock(&self.queue);
        let Some(queue) = queue.as_ref() else {
            return Err(LaneError::Stopped { lane: self.kind });
        };
        queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => LaneError::Overloaded {
                lane: self.kind,
                capacity: self.capacity,
            },
            TrySendError::Disconnected(_) => LaneError::Stopped { lane: self.kind },
        })
    }

    async fn close(&self) {
        lock(&self.queue).take();
        let exits = std::mem::take(&mut *lock(&self.exits));
        for exit in exits {
            // Err is the normal outcome: the thread dropped its sender.
            let _ = exit.await;
        }
    }
}

/// A lane thread: runs jobs in queue order until the queue is closed.
fn serve(kind: LaneKind, rx: &Mutex<Receiver<Job>>) {
    loop {
        // Threads of one lane take turns waiting; the lock is released as
        // soon as a job is taken.
        let next = lock(rx).recv();
        let Ok(job) = next else {
            return;
        };
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!(lane = %kind, "a storage call panicked; the lane carries on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn small() -> StorageLanes {
        StorageLanes::threads(LaneSizes {
            read_threads: 2,
            read_queue: 4,
            write_queue: 2,
            inline_reads: false,
        })
        .unwrap()
    }

    fn lane_thread() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("ringkv-read"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_run_inline_one_at_a_time_and_on_the_lane_after_a_slow_one() {
        let lanes = Arc::new(StorageLanes::threads(LaneSizes::default()).unwrap());
        assert!(
            !lanes.read(lane_thread).await.unwrap(),
            "a lone fast read runs inline"
        );
        // Hold one read inline (on a worker) until released.
        let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let held = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .read(move || {
                        entered_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        entered_rx.recv().unwrap();
        assert!(
            lanes.read(lane_thread).await.unwrap(),
            "a read while another is inline goes to the lane"
        );
        std::thread::sleep(Duration::from_millis(30));
        release_tx.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert!(
            lanes.read(lane_thread).await.unwrap(),
            "after a slow inline read, reads take the lane for the cool-down"
        );
        lanes.close().await;
    }

    #[tokio::test]
    async fn a_full_write_queue_is_a_typed_overload_and_reads_still_answer() {
        let lanes = small();
        let Mode::Threads(threads) = &lanes.mode else {
            unreachable!("thread lanes")
        };
        let write = &threads.write;
        // Block the lane thread until `open` is dropped.
        let (open, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel();
        write
            .submit(Box::new(move || {
                started_tx.send(()).unwrap();
                let _ = wait.recv();
            }))
            .unwrap();
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        // The lane thread is stuck; fill its queue (capacity 2).
        let (ran_tx, ran) = std::sync::mpsc::channel();
        for i in 0..2 {
            let ran_tx = ran_tx.clone();
            write
                .submit(Box::new(move || ran_tx.send(i).unwrap()))
                .unwrap();
        }
        assert_eq!(
            lanes.write(|_| ()).await,
            Err(LaneError::Overloaded {
                lane: LaneKind::Write,
                capacity: 2
            })
        );
        assert_eq!(
            lanes.read(|| 7).await,
            Ok(7),
            "reads do not wait for writes"
        );
        drop(open);
        let order: Vec<_> = (0..2)
            .map(|_| ran.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(order, [0, 1], "queued writes ran, in order");
        lanes.close().await;
        assert_eq!(
            lanes.read(|| ()).await,
            Err(LaneError::Stopped {
                lane: LaneKind::Read
            })
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_lane_carries_on() {
        let lanes = small();
        let err = lanes.write(|_| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(
            err,
            LaneError::Panicked {
                lane: LaneKind::Write
            }
        );
        assert_eq!(lanes.write(|_| 1).await, Ok(1));
        lanes.close().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inline_lanes_run_jobs_on_the_callers_thread() {
        let lanes = StorageLanes::inline();
        let me = std::thread::current().id();
        assert!(lanes.is_inline());
        assert_eq!(
            lanes.read(move || std::thread::current().id() == me).await,
            Ok(true)
        );
        assert_eq!(
            lanes
                .write(move |_| std::thread::current().id() == me)
                .await,
            Ok(true)
        );
        assert_eq!(
            lanes.sync(move || std::thread::current().id() == me).await,
            Ok(true)
        );
    }
}
