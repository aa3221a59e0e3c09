//! Loading a catalog from files and directories.

use crate::catalog::{Catalog, CheckId, Group};
use crate::diagnostic::{Diagnostic, Diagnostics, Mark};
use crate::source::Document;
use crate::validate;
use std::borrow::Cow;
use std::collections::BTreeMap;
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
    let mut problems = Vec::new();
    let files = expand(paths, &mut problems);
    // Each file is read when its turn comes and dropped after it: 100 files
    // of 1,000 checks never sit in memory at once.
    let sources = files.into_iter().map(|file| {
        let text = read(&file).map(Cow::Owned);
        (file, text)
    });
    let catalog = from_sources(sources, env, sections, &mut problems);
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
    let catalog = from_sources(sources, env, Sections::All, &mut problems);
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

fn from_sources<'a>(
    sources: impl Iterator<Item = Source<'a>>,
    env: &dyn Fn(&str) -> Option<String>,
    sections: Sections,
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
    for (file, text) in sources {
        let text = match text {
            Ok(text) => text,
            Err(message) => {
                problems.push(Diagnostic::new(&file, Mark::START, message));
                continue;
            }
        };
        catalog.files.push(file.clone());
        let Some(doc) = Document::parse(&file, &text, env, skipped, problems) else {
            continue;
        };
        let (items, found) = validate::file(&doc, sections);
        problems.extend(found);
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
        for g in items.groups {
            let index = match catalog.groups.iter().position(|x| x.name == g.name) {
                Some(i) => i,
                None => {
                    catalog.groups.push(Group {
                        name: g.name.clone(),
                        description: None,
                        checks: Vec::new(),
                    });
                    catalog.groups.len() - 1
                }
            };
            let group = &mut catalog.groups[index];
            if group.description.is_none() {
                group.description = g.description;
            }
            group.checks.extend(g.checks.iter().map(|c| c.id.clone()));
            catalog.checks.extend(g.checks.into_iter().map(Arc::new));
        }
        for m in items.maintenance {
            references.push(m.references);
            catalog.maintenance.push(m.window);
        }
    }

    // Growth by doubling leaves up to half the vector unused; 100,000 checks
    // make that worth giving back.
    catalog.checks.shrink_to_fit();
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
