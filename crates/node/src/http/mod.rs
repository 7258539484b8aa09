//! The client HTTP API (A1–A3): the contract clients and later checks rely on.
//!
//! - `PUT|GET|DELETE /v1/kv/{bucket}/{key}` — [`kv`]; keys are any bytes,
//!   percent-encoded in the path ([`path`]).
//! - `GET /v1/health`, `GET /metrics` — [`admin`].
//! - `GET /v1/cluster`, `GET /v1/cluster/ring`,
//!   `POST /v1/admin/{join,decommission,remove}/{node}` — [`membership`].
//!
//! With client tokens configured, every route but `/v1/health` needs
//! `Authorization: Bearer <token>` ([`client_auth`]); with a certificate and
//! key it is served over TLS ([`tls`]).
//!
//! This is the only layer that knows HTTP status codes: [`error`] maps the
//! core's typed errors onto them, always as
//! `{"error": {"code": "...", "message": "..."}}`.

pub mod admin;
pub mod client_auth;
pub mod error;
pub mod kv;
pub mod membership;
pub mod path;
pub mod tls;

use crate::node::NodeState;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The header carrying the opaque causal context.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";

/// Builds the router for a node.
pub fn router(state: Arc<NodeState>) -> Router {
    // One byte over the limit still reaches the handler, which then answers 413 in JSON.
    let body_limit = state.config.limits.max_value_bytes + 1;
    let mut guarded = Router::new()
        .route(
            "/v1/kv/{*rest}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/cluster", get(membership::cluster))
        .route("/v1/cluster/ring", get(membership::ring))
        .route("/v1/admin/{op}/{node}", post(membership::change))
        .route("/metrics", get(admin::metrics));
    // Tokens are read once at start, so without them the check is left out
    // altogether rather than run (and its future boxed) per request.
    if state.config.http_tokens.is_some() {
        guarded = guarded.route_layer(middleware::from_fn_with_state(
            state.clone(),
            client_auth::require_token,
        ));
    }
    Router::new()
        .route("/v1/health", get(admin::health))
        .merge(guarded)
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves HTTP (over TLS when `tls` is given) until `shutdown` is
/// cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<NodeState>,
    shutdown: CancellationToken,
) {
    let app = router(state);
    let stopped = shutdown.cancelled_owned();
    let served = match tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(config) => match tls::TlsListener::new(listener, config) {
            Ok(listener) => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "http server failed");
    }
}
