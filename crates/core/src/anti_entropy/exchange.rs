//! `ExchangeMachine`: one anti-entropy exchange of one partition between this
//! node and one peer, as a sans-IO state machine (F5).
//!
//! The walk, one round per step, each round asking both sides the same
//! [`ExchangeRequest`] (this node through [`ExchangeCommand::ReadLocal`], the
//! peer through [`ExchangeCommand::SendToPeer`]) and going on once both
//! answered:
//!
//! 1. **Roots.** Equal: the replicas agree, done.
//! 2. **Branches.** The 64 branch hashes; keep the differing branches.
//! 3. **Segments.** The 64 segment hashes of each differing branch; keep the
//!    differing segments.
//! 4. **Re-check.** Wait `recheck_after_ms`, then ask both sides again for
//!    the hashes of just those segments and keep only those that still
//!    differ. A write in flight at the first look (landed on one replica,
//!    not yet on the other) has landed everywhere by then (the default wait
//!    exceeds the node's request timeout), so it is not "repaired". Segments
//!    that differ both times are kept even if their hashes moved: repair
//!    merges by causality, so repairing a key that is still being written is
//!    harmless, just not free.
//! 5. **Keys.** Key summaries (storage key + [`super::key_hash`]) of the kept
//!    segments from both sides; the keys that differ become one
//!    [`ExchangeCommand::Repair`], then [`ExchangeCommand::Finish`] carries the
//!    [`ExchangeReport`].
//!
//! **Local data arrives as events, like the peer's.** The machine never
//! touches a tree or storage: the driver answers `ReadLocal` with
//! [`PartitionTree::answer`](super::PartitionTree::answer) or
//! [`SummaryQuery::answer`](super::SummaryQuery::answer) — the very functions
//! the peer runs to answer `SendToPeer` — so both sides are read the same way,
//! the re-check sees fresh local hashes without the machine holding a
//! snapshot, and a local storage failure is an event like a peer's.
//!
//! **Repair contract.** The driver, for each [`KeyDiff`]: `MissingLocally`,
//! fetches the peer's object and merges it into the local one;
//! `MissingOnPeer`, sends the local object to the peer as a replica write;
//! `Differs`, does both. Merging is always [`crate::siblings::Siblings::merge`]
//! (commutative, associative, idempotent), never "take the newer", so a
//! repair racing a client write loses nothing. A tombstone is an object like
//! any other and is repaired the same way.
//!
//! **Bounded.** At most `max_segments` differing branches and then segments
//! are descended into, and each side sends at most `max_keys` summaries and
//! `max_summary_bytes` of them; at most `max_keys` keys are repaired. Past a
//! bound the report says `truncated` and gives `resume_segment`: the driver
//! starts the next exchange there (segments are visited in rotated order from
//! `start_segment`), so every difference is reached in turn. A cut in a
//! later segment resumes at that segment; a cut in the first segment asked
//! resumes past it, since asking it again would show the same prefix. So a
//! segment with more keys than one answer carries is only compared up to
//! that cut, and a key whose repair keeps failing cannot stall the walk.
//!
//! **Cost.** For k differing keys in k segments under d ≤ min(k, 64)
//! branches, the peer sends about 700 + 650·d + k·(L + 25) bytes (hashes are
//! ~10-byte varints, L the storage key length), this node sends a few bytes
//! per segment; whole objects move only in the repair. Equal replicas cost
//! one round of ~20 bytes. The machine holds at most `max_segments` segment
//! ids and `2 × max_keys` summaries.
//!
//! Never: read a clock, do IO, draw randomness, report a key it did not see
//! differ in both sides' answers, or emit a command after `Finish`.

use super::compare::{check_reply, diff_keys, differing, Answer, KeyDiff, ReplyProblem};
use super::messages::{ExchangeReply, ExchangeRequest, SummaryQuery, TreeQuery};
use super::tree::{branch_of, BRANCHES, SEGMENTS, SEGMENTS_PER_BRANCH};
use crate::failure::ReplicaFailure;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// How much one exchange may look at and move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeLimits {
    /// Most differing branches, then segments, descended into (default 256).
    pub max_segments: usize,
    /// Most key summaries asked of each side, and most keys repaired
    /// (default 1024).
    pub max_keys: usize,
    /// Most summary bytes asked of each side (default 1 MiB).
    pub max_summary_bytes: u32,
    /// Wait between finding differing segments and re-checking them
    /// (default 5 s: longer than a write's request timeout).
    pub recheck_after_ms: u64,
    /// Deadline of the whole exchange (default 60 s).
    pub timeout_ms: u64,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            max_segments: 256,
            max_keys: 1024,
            max_summary_bytes: 1 << 20,
            recheck_after_ms: 5_000,
            timeout_ms: 60_000,
        }
    }
}

