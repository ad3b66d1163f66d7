//! Reading the event log: idempotency lookups, stream heads and the audit trail.

use std::future::Future;

use sqlx::types::Json;
use sqlx::Pool;

use super::{StoreError, DEVICE_STREAM};
use crate::domain::{DeviceEvent, RecordedEvent};
use crate::engine_impl;

/// One event of a device stream with its position in that stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub stream_version: i64,
    pub event: RecordedEvent,
}

/// A row of the `events` table as both engines return it.
#[derive(sqlx::FromRow)]
pub struct EventRow {
    pub sequence: i64,
    pub payload: Json<DeviceEvent>,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        let Json(DeviceEvent::Recorded(event)) = row.payload;
        StoredEvent {
            stream_version: row.sequence,
            event,
        }
    }
}

/// One event of the global feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedEvent {
    pub position: i64,
    pub device_id: String,
    pub stored: StoredEvent,
}

#[derive(sqlx::FromRow)]
struct FeedRow {
    aggregate_id: String,
    sequence: i64,
    payload: Json<DeviceEvent>,
    position: i64,
}

/// Where the global feed stands: the event at `position`, or nothing yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedCursor {
    Start,
    After(i64),
}

/// Which events of a device's trail to return.
#[derive(Clone, Debug, Default)]
pub struct TrailFilter {
    pub alert_key: Option<String>,
    pub kind: Option<crate::domain::Kind>,
    pub time: TimeField,
    /// Inclusive lower bound on `time`.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Exclusive upper bound on `time`.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeField {
    #[default]
    OccurredAt,
    RecordedAt,
}

impl TimeField {
    fn column(self) -> &'static str {
        match self {
            TimeField::OccurredAt => "occurred_at",
            TimeField::RecordedAt => "recorded_at",
        }
    }
}

pub trait EventLog {
    /// The next events of the global feed after `cursor`, in an order that never puts
    /// a late-committing event behind one already served; `None` if `cursor` names no
    /// recorded event.
    fn feed(
        &self,
        cursor: FeedCursor,
        limit: i64,
    ) -> impl Future<Output = Result<Option<Vec<FeedEvent>>, StoreError>> + Send;

    /// The last stream version of a device (0 for a device with no events).
    fn stream_head(&self, device_id: &str) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The recorded events among `event_ids` in one device stream.
    fn find_by_ids(
        &self,
        device_id: &str,
        event_ids: &[&str],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Every event of one alert up to and including stream version `up_to`.
    fn alert_events_up_to(
        &self,
        device_id: &str,
        alert_key: &str,
        up_to: i64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// A page of a device's audit trail in stream order, after `after_version`.
    fn trail(
        &self,
        device_id: &str,
        filter: &TrailFilter,
        after_version: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Devices whose projected version is behind their stream head.
    fn devices_behind(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

engine_impl! {
    impl EventLog for Pool<DB> {
        async fn feed(&self, cursor: FeedCursor, limit: i64) -> Result<Option<Vec<FeedEvent>>, StoreError> {
            let (after_transaction, after_position) = match cursor {
                FeedCursor::Start => (-1i64, -1i64),
                FeedCursor::After(position) => {
                    let transaction: Option<i64> =
                        sqlx::query_scalar("SELECT transaction_id FROM events WHERE position = $1")
                            .bind(position)
                            .fetch_optional(self)
                            .await?;
                    match transaction {
                        Some(transaction) => (transaction, position),
                        None => return Ok(None),
                    }
                }
            };
            let sql = format!(
                "SELECT aggregate_id, sequence, payload, position FROM events \
                 WHERE aggregate_type = $1 \
                   AND (transaction_id > $2 OR (transaction_id = $2 AND position > $3)) \
                   AND transaction_id < {} \
                 ORDER BY transaction_id, position LIMIT $4",
                <DB as super::Dialect>::FEED_HORIZON
            );
            let rows = sqlx::query_as::<_, FeedRow>(&sql)
                .bind(DEVICE_STREAM)
                .bind(after_transaction)
                .bind(after_position)
                .bind(limit)
                .fetch_all(self)
                .await?;
            Ok(Some(
                rows.into_iter()
                    .map(|row| {
                        let Json(DeviceEvent::Recorded(event)) = row.payload;
                        FeedEvent {
                            position: row.position,
                            device_id: row.aggregate_id,
                            stored: StoredEvent {
                                stream_version: row.sequence,
                                event,
                            },
                        }
                    })
                    .collect(),
            ))
        }

        async fn stream_head(&self, device_id: &str) -> Result<i64, StoreError> {
            // ORDER BY … LIMIT 1 walks the primary key backwards even when the planner
            // has no statistics (PostgreSQL with autovacuum off); MAX() may not.
            let head: Option<i64> = sqlx::query_scalar(
                "SELECT sequence FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                 ORDER BY sequence DESC LIMIT 1",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .fetch_optional(self)
            .await?;
            Ok(head.unwrap_or(0))
        }

        async fn find_by_ids(
            &self,
            device_id: &str,
            event_ids: &[&str],
        ) -> Result<Vec<StoredEvent>, StoreError> {
            if event_ids.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders: Vec<String> =
                (0..event_ids.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, EventRow>(&sql)
                .bind(DEVICE_STREAM)
                .bind(device_id);
            for id in event_ids {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(self).await?.into_iter().map(Into::into).collect())
        }

        async fn alert_events_up_to(
            &self,
            device_id: &str,
            alert_key: &str,
            up_to: i64,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = sqlx::query_as::<_, EventRow>(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND alert_key = $3 AND sequence <= $4 \
                 ORDER BY sequence",
            )
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(alert_key)
            .bind(up_to)
            .fetch_all(self)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        async fn trail(
            &self,
            device_id: &str,
            filter: &TrailFilter,
            after_version: i64,
            limit: i64,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            use crate::domain::events::stored_time;
            let time = filter.time.column();
            let sql = format!(
                "SELECT sequence, payload FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
                   AND ($4 IS NULL OR alert_key = $4) \
                   AND ($5 IS NULL OR event_type = $5) \
                   AND ($6 IS NULL OR {time} >= $6) \
                   AND ($7 IS NULL OR {time} < $7) \
                 ORDER BY sequence LIMIT $8"
            );
            let rows = sqlx::query_as::<_, EventRow>(&sql)
            .bind(DEVICE_STREAM)
            .bind(device_id)
            .bind(after_version)
            .bind(filter.alert_key.as_deref())
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.from.as_ref().map(stored_time::format))
            .bind(filter.to.as_ref().map(stored_time::format))
            .bind(limit)
            .fetch_all(self)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        async fn devices_behind(&self) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT e.aggregate_id FROM \
                   (SELECT aggregate_id, MAX(sequence) AS head FROM events \
                     WHERE aggregate_type = $1 GROUP BY aggregate_id) e \
                 LEFT JOIN device_summary d ON d.device_id = e.aggregate_id \
                 WHERE d.stream_version IS NULL OR d.stream_version < e.head \
                 ORDER BY e.aggregate_id",
            )
            .bind(DEVICE_STREAM)
            .fetch_all(self)
            .await?)
        }
    }
}
