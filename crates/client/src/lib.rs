//! # ringkv-client: talk to a ringkv cluster over HTTP
//!
//! A [`Client`] points at one node (any node coordinates any request) and
//! speaks the `/v1/kv` API: [`Client::get`] returns every sibling value with
//! the causal context, [`Client::put`] and [`Client::delete`] take the context
//! back and return the new one. The context is an opaque string: keep it from
//! a read and pass it to the write that follows, so the write supersedes what
//! you read. Connections are pooled and kept alive.

mod error;
mod lenient_io;

pub use error::{ClientError, TransportError, TransportKind};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use error::{classify, classify_exchange, error_of};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lenient_io::LenientConnector;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::Duration;

/// The context header name.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";

/// How long a TCP connect may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole exchange (send, answer, body) may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Each sibling's write time (ms since the Unix epoch, the coordinator's
    /// clock), in the order of `values`; `None` where the node did not say.
    pub written_ms: Vec<Option<u64>>,
}

impl Fetched {
    /// Reads the node's JSON form of a key (`{"context", "values":
    /// [base64...], "written_ms": [...]}`; `written_ms` is optional).
    pub fn from_json(json: &serde_json::Value) -> Result<Fetched, ClientError> {
        let values = json["values"]
            .as_array()
            .ok_or_else(|| ClientError::BadResponse("no values array".into()))?
            .iter()
            .map(|v| {
                let text = v
                    .as_str()
                    .ok_or_else(|| ClientError::BadResponse("value is not a string".into()))?;
                STANDARD
                    .decode(text)
                    .map(Bytes::from)
                    .map_err(|e| ClientError::BadResponse(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let written_ms = (0..values.len())
            .map(|i| json["written_ms"][i].as_u64())
            .collect();
        Ok(Fetched {
            context: json["context"].as_str().map(str::to_string),
            values,
            written_ms,
        })
    }
}

/// An HTTP client bound to one node.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: hyper_util::client::legacy::Client<LenientConnector, Full<Bytes>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// `Bearer <token>`, marked sensitive so it is never printed.
    authorization: Option<HeaderValue>,
}

impl Client {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:8001`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_timeouts(base_url, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)
    }

    /// A client with its own connect and whole-request timeouts.
    pub fn with_timeouts(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") || base.parse::<hyper::Uri>().is_err() {
            return Err(ClientError::BadUrl(base_url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(LenientConnector(connector));
        Ok(Client {
            base,
            http,
            connect_timeout,
            request_timeout,
            authorization: None,
        })
    }

    /// This client sending `Authorization: Bearer <token>` with every
    /// request, for a node started with client tokens (`None`: no header).
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self, ClientError> {
        self.authorization = match token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| ClientError::BadToken)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(self)
    }

    /// The node's base URL.
    pub fn node(&self) -> &str {
        &self.base
    }

    /// The key's URL with the quorum parameters that are set.
    fn url(&self, bucket: &str, key: &[u8], quorum: &[(&str, Option<usize>)]) -> String {
        let key: String = percent_encoding::percent_encode(key, KEY_ESCAPE).collect();
        let bucket: String = utf8_percent_encode(bucket, KEY_ESCAPE).collect();
        let query: Vec<String> = quorum
            .iter()
            .filter_map(|(name, n)| n.map(|n| format!("{name}={n}")))
            .collect();
        match query.is_empty() {
            true => format!("{}/v1/kv/{bucket}/{key}", self.base),
            false => format!("{}/v1/kv/{bucket}/{key}?{}", self.base, query.join("&")),
        }
    }

    fn transport(&self, kind: TransportKind) -> ClientError {
        let kind = match kind {
            TransportKind::ConnectTimedOut(_) => {
                TransportKind::ConnectTimedOut(self.connect_timeout.as_millis() as u64)
            }
            other => other,
        };
        ClientError::Transport(TransportError {
            node: self.base.clone(),
            kind,
        })
    }

    /// One exchange, bounded by the request timeout. A server that answers
    /// while the body is still being sent (e.g. 413) is heard: see
    /// [`lenient_io`].
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
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(context) = context {
            let value = HeaderValue::from_str(context)
                .map_err(|_| ClientError::BadResponse("context is not header text".into()))?;
            request = request.header(CONTEXT_HEADER, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.transport(classify(&e)))?;
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
                .map_err(|e| self.transport(classify_exchange(&e)))?
                .to_bytes();
            Ok((status, context, body))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.transport(TransportKind::TimedOut(
                self.request_timeout.as_millis() as u64,
            ))),
        }
    }

    /// Reads a key. `Ok(None)` when no replica has ever seen it.
    pub async fn get(
        &self,
        bucket: &str,
        key: &[u8],
        r: Option<usize>,
    ) -> Result<Option<Fetched>, ClientError> {
        match self.get_json(bucket, key, r).await? {
            Some(json) => Fetched::from_json(&json).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a key in the node's JSON form. A deleted key (tombstone) is
    /// `{"context": "...", "values": []}`; `Ok(None)` when no replica has
    /// ever seen it.
    pub async fn get_json(
        &self,
        bucket: &str,
        key: &[u8],
        r: Option<usize>,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let url = self.url(bucket, key, &[("r", r)]);
        let (status, context, body) = self.send(Method::GET, url, None, Bytes::new()).await?;
        match status {
            StatusCode::OK => {
                let mut json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| ClientError::BadResponse(e.to_string()))?;
                if json["context"].is_null() {
                    if let (Some(object), Some(context)) = (json.as_object_mut(), context) {
                        object.insert("context".into(), context.into());
                    }
                }
                Ok(Some(json))
            }
            StatusCode::NOT_FOUND if context.is_some() => Ok(Some(
                serde_json::json!({ "context": context, "values": [] }),
            )),
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
        let url = self.url(bucket, key, &[("w", w)]);
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
        self.delete_with(bucket, key, context, None, w).await
    }

    /// [`Client::delete`] with the read quorum `r` of the node's first read
    /// (used only without a context).
    pub async fn delete_with(
        &self,
        bucket: &str,
        key: &[u8],
        context: Option<&str>,
        r: Option<usize>,
        w: Option<usize>,
    ) -> Result<String, ClientError> {
        let url = self.url(bucket, key, &[("r", r), ("w", w)]);
        let (status, new_context, body) = self
            .send(Method::DELETE, url, context, Bytes::new())
            .await?;
        expect_no_content(status, new_context, &body)
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.admin_get("/v1/health").await
    }

    /// `GET` of an operator endpoint (e.g. `/v1/cluster`) that answers JSON.
    pub async fn admin_get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.admin(Method::GET, path).await
    }

    /// `POST` to an operator endpoint (e.g. `/v1/admin/decommission/n1`);
    /// its JSON answer.
    pub async fn admin_post(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.admin(Method::POST, path).await
    }

    async fn admin(&self, method: Method, path: &str) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let (status, _, body) = self.send(method, url, None, Bytes::new()).await?;
        if !status.is_success() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn keys_are_escaped_byte_for_byte() {
        let c = Client::new("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            c.url("b", b"a/b c\xff~", &[("w", Some(2))]),
            "http://127.0.0.1:1/v1/kv/b/a%2Fb%20c%FF~?w=2"
        );
        assert_eq!(
            c.url("b", b"k", &[("r", Some(1)), ("w", None)]),
            "http://127.0.0.1:1/v1/kv/b/k?r=1"
        );
        assert_eq!(
            c.url("b", b"k", &[("r", Some(1)), ("w", Some(3))]),
            "http://127.0.0.1:1/v1/kv/b/k?r=1&w=3"
        );
        assert!(Client::new("ftp://x").is_err());
    }

    #[test]
    fn json_form_with_and_without_write_times() {
        let json =
            serde_json::json!({"context": "c", "values": ["aGk=", "AP8="], "written_ms": [5, 7]});
        let f = Fetched::from_json(&json).unwrap();
        assert_eq!(
            f.values,
            vec![Bytes::from("hi"), Bytes::from(vec![0u8, 255])]
        );
        assert_eq!(f.written_ms, vec![Some(5), Some(7)]);
        let f = Fetched::from_json(&serde_json::json!({"values": ["aGk="]})).unwrap();
        assert_eq!((f.context, f.written_ms), (None, vec![None]));
        assert!(Fetched::from_json(&serde_json::json!({"values": ["%%"]})).is_err());
    }

    /// A server on a fresh port that runs `serve` on each connection.
    async fn server<F, Fut>(serve: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve(stream).await;
            }
        });
        url
    }

    async fn kind_of(client: &Client) -> TransportKind {
        match client.get("b", b"k", None).await {
            Err(ClientError::Transport(t)) => {
                assert_eq!(t.node, client.node());
                t.kind
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_connection_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        assert_eq!(kind_of(&client).await, TransportKind::Refused);
    }

    #[tokio::test]
    async fn a_port_that_closes_without_answering() {
        let url = server(|mut s| async move {
            let _ = s.read(&mut [0u8; 64]).await;
        })
        .await;
        let client = Client::new(&url).unwrap();
        assert_eq!(kind_of(&client).await, TransportKind::ClosedBeforeAnswer);
    }

    #[tokio::test]
    async fn a_port_that_answers_but_not_with_http() {
        let url = server(|mut s| async move {
            let _ = s.read(&mut [0u8; 64]).await;
            let _ = s.write_all(b"\x00\x00\x00\x07ringkv\x01\r\n\r\n").await;
        })
        .await;
        let client = Client::new(&url).unwrap();
        assert_eq!(kind_of(&client).await, TransportKind::NotHttp);
    }

    #[tokio::test]
    async fn a_port_that_never_answers_times_out() {
        let url = server(|s| async move {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(s);
            });
        })
        .await;
        let client =
            Client::with_timeouts(&url, DEFAULT_CONNECT_TIMEOUT, Duration::from_millis(200))
                .unwrap();
        assert_eq!(kind_of(&client).await, TransportKind::TimedOut(200));
    }

    /// The server answers 413 after the head and closes with most of the
    /// body unread (its kernel resets the connection): the client reports
    /// the 413 every time, not the failed write.
    #[tokio::test]
    async fn an_answer_sent_before_the_body_was_read_is_reported() {
        let url = server(|mut s| async move {
            // Like a node: read past the limit (1 MiB), then answer.
            let mut seen = vec![0u8; 64 << 10];
            let mut read = 0;
            while read < (1 << 20) {
                match s.read(&mut seen).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            let body = br#"{"error":{"code":"value_too_large","message":"too big"}}"#;
            let answer = format!(
                "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.write_all(body).await;
        })
        .await;
        let client = Client::new(&url).unwrap();
        let value = Bytes::from(vec![7u8; 8 << 20]);
        for attempt in 0..20 {
            match client.put("b", b"k", value.clone(), None, None).await {
                Err(ClientError::Status {
                    status: 413, code, ..
                }) => {
                    assert_eq!(code, "value_too_large")
                }
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
    }
}
