//! Recording events: the one path every sender takes (HTTP, import).
//!
//! For each device in a submission: load the stream head, look up which submitted ids
//! the stream already holds, hand the rest to the device aggregate, and commit with
//! optimistic versioning. A version conflict means another writer appended first, so the
//! whole step — lookup included — is retried with jitter, a bounded number of times.
//! Because the lookup runs after the head is read, a duplicate that commits concurrently
//! always surfaces either in the lookup or as a conflict: never as a second copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
use rand::Rng;

use crate::domain::commands::{decide_acknowledgement, same_acknowledgement, AckDecision};
use crate::domain::fold::{fold, Acknowledged};
use crate::domain::{Device, DeviceCommand, DeviceServices, Kind, NewEvent, RecordedEvent};
use crate::projections::{AlertRow, Projector, ReadModels};
use crate::store::event_store::DeviceStreams;
use crate::store::{is_unavailable, Db, EventLog, StoreError, StoredEvent};
use crate::with_pool;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Appended now.
    Recorded,
    /// The stream already holds this event with the same content.
    Duplicate,
    /// The stream holds this event id with different content; nothing was recorded.
    Conflict,
}

#[derive(Clone, Debug)]
pub struct ItemResult {
    pub event_id: String,
    pub device_id: String,
    pub alert_key: String,
    pub outcome: Outcome,
    /// The stream version of the event now recorded under this id.
    pub stream_version: i64,
    /// The alert's state after the submission; `None` if the read model could not be
    /// brought up to date (the event is recorded; the projection catches up later).
    pub alert: Option<AlertRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("device {0} stayed contended after {1} attempts")]
    Contended(String, usize),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for LedgerError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            LedgerError::Unavailable(error.to_string())
        } else {
            LedgerError::Internal(error.to_string())
        }
    }
}

/// Running totals since the process started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub recorded: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub conflict_retries: AtomicU64,
    pub contended: AtomicU64,
    /// Alertmanager alerts (or whole notifications that are not version 4 payloads)
    /// refused as invalid.
    pub invalid_alertmanager: AtomicU64,
    /// PagerDuty events answered `400 invalid event`.
    pub invalid_pagerduty: AtomicU64,
}

pub struct Ledger {
    pub counters: Counters,
    db: Db,
    streams: DeviceStreams,
    services: DeviceServices,
    projector: Projector,
    max_attempts: usize,
    fault_pause_before_projection: Duration,
}

/// What a commit attempt concluded.
enum Attempt {
    Done(Vec<(usize, Outcome, i64)>),
    Conflict,
}

/// Who acknowledges an alert, why, and (optionally) the id that makes a retry a duplicate.
#[derive(Clone, Debug)]
pub struct AckRequest {
    pub by: String,
    pub reason: Option<String>,
    pub event_id: Option<String>,
}

/// What acknowledging an alert came to.
#[derive(Debug)]
pub enum Acknowledgement {
    /// Recorded now, for this episode.
    Recorded { result: ItemResult, episode: i64 },
    /// This `event_id` was recorded before with the same content; `episode` is the one
    /// it acknowledged (`None` if it acknowledged none, e.g. it lost a race).
    Duplicate {
        result: ItemResult,
        episode: Option<i64>,
    },
    /// The current episode was acknowledged first by someone else: nothing recorded.
    AlreadyAcknowledged {
        episode: i64,
        existing: Acknowledged,
    },
    /// This `event_id` is recorded with other content: nothing recorded.
    IdTaken(ItemResult),
    /// The alert has no events.
    UnknownAlert,
    /// The alert is resolved.
    NotFiring,
}

impl Ledger {
    pub fn new(db: Db, projector: Projector, max_attempts: usize) -> Self {
        Self {
            counters: Counters::default(),
            streams: DeviceStreams::new(&db),
            db,
            services: DeviceServices::system_clock(),
            projector,
            max_attempts: max_attempts.max(1),
            fault_pause_before_projection: Duration::ZERO,
        }
    }

