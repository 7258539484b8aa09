//! Loading the TLS files: a good pair loads, every bad file is named.

use super::*;

/// The test TLS files (made by `crates/ringkv/tests/data/make_tls.sh`).
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ringkv/tests/data")
        .join(name)
}

#[test]
fn a_matching_certificate_and_key_load() {
    let config = server_config(&data("tls_node.pem"), &data("tls_node.key")).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
}

#[test]
fn every_bad_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a PEM file\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (cert, key) = (data("tls_node.pem"), data("tls_node.key"));
    let cases: [(&Path, &Path, &str, &Path); 5] = [
        (&missing, &key, "cannot read", &missing),
        (&cert, &missing, "cannot read", &missing),
        (&junk, &key, "no PEM certificate", &junk),
        (&cert, &junk, "no PEM private key", &junk),
        (&key, &cert, "no PEM certificate", &key),
    ];
    for (cert, key, says, names) in cases {
        let error = server_config(cert, key).unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
        assert!(error.contains(&names.display().to_string()), "{error}");
    }
    let other = data("tls_other.key");
    let error = server_config(&cert, &other).unwrap_err().to_string();
    assert!(
        error.contains("does not go with") && error.contains("tls_other.key"),
        "{error}"
    );
}
