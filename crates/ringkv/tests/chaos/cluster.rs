//! A cluster of real `ringkv serve` processes, each in its own network
//! namespace, and the faults the nemesis can do to it: kill, pause, cut.
//!
//! Nodes are `common::Node`s with a `Place` in their namespace and a log
//! file in the run's temporary directory (kept, and its path printed, when
//! the test fails). The cluster runs in open mode (no secret): nothing
//! outside the test's namespaces can reach it.
//!
//! *Invariant:* after [`ChaosCluster::heal_all`] every node runs unpaused
//! and no rule cuts any link. *Cleanup:* fields drop in order, so every
//! process is killed (by pid, also a stopped one) before its namespace is
//! deleted, and the data last.

use super::netns::{enter, node_address, Network, Unavailable};
use crate::common::{Node, Place};
use std::path::PathBuf;

/// Every node listens on these ports at its own address.
const HTTP_PORT: u16 = 8080;
const RPC_PORT: u16 = 9090;

pub struct ChaosCluster {
    pub nodes: Vec<Node>,
    paused: Vec<bool>,
    network: Network,
    /// Data and logs; deleted last, when the cluster drops.
    _dir: tempfile::TempDir,
}

impl ChaosCluster {
    /// Builds the network and starts `count` nodes with `flags` each,
    /// waiting until every one is healthy.
    pub fn start(count: usize, flags: &[&str]) -> Result<ChaosCluster, Unavailable> {
        let network = Network::create(count)?;
        enter(&network.hub_netns());
        let dir = tempfile::tempdir().expect("temporary directory");
        let nodes = (0..count)
            .map(|i| {
                let id = format!("n{}", i + 1);
                let host = node_address(i);
                let data_dir = dir.path().join(&id);
                let mut args = vec![
                    "serve".to_string(),
                    format!("--id={id}"),
                    format!("--http={host}:{HTTP_PORT}"),
                    format!("--rpc={host}:{RPC_PORT}"),
                    format!("--data-dir={}", data_dir.display()),
                ];
                for j in (0..count).filter(|&j| j != i) {
                    args.push(format!("--peer=n{}={}:{RPC_PORT}", j + 1, node_address(j)));
                }
                args.extend(flags.iter().map(|f| f.to_string()));
                Node {
                    id,
                    http: HTTP_PORT,
                    rpc: RPC_PORT,
                    data_dir,
                    args,
                    child: None,
                    place: Place {
                        host,
                        netns: Some(network.node_netns(i)),
                        log: Some(dir.path().join(format!("n{}.log", i + 1))),
                    },
                }
            })
            .collect();
        let mut cluster = ChaosCluster {
            nodes,
            paused: vec![false; count],
            network,
            _dir: dir,
        };
        for node in &mut cluster.nodes {
            node.start();
        }
        for node in &mut cluster.nodes {
            assert!(node.wait_started(), "{} exited at start", node.id);
        }
        Ok(cluster)
    }

    /// SIGKILL node `i` (a crash); [`heal_all`](Self::heal_all) restarts it.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
        self.paused[i] = false;
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal(libc::SIGSTOP);
        self.paused[i] = true;
    }

    /// Cuts the nodes in `side` from the others.
    pub fn partition(&mut self, side: &[usize]) {
        if let Err(Unavailable(why)) = self.network.partition(side) {
            panic!("could not cut the network: {why}");
        }
    }

    /// Resumes paused nodes, restarts killed ones on their data, and drops
    /// every cut; waits until restarted nodes are healthy.
    pub fn heal_all(&mut self) {
        if let Err(Unavailable(why)) = self.network.heal() {
            panic!("could not heal the network: {why}");
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if std::mem::take(&mut self.paused[i]) {
                node.signal(libc::SIGCONT);
            }
            if node.child.is_none() {
                node.start();
                assert!(node.wait_started(), "{} exited on restart", node.id);
            }
        }
    }

    /// The hub namespace, for client threads to [`enter`].
    pub fn hub_netns(&self) -> PathBuf {
        self.network.hub_netns()
    }

    /// The node log files, for a failure message.
    pub fn logs(&self) -> Vec<PathBuf> {
        let logs = self.nodes.iter().filter_map(|n| n.place.log.clone());
        logs.collect()
    }
}
