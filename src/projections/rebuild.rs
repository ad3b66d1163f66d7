//! Rebuilding the read models from the log, and verifying the live ones against it.
//!
//! Both walk the whole log in device order, page by page, and fold each device's events
//! with [`crate::domain::fold::fold`] — the same function the live projection applies.
//! A rebuild writes into `*_next` tables in batches and then swaps them in with one
//! transaction, so readers see the old tables until the switch and never a half-built
//! one. Verify compares, device by device, what the log implies with what the live
//! tables say, up to each device's checkpoint (so in-flight writes are not reported).

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::Pool;

use super::read::{AlertRow, EpisodeRow};
use super::{Projector, PROJECTION_TABLES};
use crate::domain::fold::{fold, AlertState, Episode};
use crate::domain::{DeviceEvent, FoldConfig, Status};
use crate::engine_impl;
use crate::store::{Db, EventLog, StoreError, StoredEvent, TrailFilter, DEVICE_STREAM};
use crate::with_pool;

const LOG_PAGE: i64 = 5000;
const WRITE_BATCH: usize = 500;

/// What the log implies for one device.
#[derive(Debug, Default)]
pub struct DeviceProjection {
    pub device_id: String,
    pub alerts: Vec<(AlertRow, AlertState)>,
    pub episodes: Vec<(String, Episode)>,
    pub firing_count: i64,
    pub stream_version: i64,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

pub fn alert_row(
    device_id: &str,
    alert_key: &str,
    state: &AlertState,
    stream_version: i64,
) -> AlertRow {
    AlertRow {
        device_id: device_id.to_string(),
        alert_key: alert_key.to_string(),
        status: state.status.as_str().to_string(),
        severity: state.severity.map(|s| s.as_str().to_string()),
        summary: state.summary.clone(),
        since: state.since,
        last_alarm_at: state.last_alarm_at,
        last_recovery_at: state.last_recovery_at,
        episode_count: state.episode_count,
        alarm_count: state.alarm_count,
        recovery_count: state.recovery_count,
        stray_recovery_count: state.stray_recovery_count,
        stream_version,
    }
}

pub fn episode_row(episode: &Episode) -> EpisodeRow {
    EpisodeRow {
        episode_number: episode.number,
        opened_at: episode.opened_at,
        closed_at: episode.closed_at,
        duration_ms: episode.duration_ms(),
        alarm_count: episode.alarm_count,
        severity: episode.severity.map(|s| s.as_str().to_string()),
        summary: episode.summary.clone(),
        opened_by_event_id: episode.opened_by.clone(),
        closed_by_event_id: episode.closed_by.clone(),
        reconciled: episode.reconciled,
    }
}

/// Fold a device's events (all of its stream, in stream order) into its read-model rows.
pub fn project_device(
    device_id: &str,
    events: &[StoredEvent],
    config: &FoldConfig,
) -> DeviceProjection {
    let mut by_alert: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for stored in events {
        by_alert
            .entry(stored.event.alert_key.as_str())
            .or_default()
            .push(stored);
    }
    let mut projection = DeviceProjection {
        device_id: device_id.to_string(),
        stream_version: events.last().map(|e| e.stream_version).unwrap_or(0),
        last_recorded_at: events.last().map(|e| e.event.recorded_at),
        ..Default::default()
    };
    for (alert_key, stored) in by_alert {
        let version = stored.iter().map(|e| e.stream_version).max().unwrap_or(0);
        let events: Vec<_> = stored.into_iter().map(|e| e.event.clone()).collect();
        let folded = fold(&events, config);
        if folded.state.status == Status::Firing {
            projection.firing_count += 1;
        }
        projection.alerts.push((
            alert_row(device_id, alert_key, &folded.state, version),
            folded.state,
        ));
        projection.episodes.extend(
            folded
                .episodes
                .into_iter()
                .map(|e| (alert_key.to_string(), e)),
        );
    }
    projection
}

#[derive(sqlx::FromRow)]
struct LogRow {
    aggregate_id: String,
    sequence: i64,
    payload: Json<DeviceEvent>,
}

#[derive(sqlx::FromRow)]
struct LiveAlert {
    #[sqlx(flatten)]
    row: AlertRow,
    fold_state: Json<AlertState>,
}

#[derive(sqlx::FromRow)]
struct LiveEpisode {
    alert_key: String,
    #[sqlx(flatten)]
    row: EpisodeRow,
}

/// The live rows of one device.
pub struct LiveDevice {
    pub checkpoint: Option<i64>,
    pub alert_count: i64,
    pub firing_count: i64,
    pub alerts: Vec<(AlertRow, AlertState)>,
    pub episodes: Vec<(String, EpisodeRow)>,
}

pub trait Bulk {
    fn count_events(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// The next page of the log in (device, stream version) order.
    fn log_page<'a>(
        &'a self,
        after: (&'a str, i64),
    ) -> impl Future<Output = Result<Vec<(String, StoredEvent)>, StoreError>> + Send + 'a;
    fn write_projections<'a>(
        &'a self,
        suffix: &'a str,
        devices: &'a [DeviceProjection],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
    fn live_device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> impl Future<Output = Result<LiveDevice, StoreError>> + Send + 'a;
    fn projected_devices(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
}

engine_impl! {
    impl Bulk for Pool<DB> {
        async fn count_events(&self) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE aggregate_type = $1")
                .bind(DEVICE_STREAM)
                .fetch_one(self)
                .await?)
        }

        async fn log_page<'a>(&'a self, after: (&'a str, i64)) -> Result<Vec<(String, StoredEvent)>, StoreError> {
            let rows = sqlx::query_as::<_, LogRow>(
                "SELECT aggregate_id, sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND (aggregate_id, sequence) > ($2, $3) \
                 ORDER BY aggregate_id, sequence LIMIT $4",
            )
            .bind(DEVICE_STREAM)
            .bind(after.0)
            .bind(after.1)
            .bind(LOG_PAGE)
            .fetch_all(self)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let Json(DeviceEvent::Recorded(event)) = row.payload;
                    (row.aggregate_id, StoredEvent { stream_version: row.sequence, event })
                })
                .collect())
        }

        async fn write_projections<'a>(&'a self, suffix: &'a str, devices: &'a [DeviceProjection], now: DateTime<Utc>) -> Result<(), StoreError> {
            let mut tx = self.begin_with(<DB as crate::store::Dialect>::BEGIN_WRITE).await?;
            let alerts: Vec<(&str, &AlertRow, &AlertState)> = devices
                .iter()
                .flat_map(|d| d.alerts.iter().map(move |(row, state)| (d.device_id.as_str(), row, state)))
                .collect();
            for chunk in alerts.chunks(WRITE_BATCH) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = i * 15;
                        format!("(${},${},${},${},${},${},${},${},${},${},${},${},${},${},${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12, b + 13, b + 14, b + 15)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO alert_state{suffix} (device_id, alert_key, status, severity, summary, since, \
                       last_alarm_at, last_recovery_at, episode_count, alarm_count, recovery_count, \
                       stray_recovery_count, stream_version, updated_at, fold_state) VALUES {}",
                    values.join(",")
                );
                let mut query = sqlx::query(&sql);
                for (device_id, row, state) in chunk {
                    query = query
                        .bind(*device_id)
                        .bind(row.alert_key.as_str())
                        .bind(row.status.as_str())
                        .bind(row.severity.as_deref())
                        .bind(row.summary.as_deref())
                        .bind(row.since)
                        .bind(row.last_alarm_at)
                        .bind(row.last_recovery_at)
                        .bind(row.episode_count)
                        .bind(row.alarm_count)
                        .bind(row.recovery_count)
                        .bind(row.stray_recovery_count)
                        .bind(row.stream_version)
                        .bind(now)
                        .bind(Json(*state));
                }
                query.execute(&mut *tx).await?;
            }
            let episodes: Vec<(&str, &str, EpisodeRow)> = devices
                .iter()
                .flat_map(|d| d.episodes.iter().map(move |(key, e)| (d.device_id.as_str(), key.as_str(), episode_row(e))))
                .collect();
            for chunk in episodes.chunks(WRITE_BATCH) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = i * 12;
                        format!("(${},${},${},${},${},${},${},${},${},${},${},${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO alert_episodes{suffix} (device_id, alert_key, episode_number, opened_at, \
                       closed_at, duration_ms, alarm_count, severity, summary, opened_by_event_id, \
                       closed_by_event_id, reconciled) VALUES {}",
                    values.join(",")
                );
                let mut query = sqlx::query(&sql);
                for (device_id, alert_key, row) in chunk {
                    query = query
                        .bind(*device_id)
                        .bind(*alert_key)
                        .bind(row.episode_number)
                        .bind(row.opened_at)
                        .bind(row.closed_at)
                        .bind(row.duration_ms)
                        .bind(row.alarm_count)
                        .bind(row.severity.as_deref())
                        .bind(row.summary.as_deref())
                        .bind(row.opened_by_event_id.as_str())
                        .bind(row.closed_by_event_id.as_deref())
                        .bind(row.reconciled);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in devices.chunks(WRITE_BATCH) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = i * 6;
                        format!("(${},${},${},${},${},${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO device_summary{suffix} (device_id, alert_count, firing_count, \
                       stream_version, last_recorded_at, updated_at) VALUES {}",
                    values.join(",")
                );
                let mut query = sqlx::query(&sql);
                for device in chunk {
                    query = query
                        .bind(device.device_id.as_str())
                        .bind(device.alerts.len() as i64)
                        .bind(device.firing_count)
                        .bind(device.stream_version)
                        .bind(device.last_recorded_at)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn live_device<'a>(&'a self, device_id: &'a str) -> Result<LiveDevice, StoreError> {
            let summary: Option<(i64, i64, i64)> = sqlx::query_as(
                "SELECT stream_version, alert_count, firing_count FROM device_summary WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(self)
            .await?;
            let alerts: Vec<LiveAlert> = sqlx::query_as(
                "SELECT device_id, alert_key, status, severity, summary, since, last_alarm_at, \
                   last_recovery_at, episode_count, alarm_count, recovery_count, stray_recovery_count, \
                   stream_version, fold_state \
                 FROM alert_state WHERE device_id = $1 ORDER BY alert_key",
            )
            .bind(device_id)
            .fetch_all(self)
            .await?;
            let episodes: Vec<LiveEpisode> = sqlx::query_as(
                "SELECT alert_key, episode_number, opened_at, closed_at, duration_ms, alarm_count, \
                   severity, summary, opened_by_event_id, closed_by_event_id, reconciled \
                 FROM alert_episodes WHERE device_id = $1 ORDER BY alert_key, episode_number",
            )
            .bind(device_id)
            .fetch_all(self)
            .await?;
            Ok(LiveDevice {
                checkpoint: summary.map(|s| s.0),
                alert_count: summary.map(|s| s.1).unwrap_or(0),
                firing_count: summary.map(|s| s.2).unwrap_or(0),
                alerts: alerts.into_iter().map(|a| (a.row, a.fold_state.0)).collect(),
                episodes: episodes.into_iter().map(|e| (e.alert_key, e.row)).collect(),
            })
        }

        async fn projected_devices(&self) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM device_summary").fetch_one(self).await?)
        }
    }
}

