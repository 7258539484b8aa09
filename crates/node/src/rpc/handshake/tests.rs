//! Tests of the handshake: the checks of a hello, both sides of the secret's
//! challenge-response over an in-memory stream, and the refusal log.

use super::*;
use crate::net::BoxStream;
use ringkv_core::auth::ClusterSecret;
use ringkv_core::layout::Member;
use ringkv_core::settings::ClusterSettings;

fn key(secret: &str) -> ClusterKey {
    ClusterKey::from_secret(&ClusterSecret::new(secret.as_bytes()).unwrap())
}

fn member(id: &str, capacity: u32) -> Member {
    Member {
        id: NodeId::new(id).unwrap(),
        capacity,
        zone: None,
    }
}

fn settings(n: usize) -> ClusterSettings {
    ClusterSettings {
        partitions: 256,
        replication: ringkv_core::replication::Replication { n, r: 1, w: 1 },
        buckets: Default::default(),
    }
}

fn identity() -> Identity {
    Identity {
        node: NodeId::new("n1").unwrap(),
        cluster: "c".into(),
        layout_digest: 7,
        settings: settings(2),
        members: vec![member("n1", 1), member("n2", 1)],
        removed: Arc::new(|id: &NodeId| id.as_str() == "gone"),
        key: Arc::new(key("the cluster secret")),
        refusals: Arc::new(RefusalLog::default()),
    }
}

fn hello_from(from: Option<&str>) -> Hello {
    let id = identity();
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: "c".into(),
        from: from.map(|f| NodeId::new(f).unwrap()),
        layout_digest: id.layout_digest,
        settings: id.settings,
        members: id.members,
        secured: true,
        nonce: [0; NONCE_BYTES],
    }
}

#[test]
fn hello_checks_version_cluster_membership_settings_and_layout() {
    let id = identity();
    assert!(check_hello(&hello_from(Some("n2")), &id).is_ok());
    assert!(
        check_hello(&hello_from(Some("n9")), &id).is_ok(),
        "a node about to join may connect"
    );
    let mut joining = hello_from(Some("n9"));
    joining.layout_digest = 0;
    joining.members.clear();
    assert!(
        check_hello(&joining, &id).is_ok(),
        "a joining node does not know the first layout yet"
    );
    assert!(
        check_hello(&hello_from(None), &id).is_ok(),
        "a client needs only version and cluster"
    );
    let mut version = hello_from(Some("n2"));
    version.protocol_version += 1;
    let mut cluster = hello_from(Some("n2"));
    cluster.cluster = "other".into();
    let mut settings_differ = hello_from(Some("n2"));
    settings_differ.settings = settings(1);
    let mut open = hello_from(Some("n2"));
    open.secured = false;
    let mut members_differ = hello_from(Some("n2"));
    members_differ.layout_digest = 8;
    members_differ.members = vec![member("n1", 1), member("n2", 2)];
    let cases: Vec<(&str, Hello, &str, Option<&str>)> = vec![
        ("version", version, "protocol version", None),
        ("cluster", cluster, "cluster", None),
        ("removed", hello_from(Some("gone")), "not a member", None),
        ("open", open, "without a cluster secret (open mode)", None),
        (
            "settings",
            settings_differ,
            "replication settings",
            Some("replication: n=2 r=1 w=1 here, n=1 r=1 w=1 at the peer"),
        ),
        (
            "layout",
            members_differ,
            "layouts differ",
            Some("node n2: capacity 1 here, 2 at the peer"),
        ),
    ];
    for (name, hello, refusal, difference) in cases {
        let (why, differences) = check_hello(&hello, &id).unwrap_err();
        assert!(why.to_string().contains(refusal), "{name}: {why}");
        if let Some(d) = difference {
            assert_eq!(differences, vec![d.to_string()], "{name}");
        }
    }
}