    /// Crash tests only: widen the window between an append's commit and its
    /// projection update, where a crash leaves the projection behind the log.
    pub fn with_fault_pause_before_projection(mut self, pause: Duration) -> Self {
        self.fault_pause_before_projection = pause;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Record a submission. Results come back in submission order.
    pub async fn record(&self, events: Vec<NewEvent>) -> Result<Vec<ItemResult>, LedgerError> {
        let mut by_device: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, event) in events.iter().enumerate() {
            by_device.entry(&event.device_id).or_default().push(index);
        }
        let mut outcomes: Vec<Option<(Outcome, i64)>> = vec![None; events.len()];
        for (device_id, indexes) in &by_device {
            let items: Vec<&NewEvent> = indexes.iter().map(|i| &events[*i]).collect();
            for (position, outcome, version) in self.record_device(device_id, &items).await? {
                outcomes[indexes[position]] = Some((outcome, version));
            }
            if !self.fault_pause_before_projection.is_zero() {
                tracing::warn!(
                    device_id,
                    "fault injection: pausing before the projection update"
                );
                tokio::time::sleep(self.fault_pause_before_projection).await;
            }
            if let Err(error) = self.projector.catch_up(device_id).await {
                tracing::error!(device_id, %error, "projection update failed; it will catch up");
            }
        }
        let mut alerts: HashMap<(&str, &str), Option<AlertRow>> = HashMap::new();
        for event in &events {
            let key = (event.device_id.as_str(), event.alert_key.as_str());
            if let std::collections::hash_map::Entry::Vacant(slot) = alerts.entry(key) {
                let row = with_pool!(&self.db, pool => pool.alert(key.0, key.1).await)
                    .unwrap_or_else(|error| {
                        tracing::error!(%error, "reading alert state failed");
                        None
                    });
                slot.insert(row);
            }
        }
        let mut results = Vec::with_capacity(events.len());
        for (event, outcome) in events.iter().zip(outcomes) {
            let (outcome, stream_version) = outcome.ok_or_else(|| {
                LedgerError::Internal("an item was left without an outcome".into())
            })?;
            results.push(ItemResult {
                event_id: event.event_id.clone(),
                device_id: event.device_id.clone(),
                alert_key: event.alert_key.clone(),
                outcome,
                stream_version,
                alert: alerts
                    .get(&(event.device_id.as_str(), event.alert_key.as_str()))
                    .cloned()
                    .flatten(),
            });
        }
        Ok(results)
    }

