//! The dashboard's read-only queries, on PostgreSQL or SQLite. One SQL text
//! serves both: instants are selected as integer milliseconds and compared
//! through [`Reader::at`], and every other column is cast to a type both
//! drivers decode the same way.

use ingest::rollup::Rollup;
use ingest::state::Millis;
use ingest::status::Status;
use ingest::store::sql::{Arg, Dialect, Pool as SqlPool};
use sqlx::{FromRow, PgPool, SqlitePool, postgres::PgRow, sqlite::SqliteRow};

/// A read-only connection to the store.
#[derive(Clone, Debug)]
pub enum Reader {
    /// PostgreSQL, through the read-only role.
    Pg(PgPool),
    /// The SQLite file of standalone mode.
    Sqlite(SqlitePool),
}

/// Why a read failed: the database is down or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct ReadError(#[from] sqlx::Error);

/// A public check, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRow {
    /// The internal id.
    pub id: i64,
    /// The YAML id: the one in URLs.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its group's name ("" for none).
    pub group: String,
    /// Its group's description, if the YAML gives one.
    pub group_description: Option<String>,
    /// Its description, if any.
    pub description: Option<String>,
    /// http, tcp, tls or dns.
    pub kind: String,
    /// Its place in the YAML.
    pub position: i64,
    /// When ingest first knew it.
    pub created_at: Millis,
    /// Its current status.
    pub status: Status,
    /// Since when.
    pub status_since: Option<Millis>,
    /// Its probe interval.
    pub interval_ms: i64,
    /// Each location's newest sample.
    pub latest: Vec<ingest::status::Sample>,
    /// The earliest certificate expiry in the newest TLS facts, if any.
    pub cert_not_after: Option<Millis>,
    /// How many locations it asks for (`None` until catalog sync wrote it).
    pub locations: Option<config::defaults::Locations>,
    /// Up to when ingest has decided its status; nothing after is known.
    pub decided_through: Option<Millis>,
    /// Its service level objective, if the YAML gives one.
    pub slo: Option<config::catalog::Slo>,
}

/// An incident, as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct IncidentRow {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// minor or major.
    pub impact: String,
    /// investigating, identified, monitoring or resolved.
    pub state: String,
    /// Opened by ingest.
    pub auto: bool,
    /// When it started.
    pub started_at: Millis,
    /// When it was resolved.
    pub resolved_at: Option<Millis>,
    /// Once resolved, how long it was open: only its open periods, so a
    /// reopened incident does not count the time it was resolved.
    pub open_ms: Option<Millis>,
    /// The slugs of the checks it concerns.
    #[sqlx(skip)]
    pub checks: Vec<String>,
}

/// One update of an incident.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UpdateRow {
    /// The incident it belongs to.
    pub incident: i64,
    /// When it was posted.
    pub at: Millis,
    /// The state it set.
    pub state: String,
    /// Its text.
    pub message: String,
    /// Who posted it.
    pub author: String,
}

/// A maintenance window that has not ended.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The slugs of the checks it covers.
    pub checks: Vec<String>,
    /// When it starts.
    pub starts_at: Millis,
    /// When it ends.
    pub ends_at: Millis,
    /// When it was made (synced from the config, or posted).
    pub created_at: Millis,
}

/// A probe agent.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AgentRow {
    /// Its internal id.
    pub id: i64,
    /// Its name (the node name): internal, never shown.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// What the public page calls its location (`--location-label`); empty
    /// when it set none.
    pub label: String,
    /// When ingest first heard from it.
    pub first_seen: Millis,
    /// When ingest last heard from it.
    pub last_seen: Millis,
}

impl AgentRow {
    /// As ingest's electorate sees it.
    pub fn member(&self) -> ingest::status::Member {
        ingest::status::Member {
            key: self.id,
            id: self.name.clone(),
            zone: self.zone.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        }
    }
}

/// One location's mean phases in one bucket (see [`Reader::location_phases`]).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct LocationPhases {
    /// The agent's internal id.
    pub agent: i64,
    /// The bucket's start.
    pub bucket: Millis,
    /// How many results it holds.
    pub n: i64,
    /// Mean DNS time, µs.
    pub dns: Option<f64>,
    /// Mean connect time, µs.
    pub connect: Option<f64>,
    /// Mean TLS handshake time, µs.
    pub tls: Option<f64>,
    /// Mean time to first byte, µs.
    pub ttfb: Option<f64>,
    /// Mean transfer time, µs.
    pub transfer: Option<f64>,
}

