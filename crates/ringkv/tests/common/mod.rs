//! Starting real `ringkv serve` processes on loopback for end-to-end tests.
//!
//! Ports come from the OS (bind to port 0, then release), data lives in a
//! temporary directory, and every process is killed when its handle drops,
//! so a failing test leaves nothing running. A node may instead run inside a
//! network namespace the test made ([`Place`]); the chaos test does that to
//! cut links with firewall rules.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringkv");

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `ringkv serve` process.
pub struct Node {
    pub id: String,
    pub http: u16,
    pub rpc: u16,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub place: Place,
}

/// Where a node runs: its host address, the network namespace it runs in
/// (none: the test's own) and the file its log goes to (none: the test's
/// stderr).
#[derive(Clone, Debug)]
pub struct Place {
    pub host: IpAddr,
    pub netns: Option<PathBuf>,
    pub log: Option<PathBuf>,
}

impl Place {
    /// Loopback, in the test's own namespace, logging to its stderr.
    pub fn loopback() -> Place {
        Place {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
            log: None,
        }
    }
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// The node's client HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.place.host, self.http)
    }

    pub fn start(&mut self) {
        self.start_under(&[]);
    }

    /// Starts the node as the last argument of `wrapper` (e.g. a tracer:
    /// `["strace", ...]`); the handle's child is then the wrapper.
    pub fn start_under(&mut self, wrapper: &[String]) {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command
            .args(&self.args)
            .env("RINGKV_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(log) = &self.place.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open node log");
            command.stderr(file);
        }
        if let Some(netns) = &self.place.netns {
            enter_netns_on_exec(&mut command, netns);
        }
        self.child = Some(command.spawn().expect("start ringkv serve"));
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the running process.
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("node is running");
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status once it stopped (at most 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("node is running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop within 20 s of SIGTERM", self.id);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes `command` run in the network namespace at `netns` (a file under
/// `/run/netns`), and die with the thread that spawned it (so a test killed
/// before its guards ran leaves no node behind).
pub fn enter_netns_on_exec(command: &mut Command, netns: &Path) {
    let file = std::fs::File::open(netns).expect("open network namespace");
    // SAFETY: only async-signal-safe calls (setns, prctl) between fork and
    // exec; `file` stays open in the child until exec (close-on-exec).
    unsafe {
        command.pre_exec(move || {
            use std::os::fd::AsRawFd;
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
}

/// A cluster of `serve` processes sharing one temporary directory.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes with `extra` flags each and waits until all are
    /// healthy. Ports are picked free but may be taken by a parallel test
    /// before a node binds them; then the whole start is retried on new ports.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let mut cluster = Cluster {
                nodes: plan(n, dir.path(), |_| {
                    extra.iter().map(|s| s.to_string()).collect()
                }),
                dir,
            };
            for node in &mut cluster.nodes {
                node.start();
            }
            if cluster.nodes.iter_mut().all(|node| node.wait_started()) {
                return cluster;
            }
        }
        panic!("could not start a {n}-node cluster in 5 attempts");
    }
}

/// The nodes of a cluster on fresh ports, not yet started; node `i` gets
/// the flags `extra(i)` after its own and its peers'.
pub fn plan(n: usize, dir: &Path, extra: impl Fn(usize) -> Vec<String>) -> Vec<Node> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    (0..n)
        .map(|i| {
            let id = format!("n{}", i + 1);
            let data_dir = dir.join(&id);
            let mut args = vec![
                "serve".to_string(),
                format!("--id={id}"),
                format!("--http=127.0.0.1:{}", ports[i].0),
                format!("--rpc=127.0.0.1:{}", ports[i].1),
                format!("--data-dir={}", data_dir.display()),
            ];
            for (j, (_, rpc)) in ports.iter().enumerate().filter(|(j, _)| *j != i) {
                args.push(format!("--peer=n{}=127.0.0.1:{rpc}", j + 1));
            }
            args.extend(extra(i));
            Node {
                id,
                http: ports[i].0,
                rpc: ports[i].1,
                data_dir,
                args,
                child: None,
                place: Place::loopback(),
            }
        })
        .collect()
}

