//! The machine against a model source and receiver, over random data,
//! chunk sizes, failures and crashes.

use super::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over random data, chunk sizes, fetch and apply failures and
    /// crashes (the machine dropped with commands in flight and rebuilt
    /// from the stored cursors), a plan always completes with exactly the
    /// union of its sources, and a crash or a failed apply costs at most
    /// the two chunks a pull has in flight.
    #[test]
    fn streams_complete_with_the_union_through_failures_and_crashes(
        keys in 0u32..300,
        chunk_keys in 1u32..20,
        concurrent in 1usize..4,
        faults in proptest::collection::vec(0u8..20, 0..400),
    ) {
        let sources: BTreeMap<NodeId, Store> = [
            (id("n1"), store("n1", 0, keys)),
            (id("n2"), store("n2", keys / 2, keys + 50)),
        ]
        .into();
        let transfers: Vec<(u32, Vec<&str>)> =
            vec![(0, vec!["n1", "n2"]), (3, vec!["n2"]), (7, vec!["n1"])];
        let limits = StreamLimits {
            concurrent_pulls: concurrent,
            max_failures: u32::MAX,
            ..limits(chunk_keys)
        };
        let mut receiver = Receiver::default();
        let mut faults = faults.into_iter();
        let (mut now, mut fetched, mut crashes, mut apply_failures) = (0u64, 0u64, 0u64, 0u64);
        let outcome = 'runs: loop {
            let mut m = machine(plan_of(&transfers), limits, &receiver);
            loop {
                while let Some(command) = m.poll_command() {
                    let fault = faults.next().unwrap_or(0);
                    if fault == 19 {
                        crashes += 1;
                        fetched += m.progress().keys_fetched;
                        continue 'runs;
                    }
                    match command {
                        StreamCommand::Fetch { pull, .. } if fault == 18 => {
                            m.on_fetched(&pull, Err(ReplicaFailure::ConnectionLost), now)
                        }
                        StreamCommand::Fetch { pull, request, .. } => {
                            let chunk = answer(&sources[&pull.source], &request);
                            m.on_fetched(&pull, Ok(chunk), now)
                        }
                        StreamCommand::Apply { pull, .. } if fault == 17 => {
                            apply_failures += 1;
                            m.on_applied(&pull, Err(ReplicaError::StorageFailed), now)
                        }
                        StreamCommand::Apply { pull, entries, cursor } => {
                            receiver.apply(&pull, entries, cursor);
                            m.on_applied(&pull, Ok(()), now)
                        }
                        StreamCommand::Finish(outcome) => {
                            fetched += m.progress().keys_fetched;
                            break 'runs outcome;
                        }
                    }
                }
                now = m.poll_timeout().expect("never stalls");
                m.on_timeout(now);
            }
        };
        prop_assert_eq!(outcome, StreamOutcome::Complete);
        let (n1, n2) = (&sources[&id("n1")], &sources[&id("n2")]);
        let want = union(&[(n1, &[0, 7]), (n2, &[0, 3])]);
        prop_assert_eq!(&receiver.data, &want);
        let per_pull = union(&[(n1, &[0, 7])]).len() + union(&[(n2, &[0, 3])]).len();
        let per_pull = per_pull as u64;
        let lost_chunks = crashes * concurrent as u64 + apply_failures;
        prop_assert!(fetched >= per_pull);
        prop_assert!(fetched <= per_pull + lost_chunks * 2 * u64::from(chunk_keys));
    }
}
