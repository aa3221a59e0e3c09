//! A database URL: it may carry a password, so it is never printed.

use std::fmt;

/// A database URL (`postgres://user:password@host/db` or `sqlite://PATH`).
/// `Debug` and `Display` show only its scheme, so no log line, error or
/// `{:?}` of a settings struct can leak the password; [`DatabaseUrl::expose`]
/// is the one way to the text, for the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its scheme (`postgres`, `sqlite`, ...), or `?` when it has none.
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("?", |(s, _)| s)
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_string()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://[redacted])", self.scheme())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://[redacted]", self.scheme())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_never_printed() {
        let url: DatabaseUrl = "postgres://app:hunter2@db.internal:5432/statuspage"
            .parse()
            .unwrap();
        for shown in [
            format!("{url:?}"),
            url.to_string(),
            format!("{:?}", Some(&url)),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("db.internal"),
                "{shown}"
            );
        }
        assert_eq!(url.to_string(), "postgres://[redacted]");
        assert_eq!(
            url.expose(),
            "postgres://app:hunter2@db.internal:5432/statuspage"
        );
    }
}
