//! Why a call failed, as data: the server's answer, or what went wrong on
//! the way to it.
//!
//! [`ClientError::Status`] carries the server's status and JSON error.
//! [`ClientError::Transport`] says which node and what happened on the
//! connection ([`TransportKind`]): refused, no connection in time, the port
//! answered but not with HTTP (e.g. a node's RPC port), the connection
//! closed before an answer, or no answer in time. [`classify`] derives the
//! kind from hyper's error chain; it is the only place that looks inside
//! hyper's errors. Turning a kind into advice for a person is the binary's
//! job.

use hyper::StatusCode;
use std::error::Error as StdError;
use std::io;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error status.
    #[error("HTTP {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer from the node: see [`TransportError::kind`].
    #[error("request failed: {0}")]
    Transport(TransportError),
    #[error("unexpected response: {0}")]
    BadResponse(String),
    #[error("bad node URL {0:?}: expected http://host:port")]
    BadUrl(String),
    /// A client token that cannot travel in a header (not visible ASCII).
    #[error("the client token holds characters a header cannot carry")]
    BadToken,
}

/// A request that got no HTTP answer from `node`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{node}: {kind}")]
pub struct TransportError {
    /// The node's base URL, as given to the client.
    pub node: String,
    pub kind: TransportKind,
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportKind {
    /// Nothing listens on the port (or a firewall refused).
    #[error("connection refused")]
    Refused,
    /// No TCP connection within the connect timeout.
    #[error("could not connect within {0} ms")]
    ConnectTimedOut(u64),
    /// The host name did not resolve, or another connect failure.
    #[error("could not connect: {0}")]
    ConnectFailed(String),
    /// Something listens, but what it sent back is not HTTP.
    #[error("the port answered, but not with HTTP")]
    NotHttp,
    /// The connection closed (or was reset) before any answer arrived.
    #[error("the connection closed before an answer")]
    ClosedBeforeAnswer,
    /// Connected, but no complete answer within the request timeout.
    #[error("no answer within {0} ms")]
    TimedOut(u64),
    /// Anything else, with hyper's description.
    #[error("{0}")]
    Other(String),
}

/// The kind of a failed `request` call on the pooled client.
pub(crate) fn classify(e: &hyper_util::client::legacy::Error) -> TransportKind {
    let io_kind = find::<io::Error>(e).map(io::Error::kind);
    if e.is_connect() {
        return match io_kind {
            Some(io::ErrorKind::ConnectionRefused) => TransportKind::Refused,
            Some(io::ErrorKind::TimedOut) => TransportKind::ConnectTimedOut(0),
            _ => TransportKind::ConnectFailed(chain(e)),
        };
    }
    classify_exchange(e)
}

/// The kind of a failure after the connection was made: while sending the
/// request or reading the answer's head or body.
pub(crate) fn classify_exchange(e: &(dyn StdError + 'static)) -> TransportKind {
    if let Some(h) = find::<hyper::Error>(e) {
        if h.is_parse() || h.is_parse_status() {
            return TransportKind::NotHttp;
        }
        if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
            return TransportKind::ClosedBeforeAnswer;
        }
    }
    match find::<io::Error>(e).map(io::Error::kind) {
        Some(
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionAborted,
        ) => TransportKind::ClosedBeforeAnswer,
        _ => TransportKind::Other(chain(e)),
    }
}

/// The first error of type `T` in `e`'s source chain (including `e`).
fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// `e` and its sources, joined with ": ".
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        text.push_str(": ");
        text.push_str(&err.to_string());
        next = err.source();
    }
    text
}

/// The error for a non-success answer: the server's JSON error when the
/// body is one, else the body as text.
pub(crate) fn error_of(status: StatusCode, body: &[u8]) -> ClientError {
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn io_errors_in_the_chain_decide_the_kind() {
        let table = [
            (
                io::ErrorKind::ConnectionReset,
                TransportKind::ClosedBeforeAnswer,
            ),
            (io::ErrorKind::BrokenPipe, TransportKind::ClosedBeforeAnswer),
            (
                io::ErrorKind::UnexpectedEof,
                TransportKind::ClosedBeforeAnswer,
            ),
            (
                io::ErrorKind::PermissionDenied,
                TransportKind::Other("outer: nope".into()),
            ),
        ];
        for (kind, want) in table {
            let e = Outer(io::Error::new(kind, "nope"));
            assert_eq!(classify_exchange(&e), want, "{kind:?}");
        }
    }

    #[test]
    fn status_errors_carry_the_servers_json_error() {
        let body = br#"{"error":{"code":"value_too_large","message":"over 1048576 bytes"}}"#;
        match error_of(StatusCode::PAYLOAD_TOO_LARGE, body) {
            ClientError::Status {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code.as_str()), (413, "value_too_large"));
                assert_eq!(message, "over 1048576 bytes");
            }
            other => panic!("{other:?}"),
        }
        match error_of(StatusCode::BAD_GATEWAY, b"<html>") {
            ClientError::Status { code, message, .. } => {
                assert_eq!((code.as_str(), message.as_str()), ("unknown", "<html>"));
            }
            other => panic!("{other:?}"),
        }
    }
}
