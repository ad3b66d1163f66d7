//! The SQL a projection runs inside its transaction, written once for both engines.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::Transaction;

use crate::domain::fold::{AlertState, Episode};
use crate::domain::RecordedEvent;
use crate::engine_impl;
use crate::store::{EventRow, StoreError, StoredEvent, DEVICE_STREAM};

pub trait ProjectionTx: Send {
    fn projected_version<'a>(
        &'a mut self,
        device_id: &'a str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send + 'a;
    fn events_after<'a>(
        &'a mut self,
        device_id: &'a str,
        after: i64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send + 'a;
    fn alert_events<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send + 'a;
    fn event_by_id<'a>(
        &'a mut self,
        device_id: &'a str,
        event_id: &'a str,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send + 'a;
    fn named_by_a_recovery<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
        alarm_id: &'a str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a;
    fn alert_fold_state<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
    ) -> impl Future<Output = Result<Option<(AlertState, i64)>, StoreError>> + Send + 'a;
    /// Move the device's checkpoint from `from` to `to`; false when another writer moved
    /// it first (optimistic, like the stream itself).
    fn claim<'a>(
        &'a mut self,
        device_id: &'a str,
        from: Option<i64>,
        to: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a;
    fn write_alert<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
        state: &'a AlertState,
        stream_version: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
    fn write_episode<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
        episode: &'a Episode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
    fn delete_episodes<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
    fn refresh_device_summary<'a>(
        &'a mut self,
        device_id: &'a str,
        last_recorded_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

engine_impl! {
    impl<'c> ProjectionTx for Transaction<'c, DB> {
        async fn projected_version<'a>(&'a mut self, device_id: &'a str) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar("SELECT stream_version FROM device_summary WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(&mut **self)
                .await?)
        }

        async fn events_after<'a>(&'a mut self, device_id: &'a str, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = sqlx::query_as::<_, EventRow>(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(after)
            .fetch_all(&mut **self)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        async fn alert_events<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = sqlx::query_as::<_, EventRow>(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND alert_key = $3 ORDER BY sequence",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(alert_key)
            .fetch_all(&mut **self)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        async fn event_by_id<'a>(&'a mut self, device_id: &'a str, event_id: &'a str) -> Result<Option<RecordedEvent>, StoreError> {
            let row = sqlx::query_as::<_, EventRow>(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_id = $3",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(event_id)
            .fetch_optional(&mut **self)
            .await?;
            Ok(row.map(|r| StoredEvent::from(r).event))
        }

        async fn named_by_a_recovery<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str, alarm_id: &'a str) -> Result<bool, StoreError> {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT sequence FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND resolves = $3 AND alert_key = $4 \
                 LIMIT 1",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(alarm_id)
            .bind(alert_key)
            .fetch_optional(&mut **self)
            .await?;
            Ok(found.is_some())
        }

        async fn alert_fold_state<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str) -> Result<Option<(AlertState, i64)>, StoreError> {
            let row: Option<(Json<AlertState>, i64)> = sqlx::query_as(
                "SELECT fold_state, stream_version FROM alert_state WHERE device_id = $1 AND alert_key = $2",
            )
            .bind(device_id)
            .bind(alert_key)
            .fetch_optional(&mut **self)
            .await?;
            Ok(row.map(|(Json(state), version)| (state, version)))
        }

        async fn claim<'a>(&'a mut self, device_id: &'a str, from: Option<i64>, to: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
            let result = match from {
                None => sqlx::query(
                    "INSERT INTO device_summary \
                       (device_id, alert_count, firing_count, stream_version, updated_at) \
                     VALUES ($1, 0, 0, $2, $3) ON CONFLICT (device_id) DO NOTHING",
                )
                .bind(device_id)
                .bind(to)
                .bind(now)
                .execute(&mut **self)
                .await?,
                Some(from) => sqlx::query(
                    "UPDATE device_summary SET stream_version = $3 \
                     WHERE device_id = $1 AND stream_version = $2",
                )
                .bind(device_id)
                .bind(from)
                .bind(to)
                .execute(&mut **self)
                .await?,
            };
            Ok(result.rows_affected() == 1)
        }

        async fn write_alert<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str, state: &'a AlertState, stream_version: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO alert_state (device_id, alert_key, status, severity, summary, since, \
                   last_alarm_at, last_recovery_at, episode_count, alarm_count, recovery_count, \
                   stray_recovery_count, stream_version, updated_at, fold_state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (device_id, alert_key) DO UPDATE SET \
                   status = excluded.status, severity = excluded.severity, \
                   summary = excluded.summary, since = excluded.since, \
                   last_alarm_at = excluded.last_alarm_at, \
                   last_recovery_at = excluded.last_recovery_at, \
                   episode_count = excluded.episode_count, alarm_count = excluded.alarm_count, \
                   recovery_count = excluded.recovery_count, \
                   stray_recovery_count = excluded.stray_recovery_count, \
                   stream_version = excluded.stream_version, updated_at = excluded.updated_at, \
                   fold_state = excluded.fold_state",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(state.status.as_str())
            .bind(state.severity.map(|s| s.as_str()))
            .bind(state.summary.as_deref())
            .bind(state.since)
            .bind(state.last_alarm_at)
            .bind(state.last_recovery_at)
            .bind(state.episode_count)
            .bind(state.alarm_count)
            .bind(state.recovery_count)
            .bind(state.stray_recovery_count)
            .bind(stream_version)
            .bind(now)
            .bind(Json(state))
            .execute(&mut **self)
            .await?;
            Ok(())
        }

        async fn write_episode<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str, episode: &'a Episode) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO alert_episodes (device_id, alert_key, episode_number, opened_at, \
                   closed_at, duration_ms, alarm_count, severity, summary, opened_by_event_id, \
                   closed_by_event_id, reconciled) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (device_id, alert_key, episode_number) DO UPDATE SET \
                   opened_at = excluded.opened_at, closed_at = excluded.closed_at, \
                   duration_ms = excluded.duration_ms, alarm_count = excluded.alarm_count, \
                   severity = excluded.severity, summary = excluded.summary, \
                   opened_by_event_id = excluded.opened_by_event_id, \
                   closed_by_event_id = excluded.closed_by_event_id, \
                   reconciled = excluded.reconciled",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(episode.number)
            .bind(episode.opened_at)
            .bind(episode.closed_at)
            .bind(episode.duration_ms())
            .bind(episode.alarm_count)
            .bind(episode.severity.map(|s| s.as_str()))
            .bind(episode.summary.as_deref())
            .bind(episode.opened_by.as_str())
            .bind(episode.closed_by.as_deref())
            .bind(episode.reconciled)
            .execute(&mut **self)
            .await?;
            Ok(())
        }

        async fn delete_episodes<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM alert_episodes WHERE device_id = $1 AND alert_key = $2")
                .bind(device_id)
                .bind(alert_key)
                .execute(&mut **self)
                .await?;
            Ok(())
        }

        async fn refresh_device_summary<'a>(&'a mut self, device_id: &'a str, last_recorded_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE device_summary SET \
                   alert_count = (SELECT COUNT(*) FROM alert_state WHERE device_id = $1), \
                   firing_count = (SELECT COUNT(*) FROM alert_state \
                                    WHERE device_id = $1 AND status = 'firing'), \
                   last_recorded_at = $2, updated_at = $3 \
                 WHERE device_id = $1",
            )
            .bind(device_id)
            .bind(last_recorded_at)
            .bind(now)
            .execute(&mut **self)
            .await?;
            Ok(())
        }
    }
}
