//! The chaos test's network: one namespace per node, joined by a bridge in
//! a hub namespace, and partitions as firewall rules inside the nodes'
//! namespaces.
//!
//! Layout, for a run with process id P and nodes n1..nK:
//!
//! ```text
//!   netns rkchaos-P-hub: bridge br0 10.77.0.254/24  (the test's clients live here)
//!      ├─ veth vn1 ── eth0 10.77.0.1/24  in netns rkchaos-P-n1
//!      ├─ veth vn2 ── eth0 10.77.0.2/24  in netns rkchaos-P-n2
//!      └─ ...
//! ```
//!
//! Every node listens on the same ports at its own address, so no port can
//! be taken by a parallel test. The test's threads that talk to nodes enter
//! the hub namespace ([`enter`] with [`Network::hub_netns`]); the test's own namespace gets
//! no interface, address, route or rule.
//!
//! A partition is `iptables -A INPUT -s <peer> -j DROP` and `-A OUTPUT -d
//! <peer> -j DROP` in each node's namespace for every peer across the cut:
//! packets vanish silently, as on a real broken link (no reset, no refusal).
//! Clients in the hub are never cut off, as in Jepsen's tests.
//!
//! *Boundary:* this module touches only namespaces it created. [`Drop`]
//! deletes them, which removes their interfaces and rules with them, also
//! when the test panics; [`Network::create`] first deletes namespaces an
//! earlier run of this test left behind when it was killed (their name
//! carries a process id that no longer exists).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Namespaces this test creates are named `<NETNS_PREFIX><pid>-<role>`.
const NETNS_PREFIX: &str = "rkchaos-";
/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Why the network could not be built (e.g. not root, `ip` or `iptables`
/// missing).
#[derive(Debug)]
pub struct Unavailable(pub String);

/// The namespaces of one run; deleted on drop.
pub struct Network {
    hub: String,
    nodes: Vec<String>,
}

impl Network {
    /// Builds the hub and `count` node namespaces, or says why it cannot.
    pub fn create(count: usize) -> Result<Network, Unavailable> {
        for tool in ["ip", "iptables"] {
            let found = Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(Unavailable(format!("`{tool}` is not installed")));
            }
        }
        delete_stale();
        let pid = std::process::id();
        let mut network = Network {
            hub: format!("{NETNS_PREFIX}{pid}-hub"),
            nodes: Vec::new(),
        };
        ip(&["netns", "add", &network.hub])?;
        let hub = network.hub.clone();
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "addr", "add", "10.77.0.254/24", "dev", "br0"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        for i in 0..count {
            let ns = format!("{NETNS_PREFIX}{pid}-n{}", i + 1);
            ip(&["netns", "add", &ns])?;
            network.nodes.push(ns.clone());
            let veth = format!("vn{}", i + 1);
            ip(&[
                "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &veth, "master", "br0", "up"])?;
            let cidr = format!("{}/24", node_address(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // Fail now, not in the middle of the run, if the firewall does
            // not work in a namespace here.
            network.iptables(i, &["-L", "INPUT", "-n"])?;
        }
        Ok(network)
    }

    /// The file naming node `i`'s namespace (for `setns`).
    pub fn node_netns(&self, i: usize) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.nodes[i])
    }

    /// The file naming the hub namespace, where every node's address is
    /// reachable (for [`enter`]).
    pub fn hub_netns(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.hub)
    }

    /// Cuts every link between a node in `side` and one outside it.
    pub fn partition(&self, side: &[usize]) -> Result<(), Unavailable> {
        for i in 0..self.nodes.len() {
            let across = (0..self.nodes.len()).filter(|j| side.contains(j) != side.contains(&i));
            for j in across {
                let peer = node_address(j).to_string();
                self.iptables(i, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
                self.iptables(i, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Drops every rule in every node's namespace (all are ours).
    pub fn heal(&self) -> Result<(), Unavailable> {
        for i in 0..self.nodes.len() {
            self.iptables(i, &["-F", "INPUT"])?;
            self.iptables(i, &["-F", "OUTPUT"])?;
        }
        Ok(())
    }

    fn iptables(&self, node: usize, args: &[&str]) -> Result<(), Unavailable> {
        let mut command = Command::new("iptables");
        command.arg("-w").args(args);
        crate::common::enter_netns_on_exec(&mut command, &self.node_netns(node));
        run(
            command,
            &format!("iptables {} in {}", args.join(" "), self.nodes[node]),
        )
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into the namespace at `netns`. Only this
/// thread moves; processes it spawns start there.
pub fn enter(netns: &Path) {
    let file = std::fs::File::open(netns).expect("open a network namespace");
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) on an fd we own; it changes only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Node `i`'s address (10.77.0.(i+1)).
pub fn node_address(i: usize) -> IpAddr {
    let last = u8::try_from(i + 1).expect("at most 250 nodes");
    IpAddr::V4(Ipv4Addr::new(10, 77, 0, last))
}

/// Deletes namespaces of earlier runs of this test whose process is gone.
fn delete_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let gone = pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists()
        });
        if gone {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), Unavailable> {
    let mut command = Command::new("ip");
    command.args(args);
    run(command, &format!("ip {}", args.join(" ")))
}

fn run(mut command: Command, what: &str) -> Result<(), Unavailable> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Unavailable(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Unavailable(format!(
        "{what}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
