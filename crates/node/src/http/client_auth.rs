//! Client tokens at the HTTP edge (N4): when the node has tokens
//! (`http_tokens_file`), a request without `Authorization: Bearer <token>`
//! naming one of them is answered `401` before any handler runs.
//!
//! Every route but `GET /v1/health` is guarded (the router applies
//! [`require_token`] to them): data, membership and `/metrics` (which names
//! members and load) alike; health stays open for load balancers and
//! orchestrators, and says only that the node is up and its id. Unknown
//! paths answer 404 either way. A refusal carries `WWW-Authenticate:
//! Bearer` (with RFC 6750's `error` for a bad or wrong token), the house
//! JSON error body with code `unauthorized`, and counts in
//! `ringkv_http_auth_refused_total{reason}`. A token is never logged and
//! never echoed: the decision itself is [`ringkv_core::client_auth::check`],
//! which keeps only digests.

use super::error::ApiError;
use crate::node::NodeState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ringkv_core::client_auth::{check, ClientTokens, Refusal};
use std::sync::Arc;

/// Whether a request with `headers` may pass: always without tokens.
pub fn authorize(tokens: Option<&ClientTokens>, headers: &HeaderMap) -> Result<(), Refusal> {
    match tokens {
        None => Ok(()),
        Some(tokens) => check(
            tokens,
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        ),
    }
}

/// The `401` answer to a refused request.
pub fn refused(refusal: Refusal) -> Response {
    let challenge = match refusal {
        Refusal::Missing => r#"Bearer realm="ringkv""#,
        Refusal::Malformed(_) => r#"Bearer realm="ringkv", error="invalid_request""#,
        Refusal::Wrong => r#"Bearer realm="ringkv", error="invalid_token""#,
    };
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        refusal.to_string(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Middleware: lets the request through or answers `401` (and counts it).
pub async fn require_token(
    State(state): State<Arc<NodeState>>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(state.config.http_tokens.as_ref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            state.metrics.http_auth_refused(refusal.reason());
            refused(refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-client-token-0123456789";

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(value) = authorization {
            map.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn without_tokens_everything_passes_with_tokens_only_a_right_one() {
        let tokens = ClientTokens::parse(TOKEN.as_bytes()).unwrap();
        let right = format!("Bearer {TOKEN}");
        assert_eq!(authorize(None, &headers(None)), Ok(()));
        assert_eq!(authorize(None, &headers(Some("Bearer nonsense"))), Ok(()));
        assert_eq!(authorize(Some(&tokens), &headers(Some(&right))), Ok(()));
        assert_eq!(
            authorize(Some(&tokens), &headers(None)),
            Err(Refusal::Missing)
        );
        assert_eq!(
            authorize(
                Some(&tokens),
                &headers(Some("Bearer wrong-token-0123456789"))
            ),
            Err(Refusal::Wrong)
        );
    }

    #[test]
    fn a_refusal_is_401_with_a_bearer_challenge() {
        for (refusal, error) in [
            (Refusal::Missing, None),
            (Refusal::Wrong, Some("invalid_token")),
        ] {
            let response = refused(refusal);
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let challenge = response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap();
            assert!(challenge.starts_with("Bearer "), "{challenge}");
            assert_eq!(
                error.is_some_and(|e| challenge.contains(e)),
                error.is_some(),
                "{challenge}"
            );
        }
    }
}
