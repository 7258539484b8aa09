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

/// What a request's query string asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query {
    /// `r=`, `w=`, `pw=`.
    pub quorum: RequestQuorum,
    /// `local=true`: answer from this node's own storage (GET only).
    pub local: bool,
    /// `ttl=SECONDS`: the value expires after that long (PUT only).
    pub ttl_secs: Option<u64>,
}

/// Parses `r=`, `w=`, `pw=` and `local=` from a query string; anything else
/// is refused.
pub fn parse_query(query: Option<&str>) -> Result<Query, ApiError> {
    let mut out = Query::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "r" => &mut out.quorum.r,
            "w" => &mut out.quorum.w,
            "pw" => &mut out.quorum.pw,
            "ttl" => {
                let ttl = value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("ttl={value:?} is not a number of seconds"))
                })?;
                out.ttl_secs = Some(ttl);
                continue;
            }
            "local" => {
                out.local = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "local={value:?}: expected true or false"
                        )))
                    }
                };
                continue;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; expected r, w, pw, local or ttl"
                )))
            }
        };
        let n = value.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("{name}={value:?} is not a non-negative integer"))
        })?;
        *slot = Some(n);
    }
    Ok(out)
}

/// Parses the query of a GET: `ttl` does not apply.
pub fn parse_get_query(query: Option<&str>) -> Result<Query, ApiError> {
    let parsed = parse_query(query)?;
    if parsed.ttl_secs.is_some() {
        return Err(ApiError::bad_request("ttl applies to PUT only"));
    }
    Ok(parsed)
}

/// Parses the query of a PUT: its quorums and TTL (`local` does not apply).
pub fn parse_put_query(query: Option<&str>) -> Result<(RequestQuorum, Option<u64>), ApiError> {
    let parsed = parse_query(query)?;
    if parsed.local {
        return Err(ApiError::bad_request(
            "local=true applies to GET only: writes always go to the key's replicas",
        ));
    }
    Ok((parsed.quorum, parsed.ttl_secs))
}

/// Parses the query of a DELETE: its quorums (neither `local` nor `ttl`
/// apply).
pub fn parse_quorum(query: Option<&str>) -> Result<RequestQuorum, ApiError> {
    let (quorum, ttl) = parse_put_query(query)?;
    if ttl.is_some() {
        return Err(ApiError::bad_request("ttl applies to PUT only"));
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
            parse_quorum(Some("r=1&w=3&pw=2")).unwrap(),
            RequestQuorum {
                r: Some(1),
                w: Some(3),
                pw: Some(2),
            }
        );
        for bad in ["r=x", "w=-1", "n=3", "r", "local=true", "pw=two", "ttl=5"] {
            assert!(parse_quorum(Some(bad)).is_err(), "{bad}");
        }
        let get = parse_query(Some("local=true&r=1")).unwrap();
        assert!(get.local);
        assert_eq!(get.quorum.r, Some(1));
        assert!(!parse_query(Some("local=false")).unwrap().local);
        assert!(parse_query(Some("local=yes")).is_err());
        assert_eq!(
            parse_put_query(Some("ttl=30&w=1")).unwrap(),
            (
                RequestQuorum {
                    w: Some(1),
                    ..RequestQuorum::default()
                },
                Some(30)
            )
        );
        assert!(parse_put_query(Some("ttl=-1")).is_err());
        assert!(parse_put_query(Some("local=true")).is_err());
        assert!(parse_get_query(Some("ttl=5")).is_err());
    }
}