/// Everything an exchange needs before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangePlan {
    pub partition: u32,
    /// The cluster's partition count (Q).
    pub partitions: u32,
    /// Where to start visiting differing segments: the previous exchange's
    /// `resume_segment`, or anything (0) when there is none.
    pub start_segment: u16,
    pub limits: ExchangeLimits,
}

/// Which side of the exchange a reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Local,
    Peer,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Local => "this node",
            Side::Peer => "the peer",
        })
    }
}

/// What the driver must do next for an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeCommand {
    /// Answer this from this node's tree or storage; feed the outcome back
    /// with [`Side::Local`].
    ReadLocal(ExchangeRequest),
    /// Send this to the peer; feed the outcome back with [`Side::Peer`].
    SendToPeer(ExchangeRequest),
    /// Repair these keys (see the module docs), at most once per exchange.
    Repair { keys: Vec<KeyDiff> },
    /// The exchange is over. Emitted exactly once, last.
    Finish {
        report: ExchangeReport,
        result: Result<(), ExchangeError>,
    },
}

/// What one exchange did, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeReport {
    pub partition: u32,
    /// The roots were equal at the first look (nothing else was asked).
    pub roots_equal: bool,
    /// Segment hashes compared, re-checks included.
    pub segments_compared: usize,
    /// Segments that differed at the first look (within the bounds).
    pub segments_differing: usize,
    /// Of those, segments equal again at the re-check (writes in flight).
    pub segments_settled: usize,
    /// Distinct keys whose summaries were compared.
    pub keys_compared: usize,
    /// Keys handed to repair.
    pub keys_differing: usize,
    /// Payload bytes sent to and received from the peer (postcard-encoded,
    /// without the node's framing).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Rounds that asked the peer.
    pub round_trips: u32,
    /// A bound stopped the walk; start the next exchange at `resume_segment`.
    pub truncated: bool,
    pub resume_segment: Option<u16>,
}

/// Why an exchange ended without a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("the exchange did not finish within {ms} ms")]
    Timeout { ms: u64 },
    #[error("reading this node's tree or keys failed: {0}")]
    Local(ReplicaFailure),
    #[error("the peer failed: {0}")]
    Peer(ReplicaFailure),
    #[error("{side} sent a malformed reply: {problem}")]
    MalformedReply { side: Side, problem: ReplyProblem },
}

/// Where the walk is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Roots,
    Branches,
    /// Descending into `branches`; `truncated`: more differed.
    Segments {
        branches: Vec<u16>,
        truncated: bool,
    },
    /// Waiting to re-check the segments taken.
    AwaitRecheck {
        at_ms: u64,
    },
    /// Re-checking the segments taken.
    Recheck,
    /// Comparing the summaries of `kept` (the query's segments).
    Keys {
        kept: Vec<u16>,
    },
    Done,
}

/// One request asked of both sides, and their checked answers.
#[derive(Debug, Clone)]
struct Round {
    request: ExchangeRequest,
    local: Option<Answer>,
    peer: Option<Answer>,
}

/// One exchange in progress. See the module docs.
#[derive(Debug, Clone)]
pub struct ExchangeMachine {
    plan: ExchangePlan,
    deadline_ms: u64,
    stage: Stage,
    round: Option<Round>,
    /// Segments taken at the first look, in visiting order.
    taken: Vec<u16>,
    /// Where the next exchange starts if a bound stopped this one before
    /// the keys were compared.
    resume_at: Option<u16>,
    report: ExchangeReport,
    commands: VecDeque<ExchangeCommand>,
}

impl ExchangeMachine {
    /// Starts an exchange at `now_ms`: queues the roots round.
    pub fn new(mut plan: ExchangePlan, now_ms: u64) -> Self {
        let limits = &mut plan.limits;
        limits.max_segments = limits.max_segments.clamp(1, SEGMENTS);
        let most_entries = super::messages::MAX_SUMMARY_ENTRIES as usize;
        limits.max_keys = limits.max_keys.clamp(1, most_entries);
        plan.start_segment %= SEGMENTS as u16;
        let mut machine = ExchangeMachine {
            deadline_ms: now_ms.saturating_add(plan.limits.timeout_ms),
            report: ExchangeReport {
                partition: plan.partition,
                ..ExchangeReport::default()
            },
            plan,
            stage: Stage::Roots,
            round: None,
            taken: Vec::new(),
            resume_at: None,
            commands: VecDeque::new(),
        };
        let partition = machine.plan.partition;
        machine.ask(ExchangeRequest::Tree(TreeQuery::Root { partition }));
        machine
    }

