//! Admin tokens: a file of `name token` lines. A presented token is hashed
//! and compared with every stored hash in constant time, so neither its
//! length nor its first wrong byte shows in the response time.

use sha2::{Digest, Sha256};

/// The shortest token accepted in the file.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the token file was refused (line numbers from 1; tokens never shown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFileError {
    /// A line without two fields.
    #[error("line {0}: expected `name token`")]
    Shape(usize),
    /// A name with characters outside `[A-Za-z0-9._@-]`, or too long.
    #[error("line {0}: the name must be 1 to 64 of A-Z a-z 0-9 . _ @ -")]
    Name(usize),
    /// A token too short to resist guessing.
    #[error("line {0}: the token is shorter than {MIN_TOKEN_LEN} characters")]
    Short(usize),
    /// The same token twice.
    #[error("line {0}: this token is already on an earlier line")]
    Duplicate(usize),
    /// No token at all.
    #[error("no tokens")]
    Empty,
}

/// The admin tokens, hashed.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.0.as_str()).collect();
        f.debug_struct("Tokens")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Parses a token file: `name token` a line; blank lines and `#`
    /// comments are skipped.
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(token), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(TokenFileError::Shape(n));
            };
            let name_ok = name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            if !name_ok {
                return Err(TokenFileError::Name(n));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenFileError::Short(n));
            }
            let hash = digest(token.as_bytes());
            if entries.iter().any(|e| equal(&e.1, &hash)) {
                return Err(TokenFileError::Duplicate(n));
            }
            entries.push((name.to_string(), hash));
        }
        if entries.is_empty() {
            return Err(TokenFileError::Empty);
        }
        Ok(Tokens { entries })
    }

    /// One token named `name` (from `STATUSPAGE_ADMIN_TOKEN`).
    pub fn single(name: &str, token: &str) -> Result<Tokens, TokenFileError> {
        Tokens::parse(&format!("{name} {token}"))
    }

    /// The name of the token in an `Authorization: Bearer ...` value, if it
    /// is one of ours (the scheme in any case, as RFC 7235 says; the token
    /// exactly). Every stored hash is compared, whatever matches.
    pub fn author(&self, authorization: Option<&str>) -> Option<String> {
        let (scheme, token) = authorization?.trim_start().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let presented = token.trim();
        if presented.is_empty() {
            return None;
        }
        let hash = digest(presented.as_bytes());
        let mut found = None;
        for (name, stored) in &self.entries {
            if equal(stored, &hash) && found.is_none() {
                found = Some(name.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# operators\nalice s3cr3t-token-for-alice\n\nbob   another-long-token-bob\n";

    #[test]
    fn the_token_names_its_author() {
        let t = Tokens::parse(FILE).unwrap();
        assert_eq!(
            t.author(Some("Bearer s3cr3t-token-for-alice")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            t.author(Some("Bearer another-long-token-bob")).as_deref(),
            Some("bob")
        );
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                t.author(Some(&format!("{scheme} s3cr3t-token-for-alice")))
                    .as_deref(),
                Some("alice"),
                "the scheme is case-insensitive (RFC 7235)"
            );
        }
    }

    #[test]
    fn missing_wrong_and_malformed_tokens_name_nobody() {
        let t = Tokens::parse(FILE).unwrap();
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic YWxpY2U6eA=="),
            Some("Bearers s3cr3t-token-for-alice"),
            Some("Bearer s3cr3t-token-for-alicE"),
            Some("Bearer s3cr3t-token-for-alice-and-more"),
            Some("Bearer s3cr3t"),
        ] {
            assert_eq!(t.author(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_bad_token_file_is_refused_with_its_line_and_never_its_token() {
        assert_eq!(
            Tokens::parse("alice").unwrap_err(),
            TokenFileError::Shape(1)
        );
        assert_eq!(
            Tokens::parse("a b c").unwrap_err(),
            TokenFileError::Shape(1)
        );
        assert_eq!(
            Tokens::parse("\nal ice-x long-enough-token-1").unwrap_err(),
            TokenFileError::Shape(2)
        );
        assert_eq!(
            Tokens::parse("al<ice long-enough-token-1").unwrap_err(),
            TokenFileError::Name(1)
        );
        assert_eq!(
            Tokens::parse("alice short").unwrap_err(),
            TokenFileError::Short(1)
        );
        assert_eq!(
            Tokens::parse("a long-enough-token-1\nb long-enough-token-1").unwrap_err(),
            TokenFileError::Duplicate(2)
        );
        assert_eq!(
            Tokens::parse("# none\n").unwrap_err(),
            TokenFileError::Empty
        );
        let shown = Tokens::parse("alice tiny-tok").unwrap_err().to_string();
        assert!(!shown.contains("tiny-tok"), "{shown}");
        assert!(!format!("{:?}", Tokens::parse(FILE).unwrap()).contains("s3cr3t"));
    }
}
