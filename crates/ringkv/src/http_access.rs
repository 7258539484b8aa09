//! Who may use a node's HTTP API and how it is reached: client tokens and
//! TLS files from `serve` flags or the config file (flags win).
//!
//! The tokens file is read here, once, at start; a file that cannot be read
//! or breaks a limit of [`ringkv_core::client_auth`] stops the start with
//! the file's name and the line. Only digests leave this module. The TLS
//! files are only named here; the node loads them
//! (`ringkv_node::http::tls`) before it opens anything.

use anyhow::{anyhow, Context, Result};
use ringkv_core::client_auth::ClientTokens;
use ringkv_node::NodeConfig;
use std::path::{Path, PathBuf};

/// Puts the flags over the file's settings and loads the tokens.
pub fn apply(
    config: &mut NodeConfig,
    tokens_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> Result<()> {
    if tokens_file.is_some() {
        config.http_tokens_file = tokens_file;
    }
    if tls_cert.is_some() {
        config.http_tls_cert = tls_cert;
        config.http_tls_key = tls_key;
    }
    config.http_tokens = load_tokens(config.http_tokens_file.as_deref())?;
    Ok(())
}

/// The client tokens in `file`, or `None` (tokens off) without one.
pub fn load_tokens(file: Option<&Path>) -> Result<Option<ClientTokens>> {
    let Some(path) = file else {
        return Ok(None);
    };
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the client tokens file {}", path.display()))?;
    let tokens = ClientTokens::parse(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    tracing::info!(
        file = %path.display(),
        tokens = tokens.len(),
        "HTTP clients need a token"
    );
    Ok(Some(tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_load_from_the_file_and_a_bad_file_names_itself_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# clients\nfirst-client-token-0001\n").unwrap();
        let tokens = load_tokens(Some(&file)).unwrap().unwrap();
        assert!(tokens.verify(b"first-client-token-0001"));
        assert_eq!(load_tokens(None).unwrap(), None, "off by default");
        std::fs::write(&file, "first-client-token-0001\nshort\n").unwrap();
        let error = format!("{:#}", load_tokens(Some(&file)).unwrap_err());
        assert!(
            error.contains("tokens") && error.contains("line 2") && !error.contains("short\n"),
            "{error}"
        );
        let missing = dir.path().join("nope");
        let error = format!("{:#}", load_tokens(Some(&missing)).unwrap_err());
        assert!(error.contains("nope"), "{error}");
    }

    #[test]
    fn the_flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "token-from-the-file-0001").unwrap();
        std::fs::write(&b, "token-from-the-flag-0001").unwrap();
        let mut config = NodeConfig::from_toml(&format!(
            "id = 'n1'\nhttp = '127.0.0.1:8001'\nrpc = '127.0.0.1:9001'\ndata_dir = '/tmp/n1'\nhttp_tokens_file = '{}'\nhttp_tls_cert = 'c.pem'\nhttp_tls_key = 'k.pem'\n",
            a.display()
        ))
        .unwrap();
        apply(&mut config, None, None, None).unwrap();
        let tokens = config.http_tokens.clone().unwrap();
        assert!(tokens.verify(b"token-from-the-file-0001"));
        assert_eq!(config.http_tls_cert, Some("c.pem".into()));
        apply(
            &mut config,
            Some(b),
            Some("x.pem".into()),
            Some("y.pem".into()),
        )
        .unwrap();
        let tokens = config.http_tokens.unwrap();
        assert!(tokens.verify(b"token-from-the-flag-0001"));
        assert!(!tokens.verify(b"token-from-the-file-0001"));
        assert_eq!(
            (config.http_tls_cert, config.http_tls_key),
            (Some("x.pem".into()), Some("y.pem".into()))
        );
    }
}
