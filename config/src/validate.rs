//! Raw YAML into catalog types, collecting every problem of a file.

use crate::catalog::*;
use crate::decode::{Cx, Field};
use crate::defaults::{BUILT_IN, Locations, Quorum};
use crate::diagnostic::{Diagnostic, Origin};
use crate::raw::*;
use crate::source::{Document, NodeId, clip};
use crate::units::{DurationText, format_duration};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use std::time::Duration;

mod notify;
mod probe;

pub(crate) use notify::{FileChannel, FileRoute};

/// What one file defines, before checks from all files are put together.
#[derive(Debug, Default)]
pub(crate) struct FileItems {
    pub groups: Vec<FileGroup>,
    /// The id of every check written, valid or not, so that a maintenance
    /// window naming a broken check does not add a second, misleading error.
    pub declared: Vec<String>,
    pub maintenance: Vec<FileMaintenance>,
    pub channels: Vec<FileChannel>,
    pub routes: Vec<FileRoute>,
    pub smtp: Option<(crate::notify::Smtp, Origin)>,
    pub subscriptions: Option<(crate::notify::Subscriptions, Origin)>,
}

#[derive(Debug)]
pub(crate) struct FileGroup {
    pub name: String,
    pub description: Option<String>,
    pub checks: Vec<Check>,
}

/// A maintenance window and the check ids it names, with where each is named.
#[derive(Clone, Debug)]
pub(crate) struct FileMaintenance {
    pub window: MaintenanceWindow,
    pub references: Vec<(String, Origin)>,
}

/// A setting after defaults were applied, with the node that set it.
#[derive(Clone, Copy, Debug)]
struct Setting<T> {
    value: T,
    at: Option<NodeId>,
}

impl<T> Setting<T> {
    fn built_in(value: T) -> Self {
        Self { value, at: None }
    }
}

/// The defaults of one file.
#[derive(Clone, Copy, Debug)]
struct Inherited {
    interval: Setting<Duration>,
    timeout: Setting<Duration>,
    locations: Setting<Locations>,
    quorum: Setting<Quorum>,
    failure_threshold: Setting<u32>,
    success_threshold: Setting<u32>,
    reopen_window: Setting<Duration>,
    public: Setting<bool>,
    slo: Option<Slo>,
}

/// A value as an error message may show it: quoted, clipped and with its
/// control characters escaped (a message is one line), or, when it came
/// from the environment (a secret), only where it came from.
fn shown(cx: &Cx, id: NodeId, what: &str, text: &str) -> String {
    if cx.doc.node(id).is_secret() {
        format!("{what} from an environment variable")
    } else {
        let visible: String = text
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        format!("`{}`", clip(&visible, 80))
    }
}

/// The most consecutive results a threshold may ask for.
const MAX_THRESHOLD: u32 = 100;

/// Validates one parsed file: the sections its reader reads.
pub(crate) fn file(doc: &Document, sections: crate::Sections) -> (FileItems, Vec<Diagnostic>) {
    let notifications = sections == crate::Sections::All;
    let cx = Cx::new(doc);
    let mut items = FileItems::default();
    if let Some(raw) = cx.decode::<RawFile>(doc.root) {
        if sections != crate::Sections::Subscriptions {
            let inherited = defaults(&cx, raw.defaults);
            match raw.groups.and_then(|g| cx.get(g)) {
                Some(groups) => {
                    for group in groups {
                        if let Some(g) = cx.get(group) {
                            items.groups.extend(self::group(
                                &cx,
                                g,
                                &inherited,
                                &mut items.declared,
                            ));
                        }
                    }
                }
                None if raw.groups.is_none()
                    && raw.maintenance.is_none()
                    && raw.notifications.is_none()
                    && raw.smtp.is_none()
                    && raw.subscriptions.is_none() =>
                {
                    cx.error(
                        doc.root,
                        "missing key `groups`: expected a list of groups of checks",
                    );
                }
                None => {}
            }
            for window in raw.maintenance.and_then(|m| cx.get(m)).unwrap_or_default() {
                if let Some(w) = cx.get(window) {
                    items.maintenance.extend(maintenance(&cx, w, window.id));
                }
            }
        }
        if notifications && let Some(n) = cx.opt(raw.notifications) {
            (items.channels, items.routes) = notify::notifications(&cx, n);
        }
        if notifications && let Some(f) = raw.smtp {
            let origin = Origin {
                file: cx.doc.file.clone(),
                mark: cx.doc.node(f.id).mark,
            };
            items.smtp = cx
                .get(f)
                .and_then(|raw| notify::smtp(&cx, raw))
                .map(|s| (s, origin));
        }
        if sections != crate::Sections::Checks
            && let Some(f) = raw.subscriptions
        {
            let at = f.id;
            let origin = Origin {
                file: cx.doc.file.clone(),
                mark: cx.doc.node(at).mark,
            };
            items.subscriptions = cx
                .get(f)
                .and_then(|raw| notify::subscriptions(&cx, raw, at))
                .map(|s| (s, origin));
        }
    }
    (items, cx.into_problems())
}

