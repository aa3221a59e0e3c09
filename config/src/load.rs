//! Loading a catalog from files and directories.

use crate::catalog::{Catalog, Check, CheckId, Group};
use crate::diagnostic::{Diagnostic, Diagnostics, Mark};
use crate::source::Document;
use crate::validate;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file larger than this is refused before it is parsed.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The sections of the config a role reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sections {
    /// Everything: `validate`, ingest and standalone.
    All,
    /// Checks and maintenance only: the agent and `check`, which never
    /// read `notifications`, `smtp` or `subscriptions` (nor interpolate,
    /// nor need, their secrets).
    Checks,
    /// Only `subscriptions`: the dashboard, which needs no check and no
    /// secret of a check.
    Subscriptions,
}

/// Loads every path (a YAML file, or a directory of `*.yaml`/`*.yml` files,
/// not recursive, hidden files skipped) into one catalog. `env` answers
/// `${VAR}`. Every problem of every file is returned, not only the first.
pub fn load(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, Diagnostics> {
    load_sections(paths, env, Sections::All)
}

/// [`load`], reading only `sections`.
pub fn load_sections(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
    sections: Sections,
) -> Result<Catalog, Diagnostics> {
    load_files(paths, env, sections, None)
}

/// What each file gave at the last load, kept so that the next load (a
/// reload) parses only the files that changed.
///
/// Validation reads nothing but a file's text and the `${VAR}`s it names,
/// so a file whose text and variables' values are unchanged (by SHA-256)
/// gives the checks it gave last time: those are shared, not built again.
/// A reload of 100,000 checks in which one file changed parses that file
/// alone, and the old and new catalogs share every unchanged check.
///
/// Kept: only files that loaded without a problem and define nothing but
/// groups and maintenance (never notification channels, routes, `smtp` or
/// `subscriptions`, which hold secrets and are few). What the files
/// define together (duplicate ids, the windows' check ids) is checked
/// anew at every load.
#[derive(Default)]
pub struct Kept {
    sections: Option<Sections>,
    files: HashMap<PathBuf, KeptFile>,
    /// The last load's checks, in catalog order: each kept file's are a
    /// run of them. One vector rather than one per file, on purpose: 100
    /// small vectors made while parsing pin the parser's freed memory
    /// (25 MiB more RSS at 100,000 checks, measured).
    checks: Vec<Arc<Check>>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("sections", &self.sections)
            .field("files", &self.files.len())
            .finish()
    }
}

impl Kept {
    /// How many files are kept.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is kept.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One file's part of a [`Kept`].
struct KeptFile {
    /// The SHA-256 of the text and of the values of `vars`.
    digest: [u8; 32],
    /// The `${VAR}`s the file names, in the order it names them.
    vars: Vec<String>,
    /// Where its checks start in [`Kept::checks`].
    first: usize,
    groups: Vec<KeptGroup>,
    maintenance: Vec<validate::FileMaintenance>,
}

/// A group of one kept file: its checks are the next `len` of the file's.
struct KeptGroup {
    name: String,
    description: Option<String>,
    len: usize,
}

/// [`load_sections`], reusing what `kept` holds of files that did not
/// change, and keeping what this load reads for the next.
pub fn load_reusing(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
    sections: Sections,
    kept: &mut Kept,
) -> Result<Catalog, Diagnostics> {
    load_files(paths, env, sections, Some(kept))
}

/// The problem a role reports when a load gave no answer at all (the thread
/// loading it panicked): on the first path, so it reads like any other.
pub fn load_failed(paths: &[PathBuf], why: impl std::fmt::Display) -> Diagnostics {
    let file = paths
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("-"));
    Diagnostics(vec![Diagnostic::new(
        file,
        Mark::START,
        format!("loading the config failed: {why}"),
    )])
}

fn load_files(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
    sections: Sections,
    kept: Option<&mut Kept>,
) -> Result<Catalog, Diagnostics> {
    let mut problems = Vec::new();
    let files = expand(paths, &mut problems);
    // Each file is read when its turn comes and dropped after it: 100 files
    // of 1,000 checks never sit in memory at once.
    let sources = files.into_iter().map(|file| {
        let text = read(&file).map(Cow::Owned);
        (file, text)
    });
    let catalog = from_sources(sources, env, sections, kept, &mut problems);
    if problems.is_empty() {
        Ok(catalog)
    } else {
        Err(Diagnostics(problems).sorted())
    }
}

