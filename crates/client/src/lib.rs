//! # ringkv-client: talk to a ringkv cluster over HTTP
//!
//! A [`Client`] points at one node (any node coordinates any request) and
//! speaks the `/v1/kv` API: [`Client::get`] returns every sibling value with
//! the causal context, [`Client::put`] and [`Client::delete`] take the context
//! back and return the new one. The context is an opaque string: keep it from
//! a read and pass it to the write that follows, so the write supersedes what
//! you read. Connections are pooled and kept alive.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The context header name.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";

/// Bytes left unescaped in a key: RFC 3986 unreserved characters.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Pass this to the next put or delete of the key.
    pub context: Option<String>,
    /// Every live sibling (more than one after concurrent writes; none when
    /// the key was deleted and a tombstone remains).
    pub values: Vec<Bytes>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    BadResponse(String),
    #[error("bad node URL {0:?}: expected http://host:port")]
    BadUrl(String),
}

/// An HTTP client bound to one node.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:8001`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") || base.parse::<hyper::Uri>().is_err() {
            return Err(ClientError::BadUrl(base_url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        Ok(Client { base, http })
    }

    fn url(&self, bucket: &str, key: &[u8], quorum: Option<(&str, usize)>) -> String {
        let key: String = percent_encoding::percent_encode(key, KEY_ESCAPE).collect();
        let bucket: String = utf8_percent_encode(bucket, KEY_ESCAPE).collect();
        match quorum {
            Some((name, n)) => format!("{}/v1/kv/{bucket}/{key}?{name}={n}", self.base),
            None => format!("{}/v1/kv/{bucket}/{key}", self.base),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        context: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Option<String>, Bytes), ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header(ACCEPT, "application/json");
        if let Some(context) = context {
            let value = HeaderValue::from_str(context)
                .map_err(|_| ClientError::BadResponse("context is not header text".into()))?;
            request = request.header(CONTEXT_HEADER, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status();
        let context = response
            .headers()
            .get(CONTEXT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, context, body))
    }

    /// Reads a key. `Ok(None)` when no replica has ever seen it.
    pub async fn get(
        &self,
        bucket: &str,
        key: &[u8],
        r: Option<usize>,
    ) -> Result<Option<Fetched>, ClientError> {
        let url = self.url(bucket, key, r.map(|r| ("r", r)));
        let (status, context, body) = self.send(Method::GET, url, None, Bytes::new()).await?;
        match status {
            StatusCode::OK => {
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| ClientError::BadResponse(e.to_string()))?;
                let values = json["values"]
                    .as_array()
                    .ok_or_else(|| ClientError::BadResponse("no values array".into()))?
                    .iter()
                    .map(|v| {
                        let text = v.as_str().ok_or_else(|| {
                            ClientError::BadResponse("value is not a string".into())
                        })?;
                        STANDARD
                            .decode(text)
                            .map(Bytes::from)
                            .map_err(|e| ClientError::BadResponse(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let context = json["context"].as_str().map(str::to_string).or(context);
                Ok(Some(Fetched { context, values }))
            }
            StatusCode::NOT_FOUND if context.is_some() => Ok(Some(Fetched {
                context,
                values: Vec::new(),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(error_of(status, &body)),
        }
    }

    /// Writes a value; `context` from an earlier read supersedes what it saw
    /// (None = blind write). Returns the new context.
    pub async fn put(
        &self,
        bucket: &str,
        key: &[u8],
        value: Bytes,
        context: Option<&str>,
        w: Option<usize>,
    ) -> Result<String, ClientError> {
        let url = self.url(bucket, key, w.map(|w| ("w", w)));
        let (status, new_context, body) = self.send(Method::PUT, url, context, value).await?;
        expect_no_content(status, new_context, &body)
    }

    /// Deletes what `context` saw (None: the node reads the key first and
    /// deletes what that read saw). Returns the tombstone's context.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &[u8],
        context: Option<&str>,
        w: Option<usize>,
    ) -> Result<String, ClientError> {
        let url = self.url(bucket, key, w.map(|w| ("w", w)));
        let (status, new_context, body) = self
            .send(Method::DELETE, url, context, Bytes::new())
            .await?;
        expect_no_content(status, new_context, &body)
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        let (status, _, body) = self
            .send(
                Method::GET,
                format!("{}/v1/health", self.base),
                None,
                Bytes::new(),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(error_of(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }
}

fn expect_no_content(
    status: StatusCode,
    context: Option<String>,
    body: &[u8],
) -> Result<String, ClientError> {
    if status != StatusCode::NO_CONTENT {
        return Err(error_of(status, body));
    }
    context.ok_or_else(|| ClientError::BadResponse("no context header in the answer".into()))
}

fn error_of(status: StatusCode, body: &[u8]) -> ClientError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    ClientError::Status {
        status: status.as_u16(),
        code: json["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        message: json["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_byte_for_byte() {
        let c = Client::new("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            c.url("b", b"a/b c\xff~", Some(("w", 2))),
            "http://127.0.0.1:1/v1/kv/b/a%2Fb%20c%FF~?w=2"
        );
        assert!(Client::new("ftp://x").is_err());
    }
}
