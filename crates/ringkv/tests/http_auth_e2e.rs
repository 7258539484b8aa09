//! End-to-end, only its own clients get in (N4): a node started with client
//! tokens answers 401 to requests without the right one (and counts them),
//! lets the right one read and write, keeps `/v1/health` open, and the CLI
//! sends the token from `RINGKV_TOKEN`; a node started with a certificate
//! speaks only TLS, and a bad certificate file stops it naming the file.

mod common;

use common::{http, plan, Cluster, BIN};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-client-token-0123456789";
const ONE_NODE: [&str; 3] = ["--n=1", "--r=1", "--w=1"];

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn with_tokens_only_the_right_token_gets_in_and_refusals_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# e2e\n{TOKEN}\n")).unwrap();
    let flag = format!("--http-tokens-file={}", tokens.display());
    let mut flags = ONE_NODE.to_vec();
    flags.push(&flag);
    let cluster = Cluster::start(1, &flags);
    let port = cluster.nodes[0].http;
    let path = "/v1/kv/b/k";

    let missing = http(port, "PUT", path, &[], b"v1").unwrap();
    assert_eq!(missing.status, 401);
    assert!(missing
        .header("www-authenticate")
        .is_some_and(|c| c.starts_with("Bearer")));
    assert_eq!(missing.json()["error"]["code"], "unauthorized");
    let wrong = bearer("not-the-token-0123456789");
    let wrong = http(port, "PUT", path, &[("Authorization", &wrong)], b"v1").unwrap();
    assert_eq!(wrong.status, 401);
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(http(port, "GET", path, &[], b"").unwrap().status, 401);

    let right = bearer(TOKEN);
    let auth = [("Authorization", right.as_str())];
    assert_eq!(http(port, "PUT", path, &auth, b"v1").unwrap().status, 204);
    let got = http(port, "GET", path, &auth, b"").unwrap();
    assert_eq!((got.status, got.body.as_slice()), (200, &b"v1"[..]));

    assert_eq!(
        http(port, "GET", "/v1/health", &[], b"").unwrap().status,
        200
    );
    assert_eq!(http(port, "GET", "/metrics", &[], b"").unwrap().status, 401);
    let metrics = http(port, "GET", "/metrics", &auth, b"").unwrap().text();
    for counted in [
        r#"ringkv_http_auth_refused_total{reason="missing"} 3"#,
        r#"ringkv_http_auth_refused_total{reason="wrong"} 1"#,
    ] {
        assert!(metrics.contains(counted), "{counted} in\n{metrics}");
    }

    let cli = |token: Option<&str>| {
        let mut get = Command::new(BIN);
        get.args(["get", "b", "k", "--raw", "--node"])
            .arg(format!("http://127.0.0.1:{port}"))
            .env_remove("RINGKV_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = token {
            get.env("RINGKV_TOKEN", token);
        }
        get.output().unwrap()
    };
    let with = cli(Some(TOKEN));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(with.stdout, b"v1");
    let without = cli(None);
    let why = String::from_utf8_lossy(&without.stderr);
    assert!(
        !without.status.success() && why.contains("401") && why.contains("--token"),
        "{why}"
    );
}

/// A TLS client that trusts only the test CA.
fn tls_client() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data("tls_ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One request over TLS; the status and body.
fn https(port: u16, method: &str, target: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection =
        rustls::ClientConnection::new(tls_client(), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(body)?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify: keep what arrived.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = String::from_utf8_lossy(&raw[..split])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, raw[split + 4..].to_vec()))
}

#[test]
fn with_a_certificate_the_node_speaks_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = [
        format!("--http-tls-cert={}", data("tls_node.pem").display()),
        format!("--http-tls-key={}", data("tls_node.key").display()),
    ];
    let mut nodes = plan(1, dir.path(), |_| {
        ONE_NODE
            .iter()
            .map(|s| s.to_string())
            .chain(tls.clone())
            .collect()
    });
    let node = &mut nodes[0];
    node.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !https(node.http, "GET", "/v1/health", b"").is_ok_and(|(s, _)| s == 200) {
        assert!(
            Instant::now() < deadline,
            "the TLS node did not answer health"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        https(node.http, "PUT", "/v1/kv/b/k", b"sealed").unwrap().0,
        204
    );
    let (status, body) = https(node.http, "GET", "/v1/kv/b/k", b"").unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"sealed"[..]));
    let plain = http(node.http, "GET", "/v1/health", &[], b"");
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP got an answer from the TLS port: {:?}",
        plain.map(|r| r.status)
    );
    node.terminate();
}

#[test]
fn a_bad_certificate_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = plan(1, dir.path(), |_| {
        let wrong = data("tls_node.key");
        let mut flags: Vec<String> = ONE_NODE.iter().map(|s| s.to_string()).collect();
        flags.push(format!("--http-tls-cert={}", wrong.display()));
        flags.push(format!("--http-tls-key={}", wrong.display()));
        flags
    });
    let out = Command::new(BIN)
        .args(&nodes[0].args)
        .env("RINGKV_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        why.contains("no PEM certificate") && why.contains("tls_node.key"),
        "{why}"
    );
}