/// Runs both sides of one handshake over an in-memory stream: the
/// connecting side's result, the answering side's, and the refusals counted.
async fn exchange(
    greeting: Greeting,
    identity: Identity,
) -> (
    Result<(), RpcError>,
    Result<(), RpcError>,
    Vec<HandshakeRefusal>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (mut cr, mut cw) = frame::split(Box::new(a) as BoxStream);
    let (mut sr, mut sw) = frame::split(Box::new(b) as BoxStream);
    let counted = Mutex::new(Vec::new());
    let on_refused = |r: &HandshakeRefusal| counted.lock().unwrap().push(r.clone());
    let server = async {
        let hello = match frame::recv(&mut sr).await.unwrap() {
            Some(Message::Hello(h)) => h,
            other => panic!("expected a hello, got {other:?}"),
        };
        answer(&hello, &mut sr, &mut sw, &identity, &on_refused).await
    };
    let n1 = NodeId::new("n1").unwrap();
    let client = greet(&mut cr, &mut cw, &greeting, Some(&n1), "n1");
    let (c, s) = tokio::join!(client, server);
    (c, s, counted.into_inner().unwrap())
}

fn node_greeting(secret: Option<&str>) -> Greeting {
    let k = secret.map(key).unwrap_or_else(ClusterKey::open);
    Greeting::new(hello_from(Some("n2")), k)
}

#[tokio::test]
async fn the_same_secret_gets_in_and_another_is_refused_and_counted_on_both_ends() {
    let (c, s, counted) = exchange(node_greeting(Some("the cluster secret")), identity()).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    assert!(counted.is_empty());

    let (c, s, counted) = exchange(node_greeting(Some("another secret, 16+")), identity()).await;
    for side in [&c, &s] {
        assert!(
            matches!(
                side,
                Err(RpcError::HandshakeRefused {
                    reason: HandshakeRefusal::WrongSecret,
                    ..
                })
            ),
            "{side:?}"
        );
    }
    assert_eq!(counted, vec![HandshakeRefusal::WrongSecret]);

    let (c, _, counted) = exchange(node_greeting(None), identity()).await;
    let mode = HandshakeRefusal::SecretMode {
        ours: true,
        theirs: false,
    };
    assert!(
        matches!(&c, Err(RpcError::HandshakeRefused { reason, .. }) if *reason == mode),
        "{c:?}"
    );
    assert_eq!(counted, vec![mode]);
}

#[tokio::test]
async fn a_client_must_prove_the_secret_too() {
    let client = Greeting::client("c", key("the cluster secret"));
    let (c, s, _) = exchange(client, identity()).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    let stranger = Greeting::client("c", key("a stranger's secret"));
    let (c, _, counted) = exchange(stranger, identity()).await;
    assert!(matches!(c, Err(RpcError::HandshakeRefused { .. })), "{c:?}");
    assert_eq!(counted, vec![HandshakeRefusal::WrongSecret]);
}

#[tokio::test]
async fn open_nodes_let_each_other_in() {
    let mut open = identity();
    open.key = Arc::new(ClusterKey::open());
    let (c, s, _) = exchange(node_greeting(None), open).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
}

#[test]
fn a_refusal_is_logged_once_per_peer_and_reason_until_the_peer_gets_in() {
    let log = RefusalLog::default();
    let n2 = NodeId::new("n2").unwrap();
    assert!(log.log(Some(&n2), &HandshakeRefusal::WrongSecret, &[]));
    assert!(
        !log.log(Some(&n2), &HandshakeRefusal::WrongSecret, &[]),
        "the same again is quiet"
    );
    assert!(
        log.log(None, &HandshakeRefusal::WrongSecret, &[]),
        "another peer is logged"
    );
    assert!(
        log.log(Some(&n2), &HandshakeRefusal::NotAMember, &[]),
        "another reason is logged"
    );
    log.forget(Some(&n2));
    assert!(log.log(Some(&n2), &HandshakeRefusal::NotAMember, &[]));
    for i in 0..MAX_REFUSALS_REMEMBERED + 1 {
        let id = NodeId::new(&format!("p{i}")).unwrap();
        log.log(Some(&id), &HandshakeRefusal::WrongSecret, &[]);
    }
    assert!(
        log.logged.lock().unwrap().len() <= MAX_REFUSALS_REMEMBERED,
        "bounded"
    );
}
