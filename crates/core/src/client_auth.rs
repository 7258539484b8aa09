//! Client tokens for the HTTP API (N4): when an operator configures them,
//! only clients that present one get in.
//!
//! [`ClientTokens::parse`] reads a tokens file: one token per line, blank
//! lines and lines starting with `#` skipped, surrounding whitespace
//! trimmed. A token is visible ASCII without spaces (it travels in a header),
//! at least [`MIN_TOKEN_BYTES`] long (guessing must be hopeless) and at most
//! [`MAX_TOKEN_BYTES`]; a file holds at most [`MAX_TOKENS`] and at least one.
//! Each limit has its own [`TokenFileError`].
//!
//! **Only digests are kept.** The parsed set holds the SHA-256 of each
//! token, never the token, and its `Debug` shows only the count. To check
//! a presented token, [`ClientTokens::verify`] hashes it and compares the
//! digest with *every* stored digest in constant time, folding the results
//! without an early exit: how long a check takes depends on neither where a
//! match is nor how much of a wrong token matches. (The count of tokens and
//! the presented length can show; neither helps a guesser.)
//!
//! [`bearer_token`] takes the bytes of an `Authorization` header apart
//! (`Bearer <token>`, scheme case-insensitive, RFC 6750); it never panics on
//! any bytes, and [`check`] puts the two together into the node's decision,
//! with a [`Refusal`] whose [`Refusal::reason`] labels the metric.
//!
//! Boundary: pure functions of bytes. No IO, no clock, no randomness; the
//! binary reads the file, the HTTP layer reads the header.

use sha2::{Digest, Sha256};
use std::fmt;

/// Fewest bytes a client token may have.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Most bytes a client token may have (also the most read from a header).
pub const MAX_TOKEN_BYTES: usize = 512;
/// Most tokens one tokens file may hold.
pub const MAX_TOKENS: usize = 256;
/// Most bytes of a tokens file (every token at its longest, with room for
/// comments); a larger file is a mistake.
pub const MAX_TOKENS_FILE_BYTES: usize = 4 * MAX_TOKENS * (MAX_TOKEN_BYTES + 1);

/// Why a tokens file is refused at start. Line numbers count from 1; no
/// error ever shows a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    #[error("line {line}: the token has {bytes} bytes; it needs at least {min} (e.g. `head -c 32 /dev/urandom | base64`)")]
    TooShort {
        line: usize,
        bytes: usize,
        min: usize,
    },
    #[error("line {line}: the token has {bytes} bytes, more than the limit of {max}")]
    TooLong {
        line: usize,
        bytes: usize,
        max: usize,
    },
    #[error("line {line}: a token may only hold visible ASCII characters, no spaces")]
    NotVisibleAscii { line: usize },
    #[error("more than {max} tokens")]
    TooMany { max: usize },
    #[error("the file has {bytes} bytes, more than the limit of {max}")]
    FileTooLarge { bytes: usize, max: usize },
    #[error("no tokens (only blank lines and # comments); remove the setting to turn tokens off")]
    Empty,
}

/// Why an `Authorization` header does not carry a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the bearer token is empty or holds characters a token cannot have")]
    Malformed,
    #[error("the bearer token is longer than {max} bytes")]
    TooLong { max: usize },
}

/// Why a request was not let in; each is answered `401`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node requires a client token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("{0}")]
    Malformed(BearerError),
    #[error("the client token is not one this node accepts")]
    Wrong,
}

impl Refusal {
    /// The metric label: `missing`, `malformed` or `wrong`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed(_) => "malformed",
            Refusal::Wrong => "wrong",
        }
    }
}

type TokenDigest = [u8; 32];

/// The accepted client tokens, as digests only.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTokens {
    digests: Vec<TokenDigest>,
}

impl fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientTokens(<{} tokens>)", self.digests.len())
    }
}

fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

/// Whether every byte may appear in a token: visible ASCII, no space.
fn is_token_text(token: &[u8]) -> bool {
    token.iter().all(|b| b.is_ascii_graphic())
}

/// Equal in time independent of where `a` and `b` differ.
fn constant_time_eq(a: &TokenDigest, b: &TokenDigest) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

impl ClientTokens {
    /// Reads a tokens file's bytes (see the module docs for the format).
    pub fn parse(file: &[u8]) -> Result<Self, TokenFileError> {
        if file.len() > MAX_TOKENS_FILE_BYTES {
            return Err(TokenFileError::FileTooLarge {
                bytes: file.len(),
                max: MAX_TOKENS_FILE_BYTES,
            });
        }
        let mut digests = Vec::new();
        for (index, line) in file.split(|&b| b == b'\n').enumerate() {
            let line_no = index + 1;
            let token = line.trim_ascii();
            if token.is_empty() || token.starts_with(b"#") {
                continue;
            }
            Self::check_token(token, line_no)?;
            if digests.len() == MAX_TOKENS {
                return Err(TokenFileError::TooMany { max: MAX_TOKENS });
            }
            digests.push(digest(token));
        }
        if digests.is_empty() {
            return Err(TokenFileError::Empty);
        }
        Ok(ClientTokens { digests })
    }

    fn check_token(token: &[u8], line: usize) -> Result<(), TokenFileError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenFileError::TooLong {
                line,
                bytes: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if !is_token_text(token) {
            return Err(TokenFileError::NotVisibleAscii { line });
        }
        if token.len() < MIN_TOKEN_BYTES {
            return Err(TokenFileError::TooShort {
                line,
                bytes: token.len(),
                min: MIN_TOKEN_BYTES,
            });
        }
        Ok(())
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Never true for a parsed set (a file without tokens is refused).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens, compared as digests against
    /// every stored digest without an early exit.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        self.digests
            .iter()
            .fold(false, |found, d| found | constant_time_eq(d, &presented))
    }
}

/// The token of an `Authorization: Bearer <token>` header value: the scheme
/// in any case, one or more spaces, then visible ASCII up to
/// [`MAX_TOKEN_BYTES`] (surrounding spaces and tabs ignored).
pub fn bearer_token(header: &[u8]) -> Result<&[u8], BearerError> {
    let header = header.trim_ascii();
    const SCHEME: &[u8] = b"bearer";
    let (scheme, rest) = header.split_at(header.len().min(SCHEME.len()));
    if !scheme.eq_ignore_ascii_case(SCHEME) || !rest.starts_with(b" ") {
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_ascii_start();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(BearerError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    if token.is_empty() || !is_token_text(token) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

/// Whether a request with this `Authorization` header value (`None`: no
/// header) may pass, given the configured tokens.
pub fn check(tokens: &ClientTokens, header: Option<&[u8]>) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let token = bearer_token(header).map_err(Refusal::Malformed)?;
    match tokens.verify(token) {
        true => Ok(()),
        false => Err(Refusal::Wrong),
    }
}

#[cfg(test)]
mod tests;
