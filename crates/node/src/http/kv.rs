//! `GET`, `PUT` and `DELETE /v1/kv/{bucket}/{key}`: the key-value API.
//!
//! - GET: one live version → 200 with the raw value; siblings → 300
//!   `multipart/mixed`, one part per value; `Accept: application/json` →
//!   `{"context": "...", "values": ["<base64>", ...], "written_ms": [...],
//!   "expires_ms": [...]}` (each value's write time and expiry, same order);
//!   absent → 404, with the context header when a tombstone is stored.
//!   Always `X-Ringkv-Context`. A value past its TTL reads as deleted.
//!   `?local=true` answers from this node's own copy, without coordination.
//! - PUT: raw body, optional `X-Ringkv-Context` (none = blind write) → 204
//!   with the new context. `?ttl=SECONDS`: the value expires after that.
//! - DELETE: with the context → 204. Without one, like Riak, the node first
//!   reads the key and deletes what that read saw; if the read finds no live
//!   value (no such key, or only a tombstone) it answers 404 and writes
//!   nothing, so deleting a key that never existed leaves no tombstone.
//! - A failed put or delete quorum says whether the write may have been
//!   applied ([`ApiError::from_write`]).
//!
//! Each request holds a permit of the node's in-flight limit, or gets 503.

use super::error::ApiError;
use super::path::{parse_get_query, parse_key, parse_put_query, parse_quorum};
use super::CONTEXT_HEADER;
use crate::node::NodeState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ringkv_core::auth::ClusterKey;
use ringkv_core::context::{decode_context, encode_context};
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{ClientRequest, ClientResponse, OpError, ReplicaError};
use ringkv_core::replication::RequestQuorum;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

type Shared = State<Arc<NodeState>>;

/// What a context token is issued for and signed with: the key's ring
/// position and the cluster's key.
#[derive(Clone, Copy)]
struct Token<'a> {
    position: u64,
    key: &'a ClusterKey,
}

pub async fn get(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    timed(&state, "get", async {
        let key = parse_key(uri.path(), state.config.limits.max_key_bytes)?;
        let query = parse_get_query(uri.query())?;
        let _permit = admit(&state)?;
        let token = Token {
            position: key.position(),
            key: &state.cluster_key,
        };
        let object = if query.local {
            // This node's own copy, no coordination: for operators and tests
            // inspecting each replica.
            state
                .coordinator
                .replica
                .read(&key)
                .await
                .map_err(|e| match e {
                    ReplicaError::Refilling => {
                        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "refilling", e.to_string())
                    }
                    e => ApiError::from(OpError::Internal(format!("local read failed: {e}"))),
                })?
        } else {
            read(&state, key, query.quorum).await?
        };
        // A value past its TTL reads as deleted (D5).
        let object = object.map(|o| o.as_seen_at((state.coordinator.wall_clock)()));
        Ok(render(object, wants_json(&headers), token))
    })
    .await
}

/// Whether the client asked for the JSON form (`Accept` naming
/// `application/json`); any other or unreadable `Accept` gets raw bytes.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

pub async fn put(
    State(state): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    timed(&state, "put", async {
        let limits = state.config.limits;
        let key = parse_key(uri.path(), limits.max_key_bytes)?;
        let (quorum, ttl_secs) = parse_put_query(uri.query())?;
        let body = body.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => value_too_large(limits.max_value_bytes),
            status => ApiError::new(status, "bad_body", e.body_text()),
        })?;
        if body.len() > limits.max_value_bytes {
            return Err(value_too_large(limits.max_value_bytes));
        }
        let token = Token {
            position: key.position(),
            key: &state.cluster_key,
        };
        let context = context_of(&headers, limits.max_context_bytes, token)?.unwrap_or_default();
        let _permit = admit(&state)?;
        let clock = write(&state, key, context, (Some(body), ttl_secs), quorum)
            .await
            .map_err(|e| ApiError::from_write(e, "put"))?;
        Ok(with_context(StatusCode::NO_CONTENT, &clock, token))
    })
    .await
}

pub async fn delete(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    timed(&state, "delete", async {
        let limits = state.config.limits;
        let key = parse_key(uri.path(), limits.max_key_bytes)?;
        let quorum = parse_quorum(uri.query())?;
        let token = Token {
            position: key.position(),
            key: &state.cluster_key,
        };
        let given = context_of(&headers, limits.max_context_bytes, token)?;
        let _permit = admit(&state)?;
        let context = match given {
            Some(context) => context,
            None => match read(&state, key.clone(), quorum)
                .await?
                .map(|o| o.as_seen_at((state.coordinator.wall_clock)()))
            {
                Some(found) if found.values().next().is_some() => found.clock().clone(),
                found => return Ok(nothing_to_delete(found, token)),
            },
        };
        let clock = write(&state, key, context, (None, None), quorum)
            .await
            .map_err(|e| ApiError::from_write(e, "delete"))?;
        Ok(with_context(StatusCode::NO_CONTENT, &clock, token))
    })
    .await
}

/// The answer to a delete without a context that found no live value: 404,
/// nothing written; a tombstone's context is sent as a GET would.
fn nothing_to_delete(found: Option<Siblings>, token: Token) -> Response {
    let message = match found {
        None => "no such key; nothing was deleted",
        Some(_) => "key was already deleted; nothing was written",
    };
    let mut response = ApiError::new(StatusCode::NOT_FOUND, "not_found", message).into_response();
    if let Some(tombstone) = found {
        let context = context_value(tombstone.clock(), token);
        response.headers_mut().insert(CONTEXT_HEADER, context);
    }
    response
}