/// No progress display (start-up rebuilds, benchmarks).
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _events: u64) {}
}

/// Progress reports: events read so far, out of the total.
pub trait Progress: Send + Sync {
    fn start(&self, total: u64);
    fn advance(&self, events: u64);
}

/// Walks the log device by device, each device's full stream at a time.
struct LogWalker<'a> {
    db: &'a Db,
    progress: &'a dyn Progress,
    after: (String, i64),
    page: std::vec::IntoIter<(String, StoredEvent)>,
    current: Option<(String, Vec<StoredEvent>)>,
    done: u64,
    exhausted: bool,
}

impl<'a> LogWalker<'a> {
    async fn new(db: &'a Db, progress: &'a dyn Progress) -> Result<Self, StoreError> {
        let total = with_pool!(db, pool => pool.count_events().await)?;
        progress.start(total.max(0) as u64);
        Ok(Self {
            db,
            progress,
            after: (String::new(), 0),
            page: Vec::new().into_iter(),
            current: None,
            done: 0,
            exhausted: false,
        })
    }

    async fn next_device(&mut self) -> Result<Option<(String, Vec<StoredEvent>)>, StoreError> {
        loop {
            for (device_id, stored) in self.page.by_ref() {
                match &mut self.current {
                    Some((id, events)) if *id == device_id => events.push(stored),
                    _ => {
                        let finished = self.current.replace((device_id, vec![stored]));
                        if finished.is_some() {
                            return Ok(finished);
                        }
                    }
                }
            }
            if self.exhausted {
                return Ok(self.current.take());
            }
            let page =
                with_pool!(self.db, pool => pool.log_page((&self.after.0, self.after.1)).await)?;
            match page.last() {
                None => self.exhausted = true,
                Some((device, event)) => self.after = (device.clone(), event.stream_version),
            }
            self.done += page.len() as u64;
            self.progress.advance(page.len() as u64);
            self.page = page.into_iter();
        }
    }
}

