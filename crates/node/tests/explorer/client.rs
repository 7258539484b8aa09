//! The explorer's client calls: like the simulation harness's, but a call
//! that fails in transport (a crashed or cut-off node) is an error to
//! record, never a panic: a write that failed that way is *unknown*.

use crate::sim_cluster::{client_of, key};
use bytes::Bytes;
use ringkv_core::protocol::{ClientRequest, ClientResponse, Request, Response};
use ringkv_core::replication::RequestQuorum;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use std::time::Duration;

/// How long one client call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn call(node: &str, request: Request) -> Result<Response, String> {
    client_of(node)
        .call(request, CALL_TIMEOUT)
        .await
        .map_err(|e| format!("transport: {e}"))
}

async fn coordinate(node: &str, request: ClientRequest) -> Result<ClientResponse, String> {
    let request = Request::Coordinate {
        request,
        forwarded: false,
    };
    match call(node, request).await? {
        Response::Coordinate(response) => Ok(response),
        other => Err(format!("coordinate answered {other:?}")),
    }
}

pub fn quorum(r: Option<usize>) -> RequestQuorum {
    RequestQuorum {
        r,
        w: None,
        pw: None,
    }
}

/// A read with R = `r` (None: the cluster's).
pub async fn get(node: &str, k: &str, r: Option<usize>) -> Result<Option<Siblings>, String> {
    let request = ClientRequest::Get {
        key: key(k),
        quorum: quorum(r),
    };
    match coordinate(node, request).await? {
        ClientResponse::Get(result) => result.map_err(|e| e.to_string()),
        other => Err(format!("get answered {other:?}")),
    }
}

/// A put (`value` None: a delete) with `context`; the new context.
pub async fn put(
    node: &str,
    k: &str,
    context: VersionVector,
    value: Option<&str>,
) -> Result<VersionVector, String> {
    let request = ClientRequest::Put {
        key: key(k),
        context,
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        quorum: quorum(None),
        ttl_secs: None,
    };
    match coordinate(node, request).await? {
        ClientResponse::Put(result) => result.map_err(|e| e.to_string()),
        other => Err(format!("put answered {other:?}")),
    }
}
