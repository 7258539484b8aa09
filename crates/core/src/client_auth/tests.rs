//! Tokens file limits, digest-only storage, bearer header parsing and the
//! let-in decision, table-driven.

use super::*;

const GOOD: &str = "a-client-token-0123456789";
const OTHER: &str = "another-token-abcdefghij";

fn tokens(text: &str) -> Result<ClientTokens, TokenFileError> {
    ClientTokens::parse(text.as_bytes())
}

#[test]
fn a_tokens_file_skips_blanks_and_comments_and_trims_lines() {
    let file = format!("# ops team\n\n  {GOOD}  \r\n{OTHER}\n# old one removed\n");
    let set = tokens(&file).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.verify(GOOD.as_bytes()));
    assert!(set.verify(OTHER.as_bytes()));
    assert!(!set.verify(b"# ops team"), "a comment is no token");
    assert!(
        !set.verify(format!("  {GOOD}").as_bytes()),
        "the trimmed token counts"
    );
}

#[test]
fn every_token_limit_is_an_error_naming_the_line() {
    let short = "x".repeat(MIN_TOKEN_BYTES - 1);
    assert_eq!(
        tokens(&format!("{GOOD}\n{short}\n")),
        Err(TokenFileError::TooShort {
            line: 2,
            bytes: MIN_TOKEN_BYTES - 1,
            min: MIN_TOKEN_BYTES
        })
    );
    assert!(
        tokens(&"x".repeat(MIN_TOKEN_BYTES)).is_ok(),
        "the minimum is allowed"
    );
    let long = "x".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        tokens(&long),
        Err(TokenFileError::TooLong {
            line: 1,
            bytes: MAX_TOKEN_BYTES + 1,
            max: MAX_TOKEN_BYTES
        })
    );
    assert!(
        tokens(&"x".repeat(MAX_TOKEN_BYTES)).is_ok(),
        "the maximum is allowed"
    );
    assert_eq!(
        tokens("a token with spaces inside"),
        Err(TokenFileError::NotVisibleAscii { line: 1 })
    );
    assert_eq!(
        ClientTokens::parse("caf\u{e9}-token-0123456789".as_bytes()),
        Err(TokenFileError::NotVisibleAscii { line: 1 })
    );
    assert_eq!(tokens("\n# nothing\n  \n"), Err(TokenFileError::Empty));
}

#[test]
fn a_file_holds_at_most_max_tokens_and_max_bytes() {
    let numbered =
        |n: usize| -> String { (0..n).map(|i| format!("token-number-{i:08}\n")).collect() };
    assert_eq!(tokens(&numbered(MAX_TOKENS)).unwrap().len(), MAX_TOKENS);
    assert_eq!(
        tokens(&numbered(MAX_TOKENS + 1)),
        Err(TokenFileError::TooMany { max: MAX_TOKENS })
    );
    let huge = vec![b'#'; MAX_TOKENS_FILE_BYTES + 1];
    assert_eq!(
        ClientTokens::parse(&huge),
        Err(TokenFileError::FileTooLarge {
            bytes: MAX_TOKENS_FILE_BYTES + 1,
            max: MAX_TOKENS_FILE_BYTES
        })
    );
}

#[test]
fn only_digests_are_kept_and_debug_never_shows_a_token() {
    let set = tokens(GOOD).unwrap();
    let shown = format!("{set:?}");
    assert_eq!(shown, "ClientTokens(<1 tokens>)");
    let error = tokens("short-token").unwrap_err().to_string();
    assert!(!error.contains("short-token"), "{error}");
}

#[test]
fn verify_accepts_exactly_the_configured_tokens() {
    let set = tokens(&format!("{GOOD}\n{OTHER}")).unwrap();
    assert!(set.verify(GOOD.as_bytes()));
    let mut near = GOOD.as_bytes().to_vec();
    *near.last_mut().unwrap() ^= 1;
    for wrong in [&near[..], &GOOD.as_bytes()[1..], b"", b"x"] {
        assert!(!set.verify(wrong), "{:?}", String::from_utf8_lossy(wrong));
    }
    assert!(constant_time_eq(&digest(b"a"), &digest(b"a")));
    assert!(!constant_time_eq(&digest(b"a"), &digest(b"b")));
}

#[test]
fn bearer_headers_are_taken_apart_by_rfc_6750() {
    let ok = [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc.def~+/=", "abc.def~+/="),
        ("  Bearer abc  ", "abc"),
    ];
    for (header, token) in ok {
        assert_eq!(
            bearer_token(header.as_bytes()),
            Ok(token.as_bytes()),
            "{header}"
        );
    }
    let bad = [
        ("Basic dXNlcjpwYXNz", BearerError::NotBearer),
        ("Bearerabc", BearerError::NotBearer),
        ("Bearer", BearerError::NotBearer),
        ("", BearerError::NotBearer),
        ("Bear", BearerError::NotBearer),
        ("Bearer abc def", BearerError::Malformed),
        ("Bearer ab\x01c", BearerError::Malformed),
    ];
    for (header, error) in bad {
        assert_eq!(bearer_token(header.as_bytes()), Err(error), "{header:?}");
    }
    let long = format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(
        bearer_token(long.as_bytes()),
        Err(BearerError::TooLong {
            max: MAX_TOKEN_BYTES
        })
    );
    assert_eq!(
        bearer_token(&[0xFF, 0xFE, b' ', b'x']),
        Err(BearerError::NotBearer)
    );
}

#[test]
fn check_decides_and_names_each_refusal() {
    let set = tokens(GOOD).unwrap();
    let header = format!("Bearer {GOOD}");
    assert_eq!(check(&set, Some(header.as_bytes())), Ok(()));
    let cases = [
        (None, "missing"),
        (Some("Basic eA=="), "malformed"),
        (Some("Bearer not-the-right-token-at-all"), "wrong"),
    ];
    for (header, reason) in cases {
        let refusal = check(&set, header.map(str::as_bytes)).unwrap_err();
        assert_eq!(refusal.reason(), reason, "{header:?}");
    }
}
