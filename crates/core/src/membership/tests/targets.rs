//! Peer choice: live peers uniformly, unreachable ones sometimes, seeds
//! when alone.

use super::*;

fn cluster(size: usize) -> Membership {
    let mut m = node("n0", 1);
    let others = (1..size)
        .map(|i| entry(&format!("n{i}"), 1, stamp(1, 1, 1)))
        .collect();
    deliver(&mut m, others);
    m
}

#[test]
fn a_node_alone_gossips_only_with_a_seed() {
    let m = node("n0", 1);
    for choice in 0..100 {
        let t = m.gossip_targets(choice, |_| true);
        assert_eq!(
            t,
            GossipTargets {
                live: None,
                unreachable: None,
                seed: true
            }
        );
    }
}

#[test]
fn live_peers_are_chosen_uniformly_and_never_this_node() {
    let m = cluster(5);
    let mut counts = BTreeMap::<NodeId, u32>::new();
    for choice in 0..4000 {
        let t = m.gossip_targets(choice, |_| true);
        assert_eq!(t.unreachable, None, "nobody is unreachable");
        *counts.entry(t.live.unwrap()).or_default() += 1;
    }
    assert!(!counts.contains_key(&id("n0")));
    assert_eq!(counts.len(), 4);
    assert!(
        counts.values().all(|&c| (800..1200).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn unreachable_peers_are_tried_with_probability_unreachable_over_live_plus_one() {
    let m = cluster(11); // 10 peers
    let down = |i: &NodeId| ["n1", "n2"].contains(&i.as_str());
    let (mut tried, mut seeds) = (0, 0);
    for choice in 0..10_000 {
        let t = m.gossip_targets(choice, |i| !down(i));
        assert!(t.live.as_ref().is_some_and(|l| !down(l)));
        if let Some(u) = t.unreachable {
            assert!(down(&u));
            tried += 1;
        }
        seeds += u32::from(t.seed);
    }
    // 2 / (8 + 1) = 22%; seeds 1 / 11 = 9%.
    assert!((2000..2450).contains(&tried), "{tried}");
    assert!((750..1050).contains(&seeds), "{seeds}");
    let all_down = m.gossip_targets(7, |_| false);
    assert!(all_down.live.is_none() && all_down.unreachable.is_some() && all_down.seed);
}