    /// Feeds the outcome of the last `ReadLocal` (`Side::Local`) or
    /// `SendToPeer` (`Side::Peer`). Outcomes nobody waits for are ignored.
    pub fn on_reply(
        &mut self,
        side: Side,
        reply: Result<ExchangeReply, ReplicaFailure>,
        now_ms: u64,
    ) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let slot = match side {
            Side::Local => &mut round.local,
            Side::Peer => &mut round.peer,
        };
        if slot.is_some() {
            return;
        }
        let reply = match reply {
            Ok(reply) => reply,
            Err(failure) => {
                let error = match side {
                    Side::Local => ExchangeError::Local(failure),
                    Side::Peer => ExchangeError::Peer(failure),
                };
                return self.finish(Err(error));
            }
        };
        if side == Side::Peer {
            self.report.bytes_received += wire_bytes(&reply);
        }
        match check_reply(&round.request, reply, self.plan.partitions) {
            Ok(answer) => *slot = Some(answer),
            Err(problem) => {
                return self.finish(Err(ExchangeError::MalformedReply { side, problem }))
            }
        }
        if round.local.is_some() && round.peer.is_some() {
            let round = self.round.take().expect("checked above");
            let (Some(local), Some(peer)) = (round.local, round.peer) else {
                unreachable!()
            };
            self.step(local, peer, now_ms);
        }
    }

    /// Handles the timers; call it whenever `now_ms >= poll_timeout()`.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if self.stage == Stage::Done {
            return;
        }
        if now_ms >= self.deadline_ms {
            let ms = self.plan.limits.timeout_ms;
            return self.finish(Err(ExchangeError::Timeout { ms }));
        }
        if matches!(self.stage, Stage::AwaitRecheck { at_ms } if now_ms >= at_ms) {
            self.recheck();
        }
    }

    /// The next command for the driver; drain after every event.
    pub fn poll_command(&mut self) -> Option<ExchangeCommand> {
        self.commands.pop_front()
    }

    /// The next instant at which the driver must call `on_timeout`, or
    /// `None` once finished.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.stage {
            Stage::Done => None,
            Stage::AwaitRecheck { at_ms } => Some(at_ms.min(self.deadline_ms)),
            _ => Some(self.deadline_ms),
        }
    }

    /// What the exchange has done so far (final once finished).
    pub fn report(&self) -> &ExchangeReport {
        &self.report
    }

    /// Whether `Finish` has been queued.
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Acts on both sides' answers to the current round.
    fn step(&mut self, local: Answer, peer: Answer, now_ms: u64) {
        let partition = self.plan.partition;
        match (std::mem::replace(&mut self.stage, Stage::Done), local, peer) {
            (Stage::Roots, Answer::Root(l), Answer::Root(p)) => {
                if l == p {
                    self.report.roots_equal = true;
                    return self.finish(Ok(()));
                }
                self.stage = Stage::Branches;
                self.ask(ExchangeRequest::Tree(TreeQuery::Branches { partition }));
            }
            (Stage::Branches, Answer::Hashes(l), Answer::Hashes(p)) => {
                let start = usize::from(branch_of(self.plan.start_segment));
                let mut branches: Vec<u16> =
                    differing(&l, &p).into_iter().map(|b| b as u16).collect();
                branches.sort_by_key(|&b| (usize::from(b) + BRANCHES - start) % BRANCHES);
                let truncated = branches.len() > self.plan.limits.max_segments;
                branches.truncate(self.plan.limits.max_segments);
                let Some(&last) = branches.last() else {
                    return self.finish(Ok(()));
                };
                if truncated {
                    // Visiting resumes after the last branch looked at.
                    self.resume_at = Some(first_segment_of(last + 1));
                }
                let query = TreeQuery::BranchSegments {
                    partition,
                    branches: branches.clone(),
                };
                self.stage = Stage::Segments {
                    branches,
                    truncated,
                };
                self.ask(ExchangeRequest::Tree(query));
            }
            (
                Stage::Segments {
                    branches,
                    truncated,
                },
                Answer::Hashes(l),
                Answer::Hashes(p),
            ) => {
                self.report.segments_compared += l.len();
                let start = self.plan.start_segment;
                let mut segments: Vec<u16> = differing(&l, &p)
                    .into_iter()
                    .map(|i| {
                        first_segment_of(branches[i / SEGMENTS_PER_BRANCH])
                            + (i % SEGMENTS_PER_BRANCH) as u16
                    })
                    // With branches left unvisited, the start branch's
                    // segments before `start` come after them: leave them.
                    .filter(|&s| !truncated || branch_of(s) != branch_of(start) || s >= start)
                    .collect();
                segments.sort_by_key(|&s| s.wrapping_sub(start) % SEGMENTS as u16);
                if segments.len() > self.plan.limits.max_segments {
                    segments.truncate(self.plan.limits.max_segments);
                    let last = *segments.last().expect("max_segments >= 1");
                    self.resume_at = Some((last + 1) % SEGMENTS as u16);
                }
                if segments.is_empty() {
                    return self.finish(Ok(()));
                }
                self.report.segments_differing = segments.len();
                self.taken = segments;
                let limits = &self.plan.limits;
                if limits.recheck_after_ms == 0 {
                    return self.recheck();
                }
                let at_ms = now_ms.saturating_add(limits.recheck_after_ms);
                self.stage = Stage::AwaitRecheck { at_ms };
            }
            (Stage::Recheck, Answer::Hashes(l), Answer::Hashes(p)) => {
                self.report.segments_compared += l.len();
                let kept: Vec<u16> = differing(&l, &p)
                    .into_iter()
                    .map(|i| self.taken[i])
                    .collect();
                self.report.segments_settled = self.taken.len() - kept.len();
                if kept.is_empty() {
                    return self.finish(Ok(()));
                }
                let limits = &self.plan.limits;
                let query = SummaryQuery {
                    partition,
                    segments: kept.clone(),
                    max_entries: limits.max_keys as u32,
                    max_bytes: limits.max_summary_bytes,
                };
                self.stage = Stage::Keys { kept };
                self.ask(ExchangeRequest::Keys(query));
            }
            (
                Stage::Keys { kept },
                Answer::Keys {
                    entries: l,
                    complete: lc,
                },
                Answer::Keys {
                    entries: p,
                    complete: pc,
                },
            ) => {
                let compared = diff_keys((&l, lc), (&p, pc), self.plan.limits.max_keys);
                self.report.keys_compared = compared.compared;
                self.report.keys_differing = compared.diffs.len();
                if let Some(rank) = compared.cut_rank {
                    // A later segment gets the whole answer next time, asked
                    // first. The first one had it already: asked again, it
                    // shows the same prefix, settled by the repairs or, if a
                    // repair keeps failing, the same difference forever.
                    let segment = if rank == 0 {
                        (kept[0] + 1) % SEGMENTS as u16
                    } else {
                        kept[rank]
                    };
                    self.resume_at = Some(segment);
                }
                if !compared.diffs.is_empty() {
                    self.commands.push_back(ExchangeCommand::Repair {
                        keys: compared.diffs,
                    });
                }
                self.finish(Ok(()));
            }
            _ => unreachable!("answers are checked against the round's request"),
        }
    }

    /// Asks both sides `request`.
    fn ask(&mut self, request: ExchangeRequest) {
        self.report.bytes_sent += wire_bytes(&request);
        self.report.round_trips += 1;
        self.commands
            .push_back(ExchangeCommand::ReadLocal(request.clone()));
        self.commands
            .push_back(ExchangeCommand::SendToPeer(request.clone()));
        self.round = Some(Round {
            request,
            local: None,
            peer: None,
        });
    }

    /// Asks both sides again for the hashes of the segments taken.
    fn recheck(&mut self) {
        let query = TreeQuery::SegmentHashes {
            partition: self.plan.partition,
            segments: self.taken.clone(),
        };
        self.stage = Stage::Recheck;
        self.ask(ExchangeRequest::Tree(query));
    }

    /// Ends the exchange: queues `Finish` (after the repair, if any).
    fn finish(&mut self, result: Result<(), ExchangeError>) {
        self.stage = Stage::Done;
        self.round = None;
        // Questions not yet taken by the driver are no longer wanted.
        self.commands
            .retain(|c| matches!(c, ExchangeCommand::Repair { .. }));
        if result.is_ok() {
            self.report.resume_segment = self.resume_at;
            self.report.truncated = self.resume_at.is_some();
        }
        self.commands.push_back(ExchangeCommand::Finish {
            report: self.report.clone(),
            result,
        });
    }
}

/// The first segment under `branch` (wrapping past the last branch).
fn first_segment_of(branch: u16) -> u16 {
    (branch % BRANCHES as u16) * SEGMENTS_PER_BRANCH as u16
}

/// The postcard size of a payload (what the node's codec sends, unframed).
fn wire_bytes<T: Serialize>(payload: &T) -> u64 {
    postcard::experimental::serialized_size(payload).map_or(0, |n| n as u64)
}

#[cfg(test)]
mod tests;
