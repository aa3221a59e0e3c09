//! Diagnostics: one problem in a config file, printed as `PATH:LINE:COL: message`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in a YAML file, 1-based, counted in characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl Mark {
    /// The start of a file: where errors about a whole file point.
    pub const START: Mark = Mark { line: 1, column: 1 };
}

/// Where something was defined: a file and a position in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file, as it was named on the command line (or found in a
    /// directory); shared by everything defined in it.
    pub file: Arc<Path>,
    /// The position in that file.
    pub mark: Mark,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.file.display(),
            self.mark.line,
            self.mark.column
        )
    }
}

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Where the problem is.
    pub origin: Origin,
    /// What is wrong: it names the key, what was expected and what was found.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `mark` in `file`.
    pub fn new(file: &Path, mark: Mark, message: impl Into<String>) -> Self {
        Self {
            origin: Origin {
                file: file.into(),
                mark,
            },
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Every problem found while loading a catalog, in file and position order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by file and position, and drops exact repeats.
    pub fn sorted(mut self) -> Self {
        self.0.sort();
        self.0.dedup();
        self
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