/// Which incidents a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentFilter {
    /// Not resolved.
    Open,
    /// Resolved.
    Resolved,
    /// Both.
    All,
}

/// Public: the incident concerns a public check (retired ones included: a
/// check removed from the YAML keeps its history), or no check at all (an
/// operator's general incident).
const PUBLIC_INCIDENT: &str =
    "(NOT EXISTS (SELECT 1 FROM incident_checks x WHERE x.incident_id = i.id)
      OR EXISTS (SELECT 1 FROM incident_checks x JOIN checks c ON c.id = x.check_id
                 WHERE x.incident_id = i.id AND c.public AND NOT c.placeholder))";

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URL of a database we read.
    #[error("expected a postgres:// or sqlite:// URL, found one starting {0:?}")]
    Scheme(String),
    /// The URL did not parse.
    #[error("the database URL does not parse: {0}")]
    Parse(sqlx::Error),
}

/// A pool of either database.
#[derive(Debug)]
pub(crate) enum Pool {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// A lazily connecting pool over `url` (`postgres://` or `sqlite://`), with
/// the database deadlines of `limits` (see [`ingest::store::sql::pg_pool`]);
/// PostgreSQL connections are named `app`, and SQLite is opened read-only
/// when `read_only`.
pub(crate) fn lazy_pool(
    url: &str,
    max_connections: u32,
    app: &str,
    read_only: bool,
    limits: ingest::store::sql::Limits,
) -> Result<Pool, UrlError> {
    use std::str::FromStr;
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Ok(Pool::Pg(
            ingest::store::sql::pg_pool(url, max_connections, app, limits)
                .map_err(UrlError::Parse)?,
        )),
        "sqlite" => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(UrlError::Parse)?
                .read_only(read_only)
                .busy_timeout(std::time::Duration::from_secs(5));
            Ok(Pool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(std::time::Duration::from_secs(3))
                    .connect_lazy_with(options),
            ))
        }
        _ => Err(UrlError::Scheme(scheme.chars().take(16).collect())),
    }
}

