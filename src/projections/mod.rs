//! Read models: current alert state, episodes and a per-device summary.
//!
//! The tables are defined in `projections/<engine>/v<N>.sql`, not in migrations: they are
//! derived from the log, carry a version, and are dropped and rebuilt from the log when
//! that version changes. Every row is computed by the pure fold in
//! [`crate::domain::fold`]; this module only decides which events to fold and writes the
//! result, with the device's checkpoint (`device_summary.stream_version`) updated in the
//! same transaction as the rows, so a crash never leaves them apart.

pub mod lookup;
pub mod read;
pub mod rebuild;
mod tx;

use std::collections::BTreeMap;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::fold::{fold, AlertState, EpisodeChange, Links};
use crate::domain::{Episode, FoldConfig, Kind};
use crate::notifications::outbox::OutboxTx;
use crate::notifications::plan::transitions;
use crate::notifications::{Found, Lookup, Notifier};
use crate::store::{Db, EventLog, StoreError, StoredEvent};
use crate::with_pool;
use tx::ProjectionTx;

pub use read::{AlertRow, AlertsPage, EpisodeRow, ReadModels};

/// Bump when a change to projection logic or tables needs a rebuild from the log.
pub const PROJECTION_VERSION: i64 = 1;

const SQLITE_TABLES: &str = include_str!("../../projections/sqlite/v1.sql");
const POSTGRES_TABLES: &str = include_str!("../../projections/postgres/v1.sql");
const PROJECTION_TABLES: [&str; 3] = ["alert_state", "alert_episodes", "device_summary"];

/// How many times a projection retries when another writer moved a checkpoint first.
const MAX_CLAIM_ATTEMPTS: usize = 50;

#[derive(Clone)]
pub struct Projector {
    db: Db,
    fold: FoldConfig,
    /// When set, every projection change that opens or closes an episode schedules its
    /// messages in the same transaction.
    notifier: Option<Arc<Notifier>>,
}

impl Projector {
    /// The ledger rules' settings this projector folds with.
    pub fn fold_config(&self) -> &FoldConfig {
        &self.fold
    }
}

enum Outcome {
    UpToDate,
    Projected,
    LostClaim,
}

impl Projector {
    pub fn new(db: Db, fold: FoldConfig) -> Self {
        Self {
            db,
            fold,
            notifier: None,
        }
    }

    pub fn with_notifier(mut self, notifier: Option<Arc<Notifier>>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Create the tables, rebuild them if their version changed, and catch every device
    /// up with its stream (events recorded by a process that died before projecting).
    pub async fn start(&self) -> Result<(), StoreError> {
        if self.ensure_tables().await? == Tables::OutOfDate {
            // Readers keep the old version's tables until the rebuilt ones are swapped in.
            tracing::info!(
                to = PROJECTION_VERSION,
                "projection version changed: rebuilding from the log"
            );
            rebuild::rebuild(self, &rebuild::NoProgress).await?;
            with_pool!(&self.db, pool => sqlx::query(
                "UPDATE projection_versions SET version = $1 WHERE name = 'ledger'",
            )
            .bind(PROJECTION_VERSION)
            .execute(pool)
            .await
            .map(|_| ()))?;
        }
        self.catch_up_all().await
    }

    /// Catch every device whose checkpoint is behind its stream head up with the log.
    pub async fn catch_up_all(&self) -> Result<(), StoreError> {
        let behind = with_pool!(&self.db, pool => pool.devices_behind().await)?;
        if !behind.is_empty() {
            tracing::info!(
                devices = behind.len(),
                "catching projections up with the log"
            );
        }
        let mut stuck = 0usize;
        for device_id in behind {
            match self.catch_up(&device_id).await {
                Ok(()) => {}
                // Without a database nothing can go on; that is for the caller to report.
                Err(error) if error.is_unavailable() => return Err(error),
                // One stream the projector cannot read must not keep every other device
                // (and the service) down: it stays behind, and says so, until fixed.
                Err(error) => {
                    stuck += 1;
                    tracing::error!(device_id, %error, "this device's projection cannot catch up with its log; the other devices go on");
                }
            }
        }
        if stuck > 0 {
            tracing::error!(
                devices = stuck,
                "devices left behind their log; `verify` lists them"
            );
        }
        Ok(())
    }

    /// Create the tables if there are none; report whether existing ones are of an
    /// older projection version.
    async fn ensure_tables(&self) -> Result<Tables, StoreError> {
        let (tables_sql, lock) = match &self.db {
            Db::Sqlite(_) => (SQLITE_TABLES, None),
            // Several servers may start at once; one of them sets the tables up.
            Db::Postgres(_) => (POSTGRES_TABLES, Some("SELECT pg_advisory_xact_lock(7411)")),
        };
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS projection_versions \
                 (name text NOT NULL PRIMARY KEY, version bigint NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT version FROM projection_versions WHERE name = 'ledger'")
                    .fetch_optional(&mut *tx)
                    .await?;
            let tables = match current {
                Some(PROJECTION_VERSION) => Tables::Current,
                Some(_) => Tables::OutOfDate,
                None => Tables::Created,
            };
            if tables == Tables::Created {
                tracing::info!(version = PROJECTION_VERSION, "creating projection tables");
                sqlx::raw_sql(tables_sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO projection_versions (name, version) VALUES ('ledger', $1) \
                     ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                )
                .bind(PROJECTION_VERSION)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<Tables, StoreError>(tables)
        })
    }

    fn tables_sql(&self) -> &'static str {
        match &self.db {
            Db::Sqlite(_) => SQLITE_TABLES,
            Db::Postgres(_) => POSTGRES_TABLES,
        }
    }

