//! Appending to device streams through cqrs-es, without replaying them.
//!
//! cqrs-es's `PersistedEventStore` rebuilds an aggregate by replaying its whole stream
//! on every command, and its 0.5.0 snapshot mode applies a command's events twice
//! (`EventSink::write` applies them, then `update_snapshot_with_events` applies them
//! again). The device aggregate's only state is its stream version, so
//! [`StreamHeadStore`] loads it from the stream head — one indexed `MAX(sequence)` — and
//! delegates appending to cqrs-es unchanged, keeping its optimistic versioning.

use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore};
use cqrs_es::{AggregateError, EventEnvelope, EventStore};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

use super::{Db, EventLog};
use crate::domain::Device;
use crate::with_pool;

pub struct StreamHeadStore<R: PersistedEventRepository> {
    db: Db,
    inner: PersistedEventStore<R, Device>,
}

pub type DeviceError = <Device as cqrs_es::Aggregate>::Error;

impl<R: PersistedEventRepository> EventStore<Device> for StreamHeadStore<R> {
    type AC = EventStoreAggregateContext<Device>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<Device>>, AggregateError<DeviceError>> {
        self.inner.load_events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<DeviceError>> {
        let head = with_pool!(&self.db, pool => pool.stream_head(aggregate_id).await).map_err(
            |error| match error {
                super::StoreError::Database(e) if super::is_unavailable(&e) => {
                    AggregateError::DatabaseConnectionError(Box::new(e))
                }
                other => AggregateError::UnexpectedError(Box::new(other)),
            },
        )?;
        let head = usize::try_from(head).unwrap_or(0);
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: Device {
                stream_version: head as u64,
            },
            current_sequence: head,
            current_snapshot: None,
        })
    }

    async fn commit(
        &self,
        events: Vec<crate::domain::DeviceEvent>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<Device>>, AggregateError<DeviceError>> {
        self.inner.commit(events, context, metadata).await
    }
}

/// The event store of whichever engine the pool belongs to.
pub enum DeviceStreams {
    Sqlite(StreamHeadStore<SqliteEventRepository>),
    Postgres(StreamHeadStore<PostgresEventRepository>),
}

impl DeviceStreams {
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite(pool) => DeviceStreams::Sqlite(StreamHeadStore {
                db: db.clone(),
                inner: PersistedEventStore::new_event_store(SqliteEventRepository::new(
                    pool.clone(),
                )),
            }),
            Db::Postgres(pool) => DeviceStreams::Postgres(StreamHeadStore {
                db: db.clone(),
                inner: PersistedEventStore::new_event_store(PostgresEventRepository::new(
                    pool.clone(),
                )),
            }),
        }
    }
}