impl Reader {
    /// A lazily connecting reader: the dashboard starts (and serves what it
    /// has) while the database is down. SQLite is opened read-only. Only the
    /// URL's scheme is ever echoed in an error.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        limits: ingest::store::sql::Limits,
    ) -> Result<Reader, UrlError> {
        Ok(
            match lazy_pool(url, max_connections, "statuspage-dashboard", true, limits)? {
                Pool::Pg(p) => Reader::Pg(p),
                Pool::Sqlite(p) => Reader::Sqlite(p),
            },
        )
    }

    /// Its dialect.
    fn d(&self) -> Dialect {
        self.pool().dialect()
    }

    fn pool(&self) -> SqlPool {
        match self {
            Reader::Pg(p) => SqlPool::Pg(p.clone()),
            Reader::Sqlite(p) => SqlPool::Sqlite(p.clone()),
        }
    }

    async fn rows<T>(&self, sql: &str, binds: &[i64]) -> Result<Vec<T>, ReadError>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let args: Vec<Arg> = binds.iter().map(|b| Arg::Int(*b)).collect();
        Ok(self.pool().rows(sql, &args).await?)
    }

    /// A cheap round trip: readiness.
    pub async fn ping(&self) -> Result<(), ReadError> {
        let _: Vec<(i64,)> = self.rows("SELECT CAST(1 AS BIGINT)", &[]).await?;
        Ok(())
    }

    /// The public checks, in page order (retired checks and placeholders
    /// are never public).
    pub async fn public_checks(&self) -> Result<Vec<CheckRow>, ReadError> {
        let sql = format!(
            "SELECT {} AS id, slug, name, group_name, group_description, description, kind,
                    {} AS position,
                    {} AS created_at, status, {} AS status_since, {} AS interval_ms, latest,
                    {} AS cert_not_after, {} AS locations, {} AS decided_through,
                    {} AS slo_target_ppm, {} AS slo_window_days
             FROM checks WHERE public AND NOT placeholder AND retired_at IS NULL
             ORDER BY position, id",
            self.d().int("id"),
            self.d().int("position"),
            self.d().ms("created_at"),
            self.d().ms("status_since"),
            self.d().int("interval_ms"),
            self.d().ms("cert_not_after"),
            self.d().int("locations"),
            self.d().ms("decided_through"),
            self.d().int("slo_target_ppm"),
            self.d().int("slo_window_days"),
        );
        #[derive(sqlx::FromRow)]
        struct Stored {
            id: i64,
            slug: String,
            name: String,
            group_name: String,
            group_description: Option<String>,
            description: Option<String>,
            kind: String,
            position: i64,
            created_at: i64,
            status: String,
            status_since: Option<i64>,
            interval_ms: i64,
            latest: Option<Vec<u8>>,
            cert_not_after: Option<i64>,
            locations: Option<i64>,
            decided_through: Option<i64>,
            slo_target_ppm: Option<i64>,
            slo_window_days: Option<i64>,
        }
        let rows: Vec<Stored> = self.rows(&sql, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|r| CheckRow {
                id: r.id,
                slug: r.slug,
                name: r.name,
                group: r.group_name,
                group_description: r.group_description,
                description: r.description,
                kind: r.kind,
                position: r.position,
                created_at: r.created_at,
                status: Status::parse(&r.status).unwrap_or(Status::Unknown),
                status_since: r.status_since,
                interval_ms: r.interval_ms,
                latest: r
                    .latest
                    .as_deref()
                    .and_then(ingest::store::decode_latest)
                    .unwrap_or_default(),
                cert_not_after: r.cert_not_after,
                locations: r.locations.map(|n| match n {
                    n if n > 0 => config::defaults::Locations::Count(n as u32),
                    _ => config::defaults::Locations::All,
                }),
                decided_through: r.decided_through,
                slo: ingest::store::stored_slo(r.slo_target_ppm, r.slo_window_days),
            })
            .collect())
    }

    /// The status changes of `checks` from `from` on, with the last one
    /// before `from` (the status `from` starts in), sorted by check and time.
    pub async fn changes(
        &self,
        checks: &[i64],
        from: Millis,
    ) -> Result<Vec<(i64, Millis, Status)>, ReadError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {}, {}, s.status FROM status_changes s
             WHERE s.check_id IN ({})
               AND s.at >= COALESCE((SELECT MAX(t.at) FROM status_changes t
                                     WHERE t.check_id = s.check_id AND t.at < {}), {})
             ORDER BY s.check_id, s.at",
            self.d().int("s.check_id"),
            self.d().ms("s.at"),
            id_list(checks),
            self.d().at(1),
            self.d().at(1),
        );
        let rows: Vec<(i64, i64, String)> = self.rows(&sql, &[from]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(c, at, s)| Some((c, at, Status::parse(&s)?)))
            .collect())
    }

    /// Each location's mean of each phase (dns, connect, tls, ttfb,
    /// transfer; µs, `None` where no result had it) per `step`-ms bucket of
    /// `check`'s raw results from `from` on: (agent id, bucket start,
    /// means), sorted by agent and bucket. Means, not medians: the phases
    /// of a mean add up to the mean total, so they stack honestly.
    pub async fn location_phases(
        &self,
        check: i64,
        from: Millis,
        step: Millis,
    ) -> Result<Vec<LocationPhases>, ReadError> {
        let sql = format!(
            "SELECT agent, bucket, {} AS n,
                    CAST(AVG(dns_us) AS DOUBLE PRECISION) AS dns,
                    CAST(AVG(connect_us) AS DOUBLE PRECISION) AS connect,
                    CAST(AVG(tls_us) AS DOUBLE PRECISION) AS tls,
                    CAST(AVG(ttfb_us) AS DOUBLE PRECISION) AS ttfb,
                    CAST(AVG(transfer_us) AS DOUBLE PRECISION) AS transfer
             FROM (SELECT {} AS agent, ({} / {step}) * {step} AS bucket,
                          dns_us, connect_us, tls_us, ttfb_us, transfer_us
                   FROM results WHERE check_id = {} AND scheduled_at >= {}) r
             GROUP BY agent, bucket ORDER BY agent, bucket",
            self.d().int("COUNT(*)"),
            self.d().int("agent_id"),
            self.d().ms("scheduled_at"),
            self.d().p(1),
            self.d().at(2),
        );
        self.rows(&sql, &[check, from]).await
    }

    /// The WHERE clause of a listing and its parameters, numbered from
    /// `first`.
    fn incident_where(
        &self,
        filter: IncidentFilter,
        since: Option<Millis>,
        only_check: Option<i64>,
        first: u8,
    ) -> (String, Vec<i64>) {
        let mut clauses = vec![match filter {
            IncidentFilter::Open => "i.state <> 'resolved'".to_string(),
            IncidentFilter::Resolved => "i.state = 'resolved'".to_string(),
            IncidentFilter::All => "1 = 1".to_string(),
        }];
        clauses.push(PUBLIC_INCIDENT.to_string());
        let mut binds = Vec::new();
        if let Some(since) = since {
            let n = first + binds.len() as u8;
            clauses.push(format!(
                "(i.resolved_at IS NULL OR i.resolved_at > {})",
                self.d().at(n)
            ));
            binds.push(since);
        }
        if let Some(check) = only_check {
            let n = first + binds.len() as u8;
            clauses.push(format!(
                "EXISTS (SELECT 1 FROM incident_checks x WHERE x.incident_id = i.id AND x.check_id = {})",
                self.d().p(n)
            ));
            binds.push(check);
        }
        (clauses.join(" AND "), binds)
    }

    /// Public incidents matching `filter`, newest first, `limit` from
    /// `offset`; with `since`, only those not resolved before it; with
    /// `only_check`, only those concerning that check.
    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        since: Option<Millis>,
        only_check: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<IncidentRow>, ReadError> {
        let (clause, more) = self.incident_where(filter, since, only_check, 3);
        let sql = format!(
            "SELECT {} FROM incidents i
             WHERE {clause} ORDER BY i.started_at DESC, i.id DESC LIMIT {} OFFSET {}",
            self.incident_columns(),
            self.d().p(1),
            self.d().p(2),
        );
        let mut binds = vec![limit, offset];
        binds.extend(more);
        let rows: Vec<IncidentRow> = self.rows(&sql, &binds).await?;
        self.with_checks(rows).await
    }

    /// How many public incidents match `filter`.
    pub async fn incident_count(&self, filter: IncidentFilter) -> Result<i64, ReadError> {
        let (clause, binds) = self.incident_where(filter, None, None, 1);
        let sql = format!(
            "SELECT {} FROM incidents i WHERE {clause}",
            self.d().int("COUNT(*)")
        );
        let rows: Vec<(i64,)> = self.rows(&sql, &binds).await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }

    /// The columns of an [`IncidentRow`], from `incidents i`. Its open
    /// time counts only its open periods (a reopened incident's earlier
    /// periods, then its last one).
    fn incident_columns(&self) -> String {
        format!(
            "{} AS id, i.title, i.impact, i.state, i.auto, {} AS started_at,
             {} AS resolved_at, i.earlier_open_ms + {} - {} AS open_ms",
            self.d().int("i.id"),
            self.d().ms("i.started_at"),
            self.d().ms("i.resolved_at"),
            self.d().ms("i.resolved_at"),
            self.d().ms("COALESCE(i.reopened_at, i.started_at)"),
        )
    }

    async fn with_checks(&self, mut rows: Vec<IncidentRow>) -> Result<Vec<IncidentRow>, ReadError> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let links = self.incident_checks(&ids).await?;
        for r in &mut rows {
            r.checks = links
                .iter()
                .filter(|l| l.0 == r.id)
                .map(|l| l.1.clone())
                .collect();
        }
        Ok(rows)
    }

    /// One public incident by id.
    pub async fn incident(&self, id: i64) -> Result<Option<IncidentRow>, ReadError> {
        let sql = format!(
            "SELECT {} FROM incidents i
             WHERE i.id = {} AND {PUBLIC_INCIDENT}",
            self.incident_columns(),
            self.d().p(1),
        );
        let rows: Vec<IncidentRow> = self.rows(&sql, &[id]).await?;
        Ok(self.with_checks(rows).await?.into_iter().next())
    }

    /// The ids of every public incident.
    pub async fn public_incident_ids(&self) -> Result<Vec<i64>, ReadError> {
        let sql = format!(
            "SELECT {} FROM incidents i WHERE {PUBLIC_INCIDENT} ORDER BY i.id",
            self.d().int("i.id")
        );
        let rows: Vec<(i64,)> = self.rows(&sql, &[]).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The public checks' slugs of each incident.
    async fn incident_checks(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, ReadError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {}, c.slug FROM incident_checks x JOIN checks c ON c.id = x.check_id
             WHERE x.incident_id IN ({}) AND c.public AND NOT c.placeholder
             ORDER BY x.incident_id, c.position, c.id",
            self.d().int("x.incident_id"),
            id_list(ids)
        );
        self.rows(&sql, &[]).await
    }

    /// The updates of these incidents, oldest first.
    pub async fn updates(&self, ids: &[i64]) -> Result<Vec<UpdateRow>, ReadError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} AS incident, {} AS at, state, message, author FROM incident_updates
             WHERE incident_id IN ({}) ORDER BY incident_id, at, id",
            self.d().int("incident_id"),
            self.d().ms("at"),
            id_list(ids)
        );
        self.rows(&sql, &[]).await
    }

    /// Maintenance windows that end after `now`, soonest first.
    pub async fn windows(&self, now: Millis) -> Result<Vec<WindowRow>, ReadError> {
        let sql = format!(
            "SELECT {} AS id, name, description, {} AS checks, {} AS starts_at, {} AS ends_at,
                    {} AS created_at
             FROM maintenance_windows WHERE ends_at > {} ORDER BY starts_at, id LIMIT 50",
            self.d().int("id"),
            self.d().json_list("checks"),
            self.d().ms("starts_at"),
            self.d().ms("ends_at"),
            self.d().ms("created_at"),
            self.d().at(1),
        );
        #[derive(sqlx::FromRow)]
        struct Stored {
            id: i64,
            name: String,
            description: Option<String>,
            checks: String,
            starts_at: i64,
            ends_at: i64,
            created_at: i64,
        }
        let rows: Vec<Stored> = self.rows(&sql, &[now]).await?;
        Ok(rows
            .into_iter()
            .map(|r| WindowRow {
                id: r.id,
                name: r.name,
                description: r.description,
                checks: serde_json::from_str(&r.checks).unwrap_or_default(),
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                created_at: r.created_at,
            })
            .collect())
    }

    /// Every agent.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, ReadError> {
        let sql = format!(
            "SELECT {} AS id, name, zone, label, {} AS first_seen, {} AS last_seen
             FROM agents ORDER BY id",
            self.d().int("id"),
            self.d().ms("first_seen"),
            self.d().ms("last_seen"),
        );
        self.rows(&sql, &[]).await
    }

    /// The rollups of `level` for `checks` from `from` on: `(check, bucket,
    /// rollup)`, by check and bucket.
    pub async fn rollups(
        &self,
        level: ingest::rollup::Level,
        checks: &[i64],
        from: Millis,
    ) -> Result<Vec<(i64, Millis, Rollup)>, ReadError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} AS check_id, {} AS bucket, {} AS count, {} AS up, measures FROM rollups
             WHERE level = {} AND check_id IN ({}) AND bucket >= {}
             ORDER BY check_id, bucket",
            self.d().int("check_id"),
            self.d().ms("bucket"),
            self.d().int("count"),
            self.d().int("up"),
            self.d().p(1),
            id_list(checks),
            self.d().at(2),
        );
        #[derive(sqlx::FromRow)]
        struct Stored {
            check_id: i64,
            bucket: i64,
            count: i64,
            up: i64,
            measures: Vec<u8>,
        }
        let rows: Vec<Stored> = self.rows(&sql, &[i64::from(level.code()), from]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let rollup = Rollup::decode(
                    u32::try_from(r.count).ok()?,
                    u32::try_from(r.up).ok()?,
                    &r.measures,
                )?;
                Some((r.check_id, r.bucket, rollup))
            })
            .collect())
    }
}

/// Integer ids inlined into SQL: they are ours (read from the database),
/// never the user's text.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}