/// Holds the PostgreSQL rebuild lock; unlocks when dropped (or when the connection
/// closes, should the process die).
struct RebuildLock(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl Drop for RebuildLock {
    fn drop(&mut self) {
        // Closing the session releases its advisory lock; the connection must not go
        // back to the pool still holding it.
        if let Some(connection) = self.0.take() {
            drop(connection.detach());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub devices: u64,
}

/// Rebuild every read model from the log and switch readers over atomically.
pub async fn rebuild(
    projector: &Projector,
    progress: &dyn Progress,
) -> Result<RebuildReport, StoreError> {
    let db = &projector.db;
    // One rebuild at a time across every process on a PostgreSQL database: the lock
    // lives as long as this session-level connection.
    let _guard = match db {
        Db::Postgres(pool) => {
            let mut connection = pool.acquire().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7412)")
                .fetch_one(&mut *connection)
                .await?;
            if !locked {
                return Err(StoreError::RebuildRunning);
            }
            Some(RebuildLock(Some(connection)))
        }
        Db::Sqlite(_) => None,
    };
    let tables_sql = projector.tables_sql();
    let next_sql = PROJECTION_TABLES
        .iter()
        .fold(tables_sql.to_string(), |sql, table| {
            sql.replace(table, &format!("{table}_next"))
        });
    with_pool!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        for table in PROJECTION_TABLES {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}_next")).execute(&mut *tx).await?;
        }
        sqlx::raw_sql(&next_sql).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<(), StoreError>(())
    })?;

    // Reading and folding overlap with writing: the database works on one batch while
    // the next is read and folded.
    let now = Utc::now();
    let (batches, mut to_write) = tokio::sync::mpsc::channel::<Vec<DeviceProjection>>(2);
    let read_and_fold = async move {
        let mut pending: Vec<DeviceProjection> = Vec::new();
        let mut devices = 0u64;
        let mut walker = LogWalker::new(db, progress).await?;
        while let Some((device_id, events)) = walker.next_device().await? {
            devices += 1;
            pending.push(project_device(&device_id, &events, &projector.fold));
            if pending.len() >= WRITE_BATCH
                && batches.send(std::mem::take(&mut pending)).await.is_err()
            {
                break;
            }
        }
        if !pending.is_empty() {
            let _ = batches.send(pending).await;
        }
        Ok::<(u64, u64), StoreError>((walker.done, devices))
    };
    let write = async move {
        while let Some(batch) = to_write.recv().await {
            with_pool!(db, pool => pool.write_projections("_next", &batch, now).await)?;
        }
        Ok::<(), StoreError>(())
    };
    let started = std::time::Instant::now();
    let (read, written) = tokio::join!(read_and_fold, write);
    written?;
    let (events, devices) = read?;
    tracing::info!(
        events,
        devices,
        seconds = started.elapsed().as_secs_f64(),
        "rebuilt into *_next tables"
    );

    let started = std::time::Instant::now();
    projector.swap_in_next_tables().await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "swapped in the rebuilt tables"
    );
    // Events recorded while the rebuild ran were projected into the old tables; the new
    // ones' checkpoints are behind for those devices, so catch them up now.
    projector.catch_up_all().await?;
    Ok(RebuildReport { events, devices })
}

