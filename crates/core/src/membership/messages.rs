//! The three gossip messages (Cassandra's SYN / ACK / ACK2) and the checks
//! every one decoded from a peer must pass before it touches the table.
//!
//! - [`GossipSyn`]: the initiator's digest of every entry it holds (id and
//!   stamp, no record) plus the nodes it has forgotten.
//! - [`GossipAck`]: the receiver's answer: whole entries where its record is
//!   newer, bare heartbeats where only the heartbeat is, requests for what
//!   the initiator has newer, and the forgotten nodes the initiator lacks.
//! - [`GossipAck2`]: the initiator's answer to those requests.
//!
//! They are plain structs: the node wraps them in its protocol messages
//! (and will add layout-history fields beside these). [`GossipSyn::validate`]
//! and friends bound everything a peer controls: at most
//! [`MAX_MEMBERS`] items per list ([`MAX_FORGOTTEN`] forgotten nodes), ids
//! in strictly increasing order (so no duplicates, and one canonical form),
//! plain node ids (no actor epochs), and every record valid. With the
//! record bounds this caps a message at a few MiB whatever a peer sends.
//! [`super::Membership`] runs these checks itself before merging, so a
//! malformed message is refused whole and changes nothing.

use super::entry::{Beat, Digest, Entry, News, Stamp};
use super::forget::{Forgotten, MAX_FORGOTTEN};
use super::record::RecordError;
use crate::layout::MAX_MEMBERS;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The initiator's digest: what it holds, without records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GossipSyn {
    /// One per entry the initiator holds, its own included, by id.
    pub digests: Vec<Digest>,
    /// Every node the initiator has forgotten, by id.
    pub forgotten: Vec<Forgotten>,
}

/// The receiver's answer to a [`GossipSyn`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GossipAck {
    /// Entries whose record the receiver holds newer (or the initiator
    /// lacks), by id.
    pub entries: Vec<Entry>,
    /// Heartbeats the receiver holds newer where the records are equal, by id.
    pub beats: Vec<Beat>,
    /// Ids the initiator holds something newer of, with the receiver's
    /// stamp for each (`None`: it holds nothing), by id.
    pub requests: Vec<Request>,
    /// Forgotten nodes the initiator lacks or holds an older mark of, by id.
    pub forgotten: Vec<Forgotten>,
}

/// The initiator's answer to the requests of a [`GossipAck`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GossipAck2 {
    pub entries: Vec<Entry>,
    pub beats: Vec<Beat>,
}

/// "Send me what you have newer than this about `id`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: NodeId,
    pub have: Option<Stamp>,
}

/// Why a gossip message (or a persisted snapshot) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("{list}: {count} items; the limit is {limit}")]
    TooMany {
        list: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("{list}: {id} is out of order or repeated (ids must strictly increase)")]
    Unsorted { list: &'static str, id: NodeId },
    #[error("{list}: {id} is an actor id; membership names plain node ids")]
    ActorId { list: &'static str, id: NodeId },
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl GossipSyn {
    pub fn validate(&self) -> Result<(), GossipError> {
        check_ids("digests", self.digests.iter().map(|d| &d.id), MAX_MEMBERS)?;
        check_ids(
            "forgotten",
            self.forgotten.iter().map(|f| &f.id),
            MAX_FORGOTTEN,
        )
    }
}

impl GossipAck {
    pub fn validate(&self) -> Result<(), GossipError> {
        check_entries(&self.entries)?;
        check_ids("beats", self.beats.iter().map(|b| &b.id), MAX_MEMBERS)?;
        check_ids("requests", self.requests.iter().map(|r| &r.id), MAX_MEMBERS)?;
        check_ids(
            "forgotten",
            self.forgotten.iter().map(|f| &f.id),
            MAX_FORGOTTEN,
        )
    }

    pub(crate) fn push(&mut self, news: News) {
        news.push_to(&mut self.entries, &mut self.beats);
    }
}

impl GossipAck2 {
    pub fn validate(&self) -> Result<(), GossipError> {
        check_entries(&self.entries)?;
        check_ids("beats", self.beats.iter().map(|b| &b.id), MAX_MEMBERS)
    }

    pub(crate) fn push(&mut self, news: News) {
        news.push_to(&mut self.entries, &mut self.beats);
    }
}

/// A list of entries: bounded, sorted, and every record valid.
pub(crate) fn check_entries(entries: &[Entry]) -> Result<(), GossipError> {
    check_ids("entries", entries.iter().map(Entry::id), MAX_MEMBERS)?;
    entries.iter().try_for_each(|e| Ok(e.record.validate()?))
}

/// At most `limit` plain ids, strictly increasing.
pub(crate) fn check_ids<'a>(
    list: &'static str,
    ids: impl ExactSizeIterator<Item = &'a NodeId>,
    limit: usize,
) -> Result<(), GossipError> {
    if ids.len() > limit {
        return Err(GossipError::TooMany {
            list,
            count: ids.len(),
            limit,
        });
    }
    let mut previous: Option<&NodeId> = None;
    for id in ids {
        if id.has_epoch() {
            return Err(GossipError::ActorId {
                list,
                id: id.clone(),
            });
        }
        if previous.is_some_and(|p| p >= id) {
            return Err(GossipError::Unsorted {
                list,
                id: id.clone(),
            });
        }
        previous = Some(id);
    }
    Ok(())
}