/// Runs a handler body, recording its status and latency.
async fn timed(
    state: &NodeState,
    op: &'static str,
    body: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let started = tokio::time::Instant::now();
    let response = match body.await {
        Ok(response) => response,
        Err(e) => {
            if e.code == "quorum_not_met" {
                state.metrics.quorum_failed(op);
            }
            e.into_response()
        }
    };
    state
        .metrics
        .observe_request(op, response.status().as_u16(), started.elapsed());
    response
}

fn admit(state: &NodeState) -> Result<OwnedSemaphorePermit, ApiError> {
    state.in_flight.clone().try_acquire_owned().map_err(|_| {
        OpError::Overloaded {
            limit: state.config.limits.max_in_flight_requests,
        }
        .into()
    })
}

fn value_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "value_too_large",
        format!("value is larger than the limit of {limit} bytes"),
    )
}

fn context_of(
    headers: &HeaderMap,
    max_len: usize,
    token: Token,
) -> Result<Option<VersionVector>, ApiError> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_context",
                    "context header is not text",
                )
            })?;
            Ok(Some(decode_context(
                text,
                max_len,
                token.position,
                token.key,
            )?))
        }
    }
}

async fn read(
    state: &NodeState,
    key: ObjectKey,
    quorum: RequestQuorum,
) -> Result<Option<Siblings>, ApiError> {
    match state
        .coordinator
        .execute(ClientRequest::Get { key, quorum }, false)
        .await
    {
        ClientResponse::Get(result) => Ok(result?),
        other => Err(OpError::Internal(format!("get answered {other:?}")).into()),
    }
}

async fn write(
    state: &NodeState,
    key: ObjectKey,
    context: VersionVector,
    (value, ttl_secs): (Option<Bytes>, Option<u64>),
    quorum: RequestQuorum,
) -> Result<VersionVector, OpError> {
    match state
        .coordinator
        .execute(
            ClientRequest::Put {
                key,
                context,
                value,
                quorum,
                ttl_secs,
            },
            false,
        )
        .await
    {
        ClientResponse::Put(result) => result,
        other => Err(OpError::Internal(format!("put answered {other:?}"))),
    }
}

fn context_value(clock: &VersionVector, token: Token) -> HeaderValue {
    // base64url text is always a valid header value.
    HeaderValue::from_str(&encode_context(clock, token.position, token.key))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with_context(status: StatusCode, clock: &VersionVector, token: Token) -> Response {
    (status, [(CONTEXT_HEADER, context_value(clock, token))]).into_response()
}

/// Turns a merged object into the GET response.
fn render(object: Option<Siblings>, wants_json: bool, token: Token) -> Response {
    let Some(object) = object else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such key").into_response();
    };
    let context = context_value(object.clock(), token);
    let values: Vec<&Bytes> = object.values().collect();
    if values.is_empty() {
        let mut response =
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "key was deleted").into_response();
        response.headers_mut().insert(CONTEXT_HEADER, context);
        return response;
    }
    if wants_json {
        let body = serde_json::json!({
            "context": encode_context(object.clock(), token.position, token.key),
            "values": values.iter().map(|v| STANDARD.encode(v)).collect::<Vec<_>>(),
            // When each value was written (ms since the Unix epoch, the
            // coordinator's clock), in the same order as `values`.
            "written_ms": object
                .versions()
                .iter()
                .filter(|v| v.value.is_some())
                .map(|v| v.timestamp_ms)
                .collect::<Vec<_>>(),
            // When each value expires (ms since the Unix epoch; null: never).
            "expires_ms": object
                .versions()
                .iter()
                .filter(|v| v.value.is_some())
                .map(|v| v.expires_ms)
                .collect::<Vec<_>>(),
        });
        let mut response = axum::Json(body).into_response();
        response.headers_mut().insert(CONTEXT_HEADER, context);
        return response;
    }
    if let [only] = values.as_slice() {
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::HeaderName::from_static(CONTEXT_HEADER), context),
        ];
        return (StatusCode::OK, headers, (*only).clone()).into_response();
    }
    let Some((boundary, body)) = multipart(&values) else {
        let message = "could not find a multipart boundary; ask with Accept: application/json";
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            .into_response();
    };
    let content_type = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}"))
        .unwrap_or_else(|_| HeaderValue::from_static("multipart/mixed"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::HeaderName::from_static(CONTEXT_HEADER), context),
    ];
    (StatusCode::MULTIPLE_CHOICES, headers, body).into_response()
}

/// Most boundaries tried before giving up (each try scans the values once).
const MAX_BOUNDARY_TRIES: u64 = 8;

/// Encodes siblings as a multipart/mixed body with a boundary no value
/// contains. The boundary is a hash of the values, so crafted values cannot
/// force a long search (a value would have to contain the hash of itself);
/// `None` only if [`MAX_BOUNDARY_TRIES`] hashes all collide.
fn multipart(values: &[&Bytes]) -> Option<(String, Vec<u8>)> {
    use std::hash::{Hash, Hasher};
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let boundary = (0..MAX_BOUNDARY_TRIES).find_map(|salt| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        values.hash(&mut h);
        let candidate = format!("ringkv-{:016x}", h.finish());
        (!values.iter().any(|v| contains(v, candidate.as_bytes()))).then_some(candidate)
    })?;
    let mut body = Vec::new();
    for v in values {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(v);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Some((boundary, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_boundary_avoids_value_bytes() {
        let a = Bytes::from_static(b"first");
        let b = Bytes::from_static(b"\x00\xff");
        let (boundary, body) = multipart(&[&a, &b]).unwrap();
        assert!(boundary.starts_with("ringkv-"));
        // A value that contains the first choice forces another one.
        let sneaky = Bytes::from(format!("x{boundary}x"));
        let (other, _) = multipart(&[&a, &sneaky]).unwrap();
        assert!(!sneaky.windows(other.len()).any(|w| w == other.as_bytes()));
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