    /// Replace the live read models by the `*_next` tables in one transaction: readers
    /// see the old tables until the commit and the new ones after it.
    async fn swap_in_next_tables(&self) -> Result<(), StoreError> {
        let live_indexes = self.tables_sql();
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            if let Db::Postgres(_) = &self.db {
                // The order the projector takes them in (checkpoint first), so a
                // projection in flight finishes first instead of deadlocking with us.
                sqlx::query("LOCK TABLE device_summary, alert_state, alert_episodes IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            for table in PROJECTION_TABLES {
                sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *tx).await?;
                sqlx::query(&format!("ALTER TABLE {table}_next RENAME TO {table}"))
                    .execute(&mut *tx)
                    .await?;
                if let Db::Postgres(_) = &self.db {
                    // PostgreSQL keeps the primary key's index name through a rename.
                    sqlx::query(&format!("ALTER INDEX {table}_next_pkey RENAME TO {table}_pkey"))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            // Secondary indexes keep their `_next` names too: recreate them under the
            // live names from the table definitions.
            for statement in live_indexes.split(';').map(str::trim) {
                if let Some(index) = statement
                    .lines()
                    .find(|l| l.trim_start().starts_with("CREATE INDEX"))
                {
                    let name = index.split_whitespace().nth(2).unwrap_or_default();
                    sqlx::query(&format!("DROP INDEX IF EXISTS {}", name.replace("alert_state", "alert_state_next")))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Fold every event of the device not yet projected into the read models.
    pub async fn catch_up(&self, device_id: &str) -> Result<(), StoreError> {
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            let outcome = match &self.db {
                Db::Sqlite(pool) => {
                    // IMMEDIATE takes the write lock up front: a deferred transaction that
                    // reads and then writes can fail with SQLITE_BUSY instead of waiting.
                    let mut tx = pool.begin_with(self.db.begin_write()).await?;
                    let outcome =
                        project_device(&mut tx, device_id, &self.fold, self.notifier.as_deref())
                            .await?;
                    if let Outcome::Projected = outcome {
                        tx.commit().await?;
                    }
                    outcome
                }
                Db::Postgres(pool) => {
                    let mut tx = pool.begin_with(self.db.begin_write()).await?;
                    let outcome =
                        project_device(&mut tx, device_id, &self.fold, self.notifier.as_deref())
                            .await?;
                    if let Outcome::Projected = outcome {
                        tx.commit().await?;
                    }
                    outcome
                }
            };
            match outcome {
                Outcome::Projected => {
                    if let Some(notifier) = &self.notifier {
                        notifier.wake.notify_one();
                    }
                    return Ok(());
                }
                Outcome::UpToDate => return Ok(()),
                Outcome::LostClaim => continue,
            }
        }
        // Another writer keeps winning; it is projecting the same events, so what is
        // left is at most a brief lag that the next write or restart closes.
        tracing::warn!(
            device_id,
            "projection checkpoint contended; leaving it to the other writer"
        );
        Ok(())
    }
}

/// Schedule what an alert's change from `before` to `after` asks for (see
/// [`crate::notifications::plan`]), inside the projection's transaction.
async fn schedule_messages<T: ProjectionTx + OutboxTx>(
    tx: &mut T,
    notifier: &Notifier,
    device_id: &str,
    alert_key: &str,
    before: &AlertState,
    after: &AlertState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for transition in transitions(before, after) {
        let message = match Notifier::lookup(&transition, after) {
            Some(Lookup::OpeningAlarm(event_id)) => {
                let alarm = tx.event_by_id(device_id, &event_id).await?;
                match &after.current_episode {
                    Some(episode) => notifier.plan(
                        device_id,
                        alert_key,
                        &transition,
                        Found::Opening {
                            episode,
                            alarm: alarm.as_ref(),
                        },
                        now,
                    ),
                    None => None,
                }
            }
            Some(Lookup::FiringRoute(episode)) => {
                tx.suppress_waiting(device_id, alert_key, episode, now)
                    .await?;
                let route = tx.firing_route(device_id, alert_key, episode).await?;
                notifier.plan(
                    device_id,
                    alert_key,
                    &transition,
                    Found::FiringRoute(route),
                    now,
                )
            }
            None => None,
        };
        if let Some(message) = message {
            tx.schedule(&message).await?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tables {
    Created,
    Current,
    OutOfDate,
}

/// Episode rows to write for one alert.
enum EpisodeWrites {
    Upsert(BTreeMap<i64, Episode>),
    Replace(Vec<Episode>),
}

async fn project_device<T: ProjectionTx + OutboxTx>(
    tx: &mut T,
    device_id: &str,
    config: &FoldConfig,
    notifier: Option<&Notifier>,
) -> Result<Outcome, StoreError> {
    let from = tx.projected_version(device_id).await?;
    let new_events = tx.events_after(device_id, from.unwrap_or(0)).await?;
    let Some(last) = new_events.last() else {
        return Ok(Outcome::UpToDate);
    };
    let now = Utc::now();
    let last_recorded_at = last.event.recorded_at;
    if !tx.claim(device_id, from, last.stream_version, now).await? {
        return Ok(Outcome::LostClaim);
    }
    let mut by_alert: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for stored in &new_events {
        by_alert
            .entry(stored.event.alert_key.as_str())
            .or_default()
            .push(stored);
    }
    for (alert_key, events) in by_alert {
        let (mut state, mut version) = tx
            .alert_fold_state(device_id, alert_key)
            .await?
            .unwrap_or_else(|| (AlertState::default(), 0));
        let before = notifier.map(|_| state.clone());
        let mut writes = EpisodeWrites::Upsert(BTreeMap::new());
        for stored in events {
            let event = &stored.event;
            let resolved_alarm = match (&event.kind, &event.resolves) {
                (Kind::Recovery, Some(id)) => tx.event_by_id(device_id, id).await?,
                _ => None,
            };
            let named_by_a_recovery = event.kind == Kind::Alarm
                && tx
                    .named_by_a_recovery(device_id, alert_key, &event.event_id)
                    .await?;
            let links = Links {
                resolved_alarm: resolved_alarm.as_ref(),
                named_by_a_recovery,
            };
            match state.extend(event, &links, config) {
                Some((next, change)) => {
                    state = next;
                    version = version.max(stored.stream_version);
                    if let (EpisodeWrites::Upsert(rows), Some(episode)) =
                        (&mut writes, &state.current_episode)
                    {
                        if !matches!(
                            change,
                            EpisodeChange::StrayRecovery | EpisodeChange::StrayAcknowledgement
                        ) {
                            rows.insert(episode.number, episode.clone());
                        }
                    }
                }
                None => {
                    // Out of order: fold the alert's whole event set, which already
                    // includes this batch's remaining events for the alert.
                    let all = tx.alert_events(device_id, alert_key).await?;
                    version = all
                        .iter()
                        .map(|e| e.stream_version)
                        .max()
                        .unwrap_or(version);
                    let events: Vec<_> = all.into_iter().map(|e| e.event).collect();
                    let folded = fold(&events, config);
                    state = folded.state;
                    writes = EpisodeWrites::Replace(folded.episodes);
                    break;
                }
            }
        }
        tx.write_alert(device_id, alert_key, &state, version, now)
            .await?;
        if let (Some(notifier), Some(before)) = (notifier, &before) {
            schedule_messages(tx, notifier, device_id, alert_key, before, &state, now).await?;
        }
        match writes {
            EpisodeWrites::Upsert(rows) => {
                for episode in rows.values() {
                    tx.write_episode(device_id, alert_key, episode).await?;
                }
            }
            EpisodeWrites::Replace(episodes) => {
                tx.delete_episodes(device_id, alert_key).await?;
                for episode in &episodes {
                    tx.write_episode(device_id, alert_key, episode).await?;
                }
            }
        }
    }
    tx.refresh_device_summary(device_id, last_recorded_at, now)
        .await?;
    Ok(Outcome::Projected)
}
