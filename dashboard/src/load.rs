//! Reads what each page needs, and assembles it with [`crate::model`].

use crate::model::{self, Board, CheckDetail, DAY_MS, Rows};
use crate::read::{IncidentFilter, IncidentRow, ReadError, Reader, UpdateRow};
use ingest::rollup::{Level, Rollup};
use ingest::state::Millis;

/// The phase graphs' bucket: 15 minutes.
const PHASE_STEP: Millis = 15 * 60_000;

/// How many incidents a check's page lists.
const CHECK_INCIDENTS: i64 = 50;

/// Where the history the pages need starts: the 90-day window or the
/// oldest day of the bar, whichever is earlier.
fn history_from(now: Millis) -> Millis {
    model::bar_from(now).min(now - 90 * DAY_MS)
}

/// The public check with this id, if there is one.
async fn public_check(
    reader: &Reader,
    slug: &str,
) -> Result<Option<crate::read::CheckRow>, ReadError> {
    Ok(reader
        .public_checks()
        .await?
        .into_iter()
        .find(|c| c.slug == slug))
}

/// The front page's and `/api/v1/status`'s data.
pub async fn board(reader: &Reader, now: Millis) -> Result<Board, ReadError> {
    Ok(model::board(rows(reader, now).await?, now))
}

/// What the front page and the group pages show: [`board`] without the
/// last day's latency, which neither shows (at 1,000 checks those 24,000
/// hourly rollups were most of what the page read).
pub async fn front_page(reader: &Reader, now: Millis) -> Result<Board, ReadError> {
    Ok(model::board(rows_for(reader, now, false).await?, now))
}

/// The rows behind [`board`].
pub async fn rows(reader: &Reader, now: Millis) -> Result<Rows, ReadError> {
    rows_for(reader, now, true).await
}

/// The rows behind [`board`], the hourly rollups only with `latency`.
async fn rows_for(reader: &Reader, now: Millis, latency: bool) -> Result<Rows, ReadError> {
    let checks = reader.public_checks().await?;
    let ids: Vec<i64> = checks.iter().map(|c| c.id).collect();
    let from = history_from(now);
    let changes = reader.changes(&ids, from).await?;
    let incidents = reader
        .incidents(IncidentFilter::All, Some(from), None, 10_000, 0)
        .await?;
    let open = reader
        .incidents(IncidentFilter::Open, None, None, 100, 0)
        .await?;
    let open_ids: Vec<i64> = open.iter().map(|i| i.id).collect();
    let updates = reader.updates(&open_ids).await?;
    let windows = reader.windows(now).await?;
    let hours = if latency {
        reader.rollups(Level::Hour, &ids, now - DAY_MS).await?
    } else {
        Vec::new()
    };
    let agents = reader.agents().await?;
    Ok(Rows {
        checks,
        changes,
        incidents,
        open,
        updates,
        windows,
        hours,
        agents,
    })
}

/// One public check's page data; `None` for an unknown or private id.
pub async fn check(
    reader: &Reader,
    slug: &str,
    now: Millis,
) -> Result<Option<CheckDetail>, ReadError> {
    let Some(row) = public_check(reader, slug).await? else {
        return Ok(None);
    };
    let ids = [row.id];
    let from = history_from(now);
    let changes = reader.changes(&ids, from).await?;
    let incidents = reader
        .incidents(IncidentFilter::All, None, Some(row.id), CHECK_INCIDENTS, 0)
        .await?;
    let minutes = reader.rollups(Level::Minute, &ids, now - DAY_MS).await?;
    let hours = reader.rollups(Level::Hour, &ids, now - 7 * DAY_MS).await?;
    let agents = reader.agents().await?;
    let by_location = reader
        .location_phases(row.id, now - DAY_MS, PHASE_STEP)
        .await?;
    let minute_refs: Vec<(Millis, &Rollup)> = minutes.iter().map(|m| (m.1, &m.2)).collect();
    let hour_refs = model::hours_and_unfolded_minutes(&hours, &minutes);
    let summary = model::summary(&row, &changes, &incidents, &hours, &agents, now);
    Ok(Some(CheckDetail {
        locations: model::location_list(&row.latest, &agents, now),
        hour: model::series(&minute_refs, now - 3_600_000, now, 60_000),
        day: model::series(&minute_refs, now - DAY_MS, now, 15 * 60_000),
        week: model::series(&hour_refs, now - 7 * DAY_MS, now, 3_600_000),
        phases: model::phases(&minute_refs),
        phase_series: model::phase_series(&minute_refs, now - DAY_MS, now, PHASE_STEP),
        location_phases: model::location_phase_series(
            &by_location,
            &agents,
            now - DAY_MS,
            now,
            PHASE_STEP,
        ),
        incidents,
        summary,
    }))
}

/// One public check's status and uptime (for its badges); `None` for an
/// unknown or private id.
pub async fn check_summary(
    reader: &Reader,
    slug: &str,
    now: Millis,
) -> Result<Option<model::CheckSummary>, ReadError> {
    let Some(row) = public_check(reader, slug).await? else {
        return Ok(None);
    };
    let from = history_from(now);
    let changes = reader.changes(&[row.id], from).await?;
    let agents = reader.agents().await?;
    Ok(Some(model::summary(&row, &changes, &[], &[], &agents, now)))
}

/// A page of incidents with their updates, and how many match in all.
pub async fn incidents(
    reader: &Reader,
    filter: IncidentFilter,
    per_page: i64,
    page: i64,
) -> Result<(Vec<(IncidentRow, Vec<UpdateRow>)>, i64), ReadError> {
    let total = reader.incident_count(filter).await?;
    let rows = reader
        .incidents(filter, None, None, per_page, (page - 1) * per_page)
        .await?;
    Ok((with_updates(reader, rows).await?, total))
}

/// Incidents paired with their updates.
pub async fn with_updates(
    reader: &Reader,
    rows: Vec<IncidentRow>,
) -> Result<Vec<(IncidentRow, Vec<UpdateRow>)>, ReadError> {
    let ids: Vec<i64> = rows.iter().map(|i| i.id).collect();
    let updates = reader.updates(&ids).await?;
    Ok(rows
        .into_iter()
        .map(|i| {
            let mine = updates
                .iter()
                .filter(|u| u.incident == i.id)
                .cloned()
                .collect();
            (i, mine)
        })
        .collect())
}