fn defaults(cx: &Cx, raw: Option<Field<RawDefaults>>) -> Inherited {
    let b = BUILT_IN;
    let mut inherited = Inherited {
        interval: Setting::built_in(b.interval),
        timeout: Setting::built_in(b.timeout),
        locations: Setting::built_in(b.locations),
        quorum: Setting::built_in(b.quorum),
        failure_threshold: Setting::built_in(b.failure_threshold),
        success_threshold: Setting::built_in(b.success_threshold),
        reopen_window: Setting::built_in(b.reopen_window),
        public: Setting::built_in(b.public),
        slo: None,
    };
    let Some(raw) = raw.and_then(|r| cx.get(r)) else {
        return inherited;
    };
    override_with(&mut inherited.interval, positive(cx, raw.interval));
    override_with(&mut inherited.timeout, positive(cx, raw.timeout));
    override_with(&mut inherited.locations, locations(cx, raw.locations));
    override_with(&mut inherited.quorum, quorum(cx, raw.quorum));
    override_with(
        &mut inherited.failure_threshold,
        threshold(cx, raw.failure_threshold),
    );
    override_with(
        &mut inherited.success_threshold,
        threshold(cx, raw.success_threshold),
    );
    override_with(
        &mut inherited.reopen_window,
        duration(cx, raw.reopen_window),
    );
    override_with(&mut inherited.public, setting(cx, raw.public));
    if let Some(s) = slo(cx, raw.slo) {
        inherited.slo = Some(s);
    }
    inherited
}

/// A service level objective: a target below 100% and a window of 7, 28
/// or 30 days.
fn slo(cx: &Cx, f: Option<Field<RawSlo>>) -> Option<Slo> {
    let raw = cx.get(f?)?;
    let target = cx.get(raw.target);
    let window = cx.get(raw.window).and_then(|w| {
        let secs = w.0.as_secs();
        let days = (secs % 86_400 == 0 && w.0.subsec_nanos() == 0)
            .then_some(secs / 86_400)
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| Slo::WINDOWS.contains(d));
        if days.is_none() {
            cx.error(
                raw.window.id,
                format!(
                    "expected a window of `7d`, `28d` or `30d`, found `{}`",
                    format_duration(w.0)
                ),
            );
        }
        days
    });
    Some(Slo {
        target_ppm: target?.0,
        window_days: window?,
    })
}