/// A difference between the live read models and what the log implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference(pub String);

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub events: u64,
    pub devices: u64,
    pub differences: Vec<Difference>,
    pub devices_with_differences: u64,
}

fn describe<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| compact(&v))
        .unwrap_or_default()
}

fn compact(value: &Value) -> String {
    value.to_string()
}

/// `status: live "firing", log "resolved"; …` for the fields that differ.
fn field_differences<T: serde::Serialize>(live: &T, log: &T) -> String {
    let (Ok(Value::Object(live)), Ok(Value::Object(log))) =
        (serde_json::to_value(live), serde_json::to_value(log))
    else {
        return "rows differ".to_string();
    };
    live.iter()
        .filter(|(key, value)| log.get(*key) != Some(*value))
        .map(|(key, value)| {
            format!(
                "{key}: live {}, log {}",
                compact(value),
                log.get(key).map(compact).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compare one device's live rows with what its log implies, up to its checkpoint.
fn compare_device(
    device_id: &str,
    events: &[StoredEvent],
    live: &LiveDevice,
    config: &FoldConfig,
) -> Vec<Difference> {
    let mut differences = Vec::new();
    let Some(checkpoint) = live.checkpoint else {
        return vec![Difference(format!(
            "device {device_id}: {} events in the log but no projected rows",
            events.len()
        ))];
    };
    let covered: Vec<StoredEvent> = events
        .iter()
        .filter(|e| e.stream_version <= checkpoint)
        .cloned()
        .collect();
    let expected = project_device(device_id, &covered, config);
    if live.alert_count != expected.alerts.len() as i64
        || live.firing_count != expected.firing_count
    {
        differences.push(Difference(format!(
            "device {device_id}: summary says {} alerts / {} firing, log says {} / {}",
            live.alert_count,
            live.firing_count,
            expected.alerts.len(),
            expected.firing_count
        )));
    }
    let live_alerts: BTreeMap<&str, &(AlertRow, AlertState)> = live
        .alerts
        .iter()
        .map(|a| (a.0.alert_key.as_str(), a))
        .collect();
    let expected_alerts: BTreeMap<&str, &(AlertRow, AlertState)> = expected
        .alerts
        .iter()
        .map(|a| (a.0.alert_key.as_str(), a))
        .collect();
    for (key, want) in &expected_alerts {
        match live_alerts.get(key) {
            None => differences.push(Difference(format!(
                "alert {device_id}/{key}: missing from alert_state"
            ))),
            Some(have) => {
                if have.0 != want.0 {
                    differences.push(Difference(format!(
                        "alert {device_id}/{key}: {}",
                        field_differences(&have.0, &want.0)
                    )));
                } else if have.1 != want.1 {
                    differences.push(Difference(format!(
                        "alert {device_id}/{key}: fold_state differs from the log"
                    )));
                }
            }
        }
    }
    for key in live_alerts
        .keys()
        .filter(|k| !expected_alerts.contains_key(*k))
    {
        differences.push(Difference(format!(
            "alert {device_id}/{key}: in alert_state but not in the log"
        )));
    }
    let expected_episodes: Vec<(String, EpisodeRow)> = expected
        .episodes
        .iter()
        .map(|(k, e)| (k.clone(), episode_row(e)))
        .collect();
    if expected_episodes != live.episodes {
        let first = expected_episodes
            .iter()
            .zip(&live.episodes)
            .find(|(want, have)| want != have)
            .map(|(want, have)| {
                format!(
                    ": alert {} episode {}: {}",
                    have.0,
                    have.1.episode_number,
                    if have.0 == want.0 {
                        field_differences(&have.1, &want.1)
                    } else {
                        describe(&have.1)
                    }
                )
            })
            .unwrap_or_else(|| {
                format!(
                    " ({} live rows, {} from the log)",
                    live.episodes.len(),
                    expected_episodes.len()
                )
            });
        differences.push(Difference(format!(
            "episodes of device {device_id} differ{first}"
        )));
    }
    differences
}

/// Recompute every projection from the log and compare it with the live tables.
pub async fn verify(
    projector: &Projector,
    progress: &dyn Progress,
    max_differences: usize,
) -> Result<VerifyReport, StoreError> {
    let db = &projector.db;
    let config = projector.fold;
    let mut report = VerifyReport::default();
    let mut walker = LogWalker::new(db, progress).await?;
    while let Some((device_id, events)) = walker.next_device().await? {
        report.devices += 1;
        let live = with_pool!(db, pool => pool.live_device(&device_id).await)?;
        // A write that landed between reading the events and reading the rows puts the
        // rows ahead of the events read: read the device's stream again.
        let read_up_to = events.last().map(|e| e.stream_version).unwrap_or(0);
        let events = if live.checkpoint.is_some_and(|c| c > read_up_to) {
            with_pool!(db, pool => pool.trail(&device_id, &TrailFilter::default(), 0, i64::MAX).await)?
        } else {
            events
        };
        let differences = compare_device(&device_id, &events, &live, &config);
        if !differences.is_empty() {
            report.devices_with_differences += 1;
            let room = max_differences.saturating_sub(report.differences.len());
            report
                .differences
                .extend(differences.into_iter().take(room));
        }
    }
    report.events = walker.done;
    let projected = with_pool!(db, pool => pool.projected_devices().await)?;
    if projected as u64 != report.devices {
        report.devices_with_differences += 1;
        report.differences.push(Difference(format!(
            "device_summary has {projected} devices, the log {}",
            report.devices
        )));
    }
    Ok(report)
}
