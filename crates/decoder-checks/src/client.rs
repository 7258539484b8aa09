//! What an HTTP client controls: the causal-context header and the request
//! target (`/v1/kv/{bucket}/{key}?r=&w=&pw=&local=&ttl=`).
//!
//! [`context_token`]: selector (which size limit), then the header text.
//! A decoded clock re-encodes to a token that decodes to the same clock.
//! [`http_path`]: the request target as text. A parsed key is within the
//! limit and survives the storage-key encoding.
//! [`http_headers`]: a header value's bytes, as `Authorization` (client
//! tokens) and as `Accept`. A token taken from a header is within the
//! limits, and a request passes exactly when it names the configured token.

use crate::select;
use ringkv_core::auth::ClusterKey;
use ringkv_core::client_auth::{bearer_token, ClientTokens, MAX_TOKEN_BYTES};
use ringkv_core::context::{decode_context, encode_context};
use ringkv_core::key::ObjectKey;
use ringkv_node::http::client_auth::authorize;
use ringkv_node::http::kv::wants_json;
use ringkv_node::http::path::{
    parse_get_query, parse_key, parse_put_query, parse_query, parse_quorum,
};
use ringkv_node::http_header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};

/// Context token limits tried: the default, the smallest allowed, none.
const CONTEXT_LIMITS: [usize; 3] = [8 * 1024, 64, usize::MAX];

/// Returns whether the token decoded.
pub fn context_token(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    let limit = CONTEXT_LIMITS[usize::from(selector) % CONTEXT_LIMITS.len()];
    let text = String::from_utf8_lossy(body);
    let position = crate::seeds::KEY_POSITION;
    // The open key: its MAC is public, so the fuzzer can reach the clock.
    let key = ClusterKey::open();
    let Ok(clock) = decode_context(&text, limit, position, &key) else {
        return false;
    };
    assert!(text.trim().len() <= limit, "a token over the limit decoded");
    let token = encode_context(&clock, position, &key);
    assert_eq!(
        decode_context(&token, usize::MAX, position, &key),
        Ok(clock),
        "decode(encode(clock)) != clock"
    );
    true
}

/// Key size limits tried: the default and a tiny one.
const KEY_LIMITS: [usize; 2] = [1024, 4];

/// Returns whether the key parsed within the default limit.
pub fn http_path(data: &[u8]) -> bool {
    let target = String::from_utf8_lossy(data);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&*target, None),
    };
    let mut parsed = false;
    for limit in KEY_LIMITS {
        let Ok(key) = parse_key(path, limit) else {
            continue;
        };
        parsed |= limit == KEY_LIMITS[0];
        assert!(key.key.len() <= limit, "a key over the limit parsed");
        assert_eq!(
            ObjectKey::from_storage_key(&key.storage_key()).as_ref(),
            Ok(&key),
            "a parsed key does not survive its storage encoding"
        );
    }
    let _ = parse_query(query);
    let _ = parse_get_query(query);
    let _ = parse_put_query(query);
    let _ = parse_quorum(query);
    parsed
}

/// Returns whether the bytes, as an `Authorization` header, let a request
/// in under the one configured token ([`crate::seeds::CLIENT_TOKEN`]).
pub fn http_headers(data: &[u8]) -> bool {
    let token = bearer_token(data);
    if let Ok(token) = token {
        assert!(
            !token.is_empty() && token.len() <= MAX_TOKEN_BYTES,
            "a token outside the limits was taken from a header"
        );
        assert!(
            token.iter().all(u8::is_ascii_graphic),
            "a token with spaces or controls"
        );
    }
    // What hyper would not accept as a header value never reaches the node.
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    headers.insert(ACCEPT, value);
    let _ = wants_json(&headers);
    let tokens = ClientTokens::parse(crate::seeds::CLIENT_TOKEN.as_bytes())
        .expect("the seed token is valid");
    assert_eq!(authorize(None, &headers), Ok(()), "no tokens, no refusal");
    let passed = authorize(Some(&tokens), &headers).is_ok();
    assert_eq!(
        passed,
        token == Ok(crate::seeds::CLIENT_TOKEN.as_bytes()),
        "let in without the configured token, or refused with it"
    );
    passed
}