fn override_with<T>(target: &mut Setting<T>, value: Option<Setting<T>>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn setting<T: for<'de> serde::Deserialize<'de>>(
    cx: &Cx,
    f: Option<Field<T>>,
) -> Option<Setting<T>> {
    let f = f?;
    cx.get(f).map(|value| Setting {
        value,
        at: Some(f.id),
    })
}

fn duration(cx: &Cx, f: Option<Field<DurationText>>) -> Option<Setting<Duration>> {
    setting(cx, f).map(|s| Setting {
        value: s.value.0,
        at: s.at,
    })
}

/// A duration that must be more than zero.
fn positive(cx: &Cx, f: Option<Field<DurationText>>) -> Option<Setting<Duration>> {
    let s = duration(cx, f)?;
    if s.value.is_zero() {
        cx.error(s.at?, "expected a duration greater than 0, found `0s`");
        return None;
    }
    Some(s)
}

fn threshold(cx: &Cx, f: Option<Field<u32>>) -> Option<Setting<u32>> {
    let s = setting(cx, f)?;
    if !(1..=MAX_THRESHOLD).contains(&s.value) {
        cx.error(
            s.at?,
            format!(
                "expected a number of results from 1 to {MAX_THRESHOLD}, found `{}`",
                s.value
            ),
        );
        return None;
    }
    Some(s)
}

fn locations(cx: &Cx, f: Option<Field<RawLocations>>) -> Option<Setting<Locations>> {
    let s = setting(cx, f)?;
    let value = match s.value {
        RawLocations::All => Locations::All,
        RawLocations::Count(n @ 1..=1000) => Locations::Count(n as u32),
        RawLocations::Count(n) => {
            cx.error(
                s.at?,
                format!("expected a number of locations from 1 to 1000 or `all`, found `{n}`"),
            );
            return None;
        }
    };
    Some(Setting { value, at: s.at })
}

fn quorum(cx: &Cx, f: Option<Field<RawQuorum>>) -> Option<Setting<Quorum>> {
    let s = setting(cx, f)?;
    let value = match s.value {
        RawQuorum::Majority => Quorum::Majority,
        RawQuorum::Count(n @ 1..=1000) => Quorum::Count(n as u32),
        RawQuorum::Count(n) => {
            cx.error(
                s.at?,
                format!("expected `majority` or a number of locations from 1 to 1000, found `{n}`"),
            );
            return None;
        }
    };
    Some(Setting { value, at: s.at })
}

/// Text shown to the public (a name, a description, a maintenance text):
/// never interpolated, since a `${VAR}` value is a secret and would be
/// published on the page, the API, the badges and the feed.
fn display(cx: &Cx, f: Field<String>) -> Option<String> {
    let text = cx.get(f)?;
    if cx.doc.node(f.id).is_secret() {
        cx.error(
            f.id,
            "`${...}` is not allowed in display text: interpolated values are secrets and this text is published (write `$${` for a literal `${`)",
        );
        return None;
    }
    Some(text)
}

/// An optional [`display`] text.
fn display_opt(cx: &Cx, f: Option<Field<String>>) -> Option<String> {
    display(cx, f?)
}

/// A non-empty string with no line breaks, for names.
fn name(cx: &Cx, f: Field<String>) -> Option<String> {
    let text = display(cx, f)?;
    if text.trim().is_empty() {
        cx.error(f.id, "expected a non-empty name, found an empty string");
        return None;
    }
    if text.contains(['\n', '\r']) {
        cx.error(f.id, "expected a name on one line, found a line break");
        return None;
    }
    Some(text.trim().to_string())
}

fn group(
    cx: &Cx,
    raw: RawGroup,
    inherited: &Inherited,
    declared: &mut Vec<String>,
) -> Option<FileGroup> {
    let group_name = name(cx, raw.name);
    let description = display_opt(cx, raw.description);
    let mut inherited = *inherited;
    if let Some(s) = slo(cx, raw.slo) {
        inherited.slo = Some(s);
    }
    let mut checks = Vec::new();
    // One allocation for the name, shared by every check of the group.
    let shared: Option<std::sync::Arc<str>> = group_name.as_deref().map(Into::into);
    for item in cx.get(raw.checks).unwrap_or_default() {
        if let (Some(c), Some(g)) = (cx.get(item), shared.as_ref()) {
            declared.extend(declared_id(cx, &c, g));
            checks.extend(check(cx, c, item.id, g, &inherited));
        }
    }
    Some(FileGroup {
        name: group_name?,
        description,
        checks,
    })
}

/// The id a check asks for, read without reporting anything.
fn declared_id(cx: &Cx, raw: &RawCheck, group: &str) -> Option<String> {
    let quiet = Cx::new(cx.doc);
    match raw.id {
        Some(f) => quiet.get(f),
        None => CheckId::from_names(group, &quiet.get(raw.name)?).map(|id| id.to_string()),
    }
}

fn check(
    cx: &Cx,
    raw: RawCheck,
    at: NodeId,
    group: &std::sync::Arc<str>,
    inherited: &Inherited,
) -> Option<Check> {
    let check_name = name(cx, raw.name);
    let id = match raw.id {
        Some(f) => display(cx, f).and_then(|text| match CheckId::parse(&text) {
            Ok(id) => Some(id),
            Err(message) => {
                cx.error(f.id, format!("{message}, found `{}`", clip(&text, 70)));
                None
            }
        }),
        None => {
            let n = check_name.as_deref()?;
            let id = CheckId::from_names(group, n);
            if id.is_none() {
                cx.error(
                    raw.name.id,
                    "cannot make an id from the group and check names: set `id`",
                );
            }
            id
        }
    };

    let interval = positive(cx, raw.interval);
    let schedule = raw.schedule.and_then(|f| {
        let text = cx.get(f)?;
        cron(cx, f.id, &text).map(|(schedule, min_gap)| {
            (
                f.id,
                CronSchedule {
                    expression: text,
                    schedule,
                    min_gap,
                },
            )
        })
    });
    if let (Some(i), Some(s)) = (raw.interval, raw.schedule) {
        let _ = i;
        cx.error(s.id, "give either `interval` or `schedule`, not both");
    }
    let (schedule, period) = match (schedule, interval) {
        (Some((at, cron)), _) => {
            let gap = cron.min_gap;
            (
                Schedule::Cron(Box::new(cron)),
                Setting {
                    value: gap,
                    at: Some(at),
                },
            )
        }
        (None, Some(i)) => (Schedule::Interval(i.value), i),
        (None, None) if raw.schedule.is_some() || raw.interval.is_some() => return None,
        (None, None) => (
            Schedule::Interval(inherited.interval.value),
            inherited.interval,
        ),
    };
    let timeout = positive(cx, raw.timeout).unwrap_or(inherited.timeout);
    if timeout.value >= period.value {
        let what = match schedule {
            Schedule::Interval(_) => "the interval",
            Schedule::Cron(_) => "the shortest gap of the schedule",
        };
        cx.error(
            timeout.at.or(period.at).unwrap_or(at),
            format!(
                "`timeout` must be less than {what} ({}), found `{}`",
                format_duration(period.value),
                format_duration(timeout.value)
            ),
        );
    }

    let locations = locations(cx, raw.locations).unwrap_or(inherited.locations);
    let quorum = quorum(cx, raw.quorum).unwrap_or(inherited.quorum);
    if let (Locations::Count(l), Quorum::Count(q)) = (locations.value, quorum.value)
        && q > l
    {
        cx.error(
            quorum.at.or(locations.at).unwrap_or(at),
            format!("`quorum` must be at most `locations` ({l}), found `{q}`"),
        );
    }
    let failure_threshold =
        threshold(cx, raw.failure_threshold).unwrap_or(inherited.failure_threshold);
    let success_threshold =
        threshold(cx, raw.success_threshold).unwrap_or(inherited.success_threshold);
    let reopen_window = duration(cx, raw.reopen_window).unwrap_or(inherited.reopen_window);
    let public = setting(cx, raw.public).unwrap_or(inherited.public);
    let description = display_opt(cx, raw.description);
    let (slo, slo_valid) = match raw.slo {
        Some(f) => {
            let own = self::slo(cx, Some(f));
            (own, own.is_some())
        }
        None => (inherited.slo, true),
    };
    let probe = probe::kind(cx, &raw, at, timeout.value);

    let node = cx.doc.node(at);
    let hash_input = serde_json::json!({
        "check": cx.doc.canonical(at),
        "group": &**group,
        "inherited": [
            period.value.as_micros().to_string(), timeout.value.as_micros().to_string(),
            format!("{:?}", locations.value), format!("{:?}", quorum.value),
            failure_threshold.value, success_threshold.value,
            reopen_window.value.as_micros().to_string(), public.value,
        ],
    });
    let digest = Sha256::digest(hash_input.to_string().as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    let config_hash = ConfigHash(first);

    if !slo_valid {
        return None;
    }
    Some(Check {
        id: id?,
        name: check_name?,
        group: group.clone(),
        description,
        public: public.value,
        schedule,
        timeout: timeout.value,
        locations: locations.value,
        quorum: quorum.value,
        failure_threshold: failure_threshold.value,
        success_threshold: success_threshold.value,
        reopen_window: reopen_window.value,
        slo,
        probe: probe?,
        config_hash,
        secrets: Secrets::new(cx.doc.secrets_below(at), cx.doc.secret_paths_below(at)),
        origin: Origin {
            file: cx.doc.file.clone(),
            mark: node.mark,
        },
    })
}

/// A cron expression (6 fields with seconds, 7 with a year, or a 5-field
/// crontab line meaning second 0) and the shortest gap between its slots.
fn cron(cx: &Cx, at: NodeId, text: &str) -> Option<(cron::Schedule, Duration)> {
    let fields = text.split_whitespace().count();
    let expression = match fields {
        5 => format!("0 {}", text.trim()),
        6 | 7 => text.trim().to_string(),
        n => {
            cx.error(
                at,
                format!(
                    "expected a cron expression of 5 fields (crontab), or 6 with seconds first, found {n} field{}",
                    if n == 1 { "" } else { "s" }
                ),
            );
            return None;
        }
    };
    let schedule = match cron::Schedule::from_str(&expression) {
        Ok(s) => s,
        Err(e) => {
            // The crate draws a caret over several lines; its last line says what is wrong.
            let text_e = e.to_string();
            let why = text_e
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            cx.error(
                at,
                format!(
                    "expected a cron expression, found `{}`: {why}",
                    clip(text, 60)
                ),
            );
            return None;
        }
    };
    // A fixed reference keeps validation pure; the gap pattern repeats.
    let reference = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single()?;
    let slots: Vec<DateTime<Utc>> = schedule.after(&reference).take(500).collect();
    if slots.is_empty() {
        cx.error(
            at,
            format!("the cron expression `{}` never fires", clip(text, 60)),
        );
        return None;
    }
    let min_gap = slots
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
        .unwrap_or(Duration::from_secs(365 * 86_400));
    Some((schedule, min_gap))
}

fn maintenance(cx: &Cx, raw: RawMaintenance, at: NodeId) -> Option<FileMaintenance> {
    let window_name = name(cx, raw.name);
    let description = display_opt(cx, raw.description);
    let mut references = Vec::new();
    if let Some(ids) = cx.get(raw.checks) {
        if ids.is_empty() {
            cx.error(
                raw.checks.id,
                "expected at least one check id, found an empty list",
            );
        }
        for f in ids {
            if let Some(id) = cx.get(f) {
                let node = cx.doc.node(f.id);
                references.push((
                    id,
                    Origin {
                        file: cx.doc.file.clone(),
                        mark: node.mark,
                    },
                ));
            }
        }
    }
    let length = positive(cx, Some(raw.duration));
    let timezone = match raw.timezone {
        None => Some(chrono_tz::UTC),
        Some(f) => cx.get(f).and_then(|text| match text.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                cx.error(f.id, format!("expected an IANA time zone such as `Europe/Berlin` or `UTC`, found `{}`", clip(&text, 60)));
                None
            }
        }),
    };
    let when = match (raw.start, raw.schedule) {
        (Some(_), Some(s)) => {
            cx.error(
                s.id,
                "give either `start` (one-off) or `schedule` (recurring), not both",
            );
            None
        }
        (None, None) => {
            cx.error(
                at,
                "missing key `start` or `schedule`: a window needs one of them",
            );
            None
        }
        (Some(f), None) => {
            let text = cx.get(f)?;
            start_time(cx, f.id, &text, timezone?).map(MaintenanceTime::Once)
        }
        (None, Some(f)) => {
            let text = cx.get(f)?;
            cron(cx, f.id, &text).and_then(|(schedule, _)| {
                Some(MaintenanceTime::Recurring {
                    expression: text,
                    schedule,
                    timezone: timezone?,
                })
            })
        }
    };
    Some(FileMaintenance {
        window: MaintenanceWindow {
            name: window_name?,
            description,
            checks: Vec::new(),
            when: when?,
            duration: length?.value,
            origin: Origin {
                file: cx.doc.file.clone(),
                mark: cx.doc.node(at).mark,
            },
        },
        references,
    })
}

/// RFC 3339 with an offset, or a local date and time read in `timezone`.
fn start_time(cx: &Cx, at: NodeId, text: &str, timezone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok());
    let Some(local) = local else {
        cx.error(
            at,
            format!("expected a time such as `2026-12-01T02:00:00Z` or `2026-12-01T02:00` (in `timezone`), found `{}`", clip(text, 60)),
        );
        return None;
    };
    match timezone.from_local_datetime(&local).single() {
        Some(t) => Some(t.with_timezone(&Utc)),
        None => {
            cx.error(at, format!("`{text}` does not exist or is ambiguous in {timezone} (a daylight-saving change): give an offset"));
            None
        }
    }
}