/// Loads a catalog from texts already in memory, named by path.
pub fn load_str(
    sources: &[(PathBuf, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, Diagnostics> {
    let mut problems = Vec::new();
    let sources = sources
        .iter()
        .map(|(file, text)| (file.clone(), Ok(Cow::Borrowed(text.as_str()))));
    let catalog = from_sources(sources, env, Sections::All, None, &mut problems);
    if problems.is_empty() {
        Ok(catalog)
    } else {
        Err(Diagnostics(problems).sorted())
    }
}

fn expand(paths: &[PathBuf], problems: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) => {
                    problems.push(Diagnostic::new(
                        path,
                        Mark::START,
                        format!("cannot read the directory: {e}"),
                    ));
                    continue;
                }
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    !name.starts_with('.')
                        && (name.ends_with(".yaml") || name.ends_with(".yml"))
                        && p.is_file()
                })
                .collect();
            found.sort();
            if found.is_empty() {
                problems.push(Diagnostic::new(
                    path,
                    Mark::START,
                    "the directory has no .yaml or .yml files",
                ));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
}

fn read(file: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot read the file: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {} bytes, more than the {} a config file may have",
            meta.len(),
            MAX_FILE_BYTES
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read the file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (byte {} is invalid)",
            e.utf8_error().valid_up_to()
        )
    })
}

/// A file and its text, or why it could not be read.
type Source<'a> = (PathBuf, Result<Cow<'a, str>, String>);

