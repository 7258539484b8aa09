//! Parsing `/v1/kv/{bucket}/{key}?r=&w=` from the raw request target.
//!
//! The key is everything after the bucket's slash, percent-decoded to bytes,
//! so `%2F` is a slash inside the key and `%FF` a raw byte. Parsing works on
//! the undecoded path and never panics.

use super::error::ApiError;
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use ringkv_core::key::ObjectKey;
use ringkv_core::replication::RequestQuorum;

const PREFIX: &str = "/v1/kv/";

/// Splits and decodes the bucket and key of a `/v1/kv/...` path.
pub fn parse_key(path: &str, max_key_bytes: usize) -> Result<ObjectKey, ApiError> {
    let rest = path
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApiError::bad_request("expected /v1/kv/{bucket}/{key}"))?;
    let (bucket, key) = rest.split_once('/').ok_or_else(|| {
        ApiError::bad_request("expected /v1/kv/{bucket}/{key}: the key is missing")
    })?;
    let bucket = percent_decode_str(bucket)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("bucket name is not UTF-8"))?;
    let key: Vec<u8> = percent_decode_str(key).collect();
    Ok(ObjectKey::new(&bucket, Bytes::from(key), max_key_bytes)?)
}

/// Parses `r=` and `w=` from a query string; anything else is refused.
pub fn parse_quorum(query: Option<&str>) -> Result<RequestQuorum, ApiError> {
    let mut quorum = RequestQuorum::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "r" => &mut quorum.r,
            "w" => &mut quorum.w,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; expected r or w"
                )))
            }
        };
        let n = value.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("{name}={value:?} is not a non-negative integer"))
        })?;
        *slot = Some(n);
    }
    Ok(quorum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_decoded_bytes() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a [u8])>);
        let cases: &[Case] = &[
            ("/v1/kv/carts/alice", Some(("carts", b"alice"))),
            ("/v1/kv/carts/a%2Fb/c", Some(("carts", b"a/b/c"))),
            ("/v1/kv/b/%00%FF", Some(("b", b"\x00\xff"))),
            ("/v1/kv/b/", None),
            ("/v1/kv/b", None),
            ("/v1/kv/bad%20bucket/k", None),
            ("/v2/kv/b/k", None),
        ];
        for (path, want) in cases {
            let got = parse_key(path, 1024)
                .ok()
                .map(|k| (k.bucket.clone(), k.key.to_vec()));
            assert_eq!(
                got,
                want.map(|(b, k)| (b.to_string(), k.to_vec())),
                "{path}"
            );
        }
        assert_eq!(
            parse_key("/v1/kv/b/12345", 4).unwrap_err().code,
            "key_too_large"
        );
    }

    #[test]
    fn quorum_parameters() {
        assert_eq!(parse_quorum(None).unwrap(), RequestQuorum::default());
        assert_eq!(
            parse_quorum(Some("r=1&w=3")).unwrap(),
            RequestQuorum {
                r: Some(1),
                w: Some(3)
            }
        );
        for bad in ["r=x", "w=-1", "n=3", "r"] {
            assert!(parse_quorum(Some(bad)).is_err(), "{bad}");
        }
    }
}
