//! Starting real `ringkv serve` processes on loopback for end-to-end tests.
//!
//! Ports come from the OS (bind to port 0, then release), data lives in a
//! temporary directory, and every process is killed when its handle drops,
//! so a failing test leaves nothing running.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
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
        let child = command
            .args(&self.args)
            .env("RINGKV_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start ringkv serve");
        self.child = Some(child);
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
            if http(self.http, "GET", "/v1/health", &[], b"").is_ok_and(|r| r.status == 200) {
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

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), so
/// tests see exactly the bytes and status the server sends.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
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