/// The SHA-256 of a file's text and of the values of the variables it names.
fn digest(text: &str, vars: &[String], env: &dyn Fn(&str) -> Option<String>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
    for var in vars {
        match env(var) {
            Some(value) => {
                h.update([1]);
                h.update((value.len() as u64).to_le_bytes());
                h.update(value.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// Adds a group of a file to the catalog, with the ids of its checks (the
/// caller adds the checks): a group named in several files is one group,
/// its checks in file order.
fn add_group(
    catalog: &mut Catalog,
    name: &str,
    description: &Option<String>,
    ids: impl Iterator<Item = CheckId>,
) {
    let index = match catalog.groups.iter().position(|x| x.name == name) {
        Some(i) => i,
        None => {
            catalog.groups.push(Group {
                name: name.to_owned(),
                description: None,
                checks: Vec::new(),
            });
            catalog.groups.len() - 1
        }
    };
    let group = &mut catalog.groups[index];
    if group.description.is_none() {
        group.description.clone_from(description);
    }
    group.checks.extend(ids);
}

fn from_sources<'a>(
    sources: impl Iterator<Item = Source<'a>>,
    env: &dyn Fn(&str) -> Option<String>,
    sections: Sections,
    mut kept: Option<&mut Kept>,
    problems: &mut Vec<Diagnostic>,
) -> Catalog {
    let mut catalog = Catalog {
        groups: Vec::new(),
        checks: Vec::new(),
        maintenance: Vec::new(),
        notifications: crate::notify::Notifications::default(),
        subscriptions: None,
        files: Vec::new(),
    };
    let mut references = Vec::new();
    let mut declared = Vec::new();
    let mut channels = Vec::new();
    let mut routes = Vec::new();
    let mut smtps: Option<(crate::notify::Smtp, crate::diagnostic::Origin)> = None;
    let skipped: &[&str] = match sections {
        Sections::All => &[],
        Sections::Checks => &["notifications", "smtp", "subscriptions"],
        Sections::Subscriptions => &["defaults", "groups", "maintenance", "notifications", "smtp"],
    };
    let mut subscriptions: Option<(crate::notify::Subscriptions, crate::diagnostic::Origin)> = None;
    let (mut old, old_checks) = match kept.as_deref_mut() {
        Some(k) if k.sections == Some(sections) => {
            (std::mem::take(&mut k.files), std::mem::take(&mut k.checks))
        }
        _ => (HashMap::new(), Vec::new()),
    };
    let mut next = HashMap::with_capacity(old.len());
    for (file, text) in sources {
        let text = match text {
            Ok(text) => text,
            Err(message) => {
                problems.push(Diagnostic::new(&file, Mark::START, message));
                continue;
            }
        };
        catalog.files.push(file.clone());
        if let Some(mut same) = old
            .remove(&file)
            .filter(|k| k.digest == digest(&text, &k.vars, env))
        {
            let mut at = same.first;
            same.first = catalog.checks.len();
            for g in &same.groups {
                let run = &old_checks[at..at + g.len];
                let ids = run.iter().map(|c| c.id.clone());
                add_group(&mut catalog, &g.name, &g.description, ids);
                catalog.checks.extend(run.iter().cloned());
                at += g.len;
            }
            for m in &same.maintenance {
                references.push(m.references.clone());
                catalog.maintenance.push(m.window.clone());
            }
            next.insert(file, same);
            continue;
        }
        let before = problems.len();
        let asked = RefCell::new(Vec::new());
        let recording = |var: &str| {
            asked.borrow_mut().push(var.to_owned());
            env(var)
        };
        let Some(doc) = Document::parse(&file, &text, &recording, skipped, problems) else {
            continue;
        };
        let (items, found) = validate::file(&doc, sections);
        drop(doc);
        let clean = found.is_empty() && problems.len() == before;
        problems.extend(found);
        let keep = kept.is_some()
            && clean
            && items.channels.is_empty()
            && items.routes.is_empty()
            && items.smtp.is_none()
            && items.subscriptions.is_none();
        if let Some((s, origin)) = items.subscriptions {
            match &subscriptions {
                Some((_, first)) => problems.push(Diagnostic {
                    origin,
                    message: format!("a second `subscriptions` section: the first is at {first}"),
                }),
                None => subscriptions = Some((s, origin)),
            }
        }
        declared.extend(items.declared);
        channels.extend(items.channels);
        routes.extend(items.routes);
        if let Some((smtp, origin)) = items.smtp {
            match &smtps {
                Some((_, first)) => problems.push(Diagnostic {
                    origin,
                    message: format!("a second `smtp` section: the first is at {first}"),
                }),
                None => smtps = Some((smtp, origin)),
            }
        }
        let first = catalog.checks.len();
        let mut groups = Vec::new();
        for g in items.groups {
            if keep {
                groups.push(KeptGroup {
                    name: g.name.clone(),
                    description: g.description.clone(),
                    len: g.checks.len(),
                });
            }
            let ids = g.checks.iter().map(|c| c.id.clone());
            add_group(&mut catalog, &g.name, &g.description, ids);
            catalog.checks.extend(g.checks.into_iter().map(Arc::new));
        }
        for m in &items.maintenance {
            references.push(m.references.clone());
            catalog.maintenance.push(m.window.clone());
        }
        if keep {
            let vars = asked.into_inner();
            next.insert(
                file,
                KeptFile {
                    digest: digest(&text, &vars, env),
                    vars,
                    first,
                    groups,
                    maintenance: items.maintenance,
                },
            );
        }
    }
    drop(old_checks);
    // Growth by doubling leaves up to half the vector unused; 100,000 checks
    // make that worth giving back.
    catalog.checks.shrink_to_fit();
    if let Some(k) = kept {
        k.sections = Some(sections);
        k.files = next;
        k.checks = catalog.checks.clone();
    }
    let mut first: BTreeMap<&CheckId, &crate::diagnostic::Origin> = BTreeMap::new();
    for check in &catalog.checks {
        if let Some(earlier) = first.get(&check.id) {
            problems.push(Diagnostic {
                origin: check.origin.clone(),
                message: format!(
                    "duplicate check id `{}`: it is also defined at {earlier}; set a distinct `id`",
                    check.id
                ),
            });
        } else {
            first.insert(&check.id, &check.origin);
        }
    }
    let known: Vec<&str> = catalog.checks.iter().map(|c| c.id.as_str()).collect();
    for (window, refs) in catalog.maintenance.iter_mut().zip(references) {
        for (id, origin) in refs {
            match catalog.checks.iter().find(|c| c.id.as_str() == id) {
                Some(c) => window.checks.push(c.id.clone()),
                // That check has errors of its own, already reported.
                None if declared.contains(&id) => {}
                None => {
                    let hint = match crate::decode::did_you_mean(&id, &known) {
                        Some(close) => format!(", did you mean `{close}`?"),
                        None => String::new(),
                    };
                    problems.push(Diagnostic {
                        origin,
                        message: format!(
                            "maintenance `{}` names the unknown check id `{id}`{hint}",
                            window.name
                        ),
                    });
                }
            }
        }
    }
    catalog.notifications = notifications(&catalog, channels, routes, smtps.is_some(), problems);
    if sections == Sections::All
        && smtps.is_none()
        && let Some((_, origin)) = &subscriptions
    {
        problems.push(Diagnostic {
            origin: origin.clone(),
            message: "subscriptions need an `smtp` section (the mail server that sends confirmations and notices)".into(),
        });
    }
    catalog.notifications.smtp = smtps.map(|(s, _)| s);
    catalog.subscriptions = subscriptions.map(|(s, _)| s);
    if catalog.checks.is_empty() && problems.is_empty() && sections != Sections::Subscriptions {
        let file = catalog
            .files
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("-"));
        problems.push(Diagnostic::new(
            file,
            Mark::START,
            "no checks are defined: add a `groups` list with at least one check",
        ));
    }
    catalog
}

/// Modification times and sizes of every config file, symlinks followed.
pub type Fingerprint = Vec<(PathBuf, Option<std::time::SystemTime>, u64)>;

/// The [`Fingerprint`] of the files under `paths`: a reload is due when it
/// changes. A ConfigMap update (a symlink swap) shows as a change.
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default()
        } else {
            vec![p.clone()]
        };
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            let target = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            out.push((
                target,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            ));
        }
    }
    out.sort();
    out
}

