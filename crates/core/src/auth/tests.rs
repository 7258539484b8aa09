//! Tests of the cluster secret: trimming and bounds, proofs that verify only
//! under the same secret, nonces, ids, cluster and role, and context MACs.

use super::*;

fn key(secret: &str) -> ClusterKey {
    ClusterKey::from_secret(&ClusterSecret::new(secret.as_bytes()).unwrap())
}

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

const C_NONCE: Nonce = [1; NONCE_BYTES];
const S_NONCE: Nonce = [2; NONCE_BYTES];

#[test]
fn a_secret_is_trimmed_and_bounded() {
    let a = ClusterSecret::new(b"  0123456789abcdef\n").unwrap();
    assert_eq!(a, ClusterSecret::new(b"0123456789abcdef").unwrap());
    assert_eq!(
        ClusterSecret::new(b"short secret   \n"),
        Err(SecretError::TooShort {
            bytes: 12,
            min: MIN_SECRET_BYTES
        })
    );
    let huge = vec![b'x'; MAX_SECRET_BYTES + 1];
    assert_eq!(
        ClusterSecret::new(&huge),
        Err(SecretError::TooLong {
            bytes: MAX_SECRET_BYTES + 1,
            max: MAX_SECRET_BYTES
        })
    );
    assert!(
        !format!("{a:?}").contains("0123"),
        "Debug must not show the secret"
    );
}

#[test]
fn proofs_made_with_the_same_secret_verify() {
    let k = key("the cluster secret");
    let s = k.server_proof("c", &id("n1"), &C_NONCE, &S_NONCE);
    assert_eq!(
        k.verify_server("c", &id("n1"), &C_NONCE, &S_NONCE, &s),
        Ok(())
    );
    let c = k.client_proof("c", Some(&id("n2")), &S_NONCE, &C_NONCE);
    assert_eq!(
        k.verify_client("c", Some(&id("n2")), &S_NONCE, &C_NONCE, &c),
        Ok(())
    );
    let client = k.client_proof("c", None, &S_NONCE, &C_NONCE);
    assert_eq!(
        k.verify_client("c", None, &S_NONCE, &C_NONCE, &client),
        Ok(())
    );
}

#[test]
fn another_secret_or_open_mode_fails_verification() {
    let ours = key("the cluster secret");
    let c = key("another cluster secret").client_proof("c", Some(&id("n2")), &S_NONCE, &C_NONCE);
    assert_eq!(
        ours.verify_client("c", Some(&id("n2")), &S_NONCE, &C_NONCE, &c),
        Err(ProofMismatch)
    );
    let open = ClusterKey::open().client_proof("c", Some(&id("n2")), &S_NONCE, &C_NONCE);
    assert_eq!(
        ours.verify_client("c", Some(&id("n2")), &S_NONCE, &C_NONCE, &open),
        Err(ProofMismatch)
    );
    assert!(!ClusterKey::open().is_secured() && ours.is_secured());
}

#[test]
fn a_recorded_proof_fails_against_a_fresh_nonce() {
    let k = key("the cluster secret");
    let recorded = k.client_proof("c", Some(&id("n2")), &S_NONCE, &C_NONCE);
    let fresh: Nonce = [3; NONCE_BYTES];
    assert_eq!(
        k.verify_client("c", Some(&id("n2")), &fresh, &C_NONCE, &recorded),
        Err(ProofMismatch),
        "a replayed client proof must not answer a new server nonce"
    );
    let server = k.server_proof("c", &id("n1"), &C_NONCE, &S_NONCE);
    assert_eq!(
        k.verify_server("c", &id("n1"), &fresh, &S_NONCE, &server),
        Err(ProofMismatch)
    );
}

#[test]
fn a_proof_is_bound_to_the_id_the_cluster_and_the_role() {
    let k = key("the cluster secret");
    let c = k.client_proof("c", Some(&id("n2")), &S_NONCE, &C_NONCE);
    assert_eq!(
        k.verify_client("c", Some(&id("n3")), &S_NONCE, &C_NONCE, &c),
        Err(ProofMismatch)
    );
    assert_eq!(
        k.verify_client("c", None, &S_NONCE, &C_NONCE, &c),
        Err(ProofMismatch)
    );
    assert_eq!(
        k.verify_client("d", Some(&id("n2")), &S_NONCE, &C_NONCE, &c),
        Err(ProofMismatch)
    );
    // A server proof reflected back as a client proof (same id, nonces swapped).
    let s = k.server_proof("c", &id("n2"), &S_NONCE, &C_NONCE);
    assert_eq!(
        k.verify_client("c", Some(&id("n2")), &S_NONCE, &C_NONCE, &s),
        Err(ProofMismatch)
    );
}

#[test]
fn context_macs_depend_on_the_secret_and_the_body() {
    let k = key("the cluster secret");
    let tag = k.context_mac(b"body");
    assert_eq!(k.verify_context_mac(b"body", &tag), Ok(()));
    assert_eq!(k.verify_context_mac(b"bodz", &tag), Err(ProofMismatch));
    assert_eq!(
        key("another cluster secret").verify_context_mac(b"body", &tag),
        Err(ProofMismatch)
    );
    assert_eq!(
        k.verify_context_mac(b"body", &[]),
        Err(ProofMismatch),
        "an empty tag is no tag"
    );
    assert_ne!(
        &tag[..],
        &k.server_proof("c", &id("n1"), &C_NONCE, &S_NONCE)[..CONTEXT_MAC_BYTES]
    );
}