    async fn record_device(
        &self,
        device_id: &str,
        items: &[&NewEvent],
    ) -> Result<Vec<(usize, Outcome, i64)>, LedgerError> {
        for attempt in 1..=self.max_attempts {
            match self.try_record_device(device_id, items).await? {
                Attempt::Done(outcomes) => {
                    for (_, outcome, _) in &outcomes {
                        let counter = match outcome {
                            Outcome::Recorded => &self.counters.recorded,
                            Outcome::Duplicate => &self.counters.duplicates,
                            Outcome::Conflict => &self.counters.conflicts,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(outcomes);
                }
                Attempt::Conflict => self.back_off(device_id, attempt).await?,
            }
        }
        Err(self.contended(device_id))
    }

    /// After a stream version conflict: wait before attempt `attempt + 1`, or give up
    /// when that was the last one.
    async fn back_off(&self, device_id: &str, attempt: usize) -> Result<(), LedgerError> {
        if attempt >= self.max_attempts {
            return Err(self.contended(device_id));
        }
        self.counters
            .conflict_retries
            .fetch_add(1, Ordering::Relaxed);
        // Full jitter over an exponential ceiling (2, 4, … 128 ms) spreads the
        // contenders of a hot stream out instead of re-colliding them.
        let ceiling = 2u64.saturating_pow(attempt.min(7) as u32);
        let wait = rand::thread_rng().gen_range(1..=ceiling);
        tracing::debug!(
            device_id,
            attempt,
            wait_ms = wait,
            "stream version conflict"
        );
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok(())
    }

    fn contended(&self, device_id: &str) -> LedgerError {
        self.counters.contended.fetch_add(1, Ordering::Relaxed);
        LedgerError::Contended(device_id.to_string(), self.max_attempts)
    }

    async fn try_record_device(
        &self,
        device_id: &str,
        items: &[&NewEvent],
    ) -> Result<Attempt, LedgerError> {
        let context = self.load(device_id).await?;
        let ids: Vec<&str> = items.iter().map(|e| e.event_id.as_str()).collect();
        let existing: HashMap<String, StoredEvent> =
            with_pool!(&self.db, pool => pool.find_by_ids(device_id, &ids).await)?
                .into_iter()
                .map(|stored| (stored.event.event_id.clone(), stored))
                .collect();

        let mut outcomes: Vec<(usize, Outcome, i64)> = Vec::new();
        let mut fresh: Vec<NewEvent> = Vec::new();
        let mut fresh_positions: Vec<usize> = Vec::new();
        let mut first_in_submission: HashMap<&str, usize> = HashMap::new();
        for (position, item) in items.iter().enumerate() {
            if let Some(stored) = existing.get(&item.event_id) {
                let outcome = if item.same_content_as(&stored.event) {
                    Outcome::Duplicate
                } else {
                    Outcome::Conflict
                };
                outcomes.push((position, outcome, stored.stream_version));
            } else if let Some(first) = first_in_submission.get(item.event_id.as_str()) {
                // The same id twice in one submission: judged against the first copy,
                // whose version is known once it commits.
                let outcome = if items[*first] == *item {
                    Outcome::Duplicate
                } else {
                    Outcome::Conflict
                };
                outcomes.push((position, outcome, -(*first as i64) - 1));
            } else {
                first_in_submission.insert(&item.event_id, position);
                fresh_positions.push(position);
                fresh.push((*item).clone());
            }
        }
        if fresh.is_empty() {
            return Ok(Attempt::Done(outcomes));
        }

        let Some(appended) = self.append(device_id, context, fresh).await? else {
            return Ok(Attempt::Conflict);
        };
        let mut versions: HashMap<usize, i64> = HashMap::new();
        for (position, version) in fresh_positions.iter().zip(appended) {
            versions.insert(*position, version);
            outcomes.push((*position, Outcome::Recorded, version));
        }
        for outcome in outcomes.iter_mut() {
            if outcome.2 < 0 {
                let first = (-outcome.2 - 1) as usize;
                outcome.2 = versions.get(&first).copied().unwrap_or(0);
            }
        }
        Ok(Attempt::Done(outcomes))
    }

    /// Hand fresh events to the device aggregate and commit them at the version
    /// `context` was loaded at: their stream versions, or `None` when another writer
    /// appended first.
    async fn append(
        &self,
        device_id: &str,
        mut context: cqrs_es::persist::EventStoreAggregateContext<Device>,
        fresh: Vec<NewEvent>,
    ) -> Result<Option<Vec<i64>>, LedgerError> {
        let sink = EventSink::default();
        context
            .aggregate()
            .handle(
                (device_id.to_string(), DeviceCommand::Record(fresh)),
                &self.services,
                &sink,
            )
            .await
            .map_err(|error| LedgerError::Internal(error.to_string()))?;
        let events = sink.collect().await;
        let committed = match &self.streams {
            DeviceStreams::Sqlite(store) => store.commit(events, context, HashMap::new()).await,
            DeviceStreams::Postgres(store) => store.commit(events, context, HashMap::new()).await,
        };
        match committed {
            Ok(envelopes) => Ok(Some(envelopes.iter().map(|e| e.sequence as i64).collect())),
            Err(error) => match classify_commit_error(error)? {
                Attempt::Conflict => Ok(None),
                Attempt::Done(_) => Err(LedgerError::Internal(
                    "a failed commit was classified as done".into(),
                )),
            },
        }
    }

    /// Acknowledge the alert's current episode. The decision (firing? acknowledged
    /// already? this id seen before?) is taken from the log at one stream version and
    /// the acknowledgement is committed at that version, so of concurrent
    /// acknowledgements exactly one is recorded, and an acknowledgement never lands
    /// after a recovery that it did not see: a conflict re-decides from the new head.
    pub async fn acknowledge(
        &self,
        device_id: &str,
        alert_key: &str,
        request: &AckRequest,
    ) -> Result<Acknowledgement, LedgerError> {
        let event_id = request
            .event_id
            .clone()
            .unwrap_or_else(|| format!("ack-{}", uuid::Uuid::now_v7()));
        for attempt in 1..=self.max_attempts {
            match self
                .try_acknowledge(device_id, alert_key, request, &event_id)
                .await?
            {
                Some(acknowledgement) => {
                    if let Acknowledgement::Recorded { .. } = acknowledgement {
                        self.counters.recorded.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = self.projector.catch_up(device_id).await {
                            tracing::error!(device_id, %error, "projection update failed; it will catch up");
                        }
                    }
                    return Ok(self.with_alert(acknowledgement).await);
                }
                None => self.back_off(device_id, attempt).await?,
            }
        }
        Err(self.contended(device_id))
    }

    /// One decision at one stream version; `None` when another writer appended first.
    async fn try_acknowledge(
        &self,
        device_id: &str,
        alert_key: &str,
        request: &AckRequest,
        event_id: &str,
    ) -> Result<Option<Acknowledgement>, LedgerError> {
        let context = self.load(device_id).await?;
        let head = context.aggregate.stream_version as i64;
        let stored: Vec<RecordedEvent> = with_pool!(&self.db, pool => pool.alert_events_up_to(device_id, alert_key, head).await)?
            .into_iter()
            .map(|stored| stored.event)
            .collect();
        let config = self.projector.fold_config();
        let mut event = NewEvent {
            event_id: event_id.to_string(),
            device_id: device_id.to_string(),
            alert_key: alert_key.to_string(),
            kind: Kind::Acknowledgement,
            occurred_at: None,
            severity: None,
            summary: request.reason.clone(),
            labels: Default::default(),
            payload: None,
            source: Some(request.by.clone()),
            resolves: None,
        };
        let result = |outcome, stream_version| ItemResult {
            event_id: event_id.to_string(),
            device_id: device_id.to_string(),
            alert_key: alert_key.to_string(),
            outcome,
            stream_version,
            alert: None,
        };
        // A retry of a recorded acknowledgement is answered as what it was, whatever
        // the alert has done since (it may have resolved, or fired again).
        if let Some(previous) =
            with_pool!(&self.db, pool => pool.find_by_ids(device_id, &[event_id]).await)?.pop()
        {
            if !same_acknowledgement(&event, &previous.event) {
                return Ok(Some(Acknowledgement::IdTaken(result(
                    Outcome::Conflict,
                    previous.stream_version,
                ))));
            }
            let episode = fold(&stored, config)
                .episodes
                .iter()
                .find(|e| {
                    e.acknowledged
                        .as_ref()
                        .is_some_and(|a| a.event_id == event_id)
                })
                .map(|e| e.number);
            return Ok(Some(Acknowledgement::Duplicate {
                result: result(Outcome::Duplicate, previous.stream_version),
                episode,
            }));
        }
        if stored.is_empty() {
            return Ok(Some(Acknowledgement::UnknownAlert));
        }
        let (episode, occurred_at) =
            match decide_acknowledgement(&fold(&stored, config), chrono::Utc::now()) {
                AckDecision::Record {
                    episode,
                    occurred_at,
                } => (episode, occurred_at),
                AckDecision::AlreadyAcknowledged { episode, existing } => {
                    return Ok(Some(Acknowledgement::AlreadyAcknowledged {
                        episode,
                        existing,
                    }))
                }
                AckDecision::NotFiring => return Ok(Some(Acknowledgement::NotFiring)),
            };
        event.occurred_at = occurred_at;
        match self.append(device_id, context, vec![event]).await? {
            Some(versions) => Ok(Some(Acknowledgement::Recorded {
                result: result(
                    Outcome::Recorded,
                    versions.first().copied().unwrap_or(head + 1),
                ),
                episode,
            })),
            None => Ok(None),
        }
    }

    /// Fill in the alert's state after an acknowledgement, for the answer.
    async fn with_alert(&self, mut acknowledgement: Acknowledgement) -> Acknowledgement {
        if let Acknowledgement::Recorded { result, .. }
        | Acknowledgement::Duplicate { result, .. } = &mut acknowledgement
        {
            result.alert = with_pool!(&self.db, pool => pool.alert(&result.device_id, &result.alert_key).await)
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "reading alert state failed");
                    None
                });
        }
        acknowledgement
    }

    async fn load(
        &self,
        device_id: &str,
    ) -> Result<cqrs_es::persist::EventStoreAggregateContext<Device>, LedgerError> {
        let loaded = match &self.streams {
            DeviceStreams::Sqlite(store) => store.load_aggregate(device_id).await,
            DeviceStreams::Postgres(store) => store.load_aggregate(device_id).await,
        };
        loaded.map_err(|error| match error {
            AggregateError::DatabaseConnectionError(e) => LedgerError::Unavailable(e.to_string()),
            other => LedgerError::Internal(other.to_string()),
        })
    }
}

fn classify_commit_error(
    error: AggregateError<<Device as Aggregate>::Error>,
) -> Result<Attempt, LedgerError> {
    match error {
        AggregateError::AggregateConflict => Ok(Attempt::Conflict),
        AggregateError::DatabaseConnectionError(e) => Err(LedgerError::Unavailable(e.to_string())),
        AggregateError::UnexpectedError(e) => match e.downcast_ref::<sqlx::Error>() {
            // The event-id index caught a concurrent duplicate that the primary key did
            // not (sqlite-es maps only primary-key violations to a conflict).
            Some(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(Attempt::Conflict),
            Some(sql) if is_unavailable(sql) => Err(LedgerError::Unavailable(e.to_string())),
            _ => Err(LedgerError::Internal(e.to_string())),
        },
        other => Err(LedgerError::Internal(other.to_string())),
    }
}