/// Puts every file's channels and routes together: channel names unique,
/// every name a route gives a known channel and group.
fn notifications(
    catalog: &Catalog,
    channels: Vec<validate::FileChannel>,
    routes: Vec<validate::FileRoute>,
    has_smtp: bool,
    problems: &mut Vec<Diagnostic>,
) -> crate::notify::Notifications {
    let mut out = crate::notify::Notifications::default();
    let mut origins: Vec<crate::diagnostic::Origin> = Vec::new();
    for c in channels {
        match out.channels.iter().position(|k| k.name == c.channel.name) {
            Some(i) => problems.push(Diagnostic {
                origin: c.origin,
                message: format!(
                    "duplicate channel name `{}`: it is also defined at {}",
                    c.channel.name, origins[i]
                ),
            }),
            None => {
                if !has_smtp && matches!(c.channel.kind, crate::notify::ChannelKind::Email { .. }) {
                    problems.push(Diagnostic {
                        origin: c.origin.clone(),
                        message: format!(
                            "the email channel `{}` needs an `smtp` section (the mail server to send through)",
                            c.channel.name
                        ),
                    });
                }
                out.channels.push(c.channel);
                origins.push(c.origin);
            }
        }
    }
    let names: Vec<&str> = out.channels.iter().map(|c| c.name.as_str()).collect();
    let groups: Vec<&str> = catalog.groups.iter().map(|g| g.name.as_str()).collect();
    let mut resolved = Vec::new();
    for r in routes {
        for (name, origin) in &r.channels {
            if !names.contains(&name.as_str()) {
                let hint = match crate::decode::did_you_mean(name, &names) {
                    Some(close) => format!(", did you mean `{close}`?"),
                    None => String::new(),
                };
                problems.push(Diagnostic {
                    origin: origin.clone(),
                    message: format!("a route names the unknown channel `{name}`{hint}"),
                });
            }
        }
        for (name, origin) in &r.groups {
            if !groups.contains(&name.as_str()) {
                problems.push(Diagnostic {
                    origin: origin.clone(),
                    message: format!("a route names the unknown group `{name}`"),
                });
            }
        }
        resolved.push(crate::notify::Route {
            channels: r.channels.into_iter().map(|(n, _)| n).collect(),
            events: r.events,
            groups: r.groups.into_iter().map(|(n, _)| n).collect(),
            min_major: r.min_major,
        });
    }
    out.routes = resolved;
    out
}