impl Node {
    /// Waits until the node answers health checks (true), or has exited,
    /// e.g. because its port was taken (false).
    pub fn wait_started(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    self.child = None;
                    return false;
                }
            }
            let health = http_at(
                self.http_addr(),
                HTTP_TIMEOUT,
                "GET",
                "/v1/health",
                &[],
                b"",
            );
            if health.is_ok_and(|r| r.status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not become healthy within 30 s", self.id);
    }
}

/// Waits (at most 30 s) until `GET /v1/health` answers 200.
pub fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http(port, "GET", "/v1/health", &[], b"") {
            if r.status == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node on port {port} did not become healthy");
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The client's port on the connection the request went over.
    pub local_port: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long [`http`] waits to connect, and for each read.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), so
/// tests see exactly the bytes and status the server sends.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    http_at(addr, HTTP_TIMEOUT, method, target, headers, body)
}

/// [`http`] to any address, waiting at most `timeout` to connect, to write
/// and for each read.
pub fn http_at(
    addr: SocketAddr,
    timeout: Duration,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let local_port = s.local_addr()?.port();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    Ok(Reply {
        status,
        local_port,
        headers,
        body: rest.to_vec(),
    })
}

/// Polls `check` (which returns what is still wrong, empty when done) until
/// it returns nothing, or fails after `within` with the last complaints.
pub fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> Vec<String>) {
    let deadline = Instant::now() + within;
    loop {
        let wrong = check();
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not done after {within:?}; {} left, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The size of a directory tree in bytes.
pub fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        dir_size(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The actor a node mints dots under: a blind put to a fresh key comes back
/// with a context naming exactly that actor.
pub fn actor_of(port: u16, fresh_key: &str) -> String {
    let put = http(
        port,
        "PUT",
        &format!("/v1/kv/actors/{fresh_key}"),
        &[],
        b"x",
    )
    .unwrap();
    assert_eq!(put.status, 204, "{}", put.text());
    let token = put.header("x-ringkv-context").unwrap();
    let key =
        ringkv_core::key::ObjectKey::new("actors", fresh_key.as_bytes().to_vec().into(), 1024)
            .unwrap();
    let context = ringkv_core::context::decode_context(
        token,
        8192,
        key.position(),
        // The clusters these tests start run without a secret.
        &ringkv_core::auth::ClusterKey::open(),
    )
    .unwrap();
    let actors: Vec<String> = context
        .entries()
        .iter()
        .map(|(a, _)| a.as_str().to_string())
        .collect();
    assert_eq!(actors.len(), 1, "{actors:?}");
    actors[0].clone()
}

/// The cluster secret file of the dev cluster [`start_dev`] started in
/// `dir` with HTTP ports from `http_base`: a node joining it needs the file.
pub fn dev_secret_file(dir: &Path, http_base: u16) -> std::path::PathBuf {
    dir.join(format!("attempt-{http_base}")).join("secret")
}

/// Starts `ringkv dev` with `nodes` nodes on ports picked free (HTTP ports
/// from the returned base, RPC ports from the second); retries on fresh
/// ports if a parallel test took one first (dev then exits with an error).
pub fn start_dev(dir: &Path, nodes: u16) -> (Child, u16, u16) {
    for _attempt in 0..5 {
        let (http, rpc) = (free_port(), free_port());
        let mut dev = Command::new(BIN)
            .args([
                "dev",
                "--nodes",
                &nodes.to_string(),
                "--http-base",
                &http.to_string(),
                "--rpc-base",
                &rpc.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.join(format!("attempt-{http}")))
            .env("RINGKV_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if dev.try_wait().unwrap().is_some() {
                break;
            }
            let healthy = (0..nodes).all(|i| http_get_ok(http + i, "/v1/health"));
            if healthy {
                return (dev, http, rpc);
            }
            assert!(Instant::now() < deadline, "dev cluster did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("could not start the dev cluster in 5 attempts");
}

fn http_get_ok(port: u16, path: &str) -> bool {
    http(port, "GET", path, &[], b"").is_ok_and(|r| r.status == 200)
}
