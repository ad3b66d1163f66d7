//! Queries on the read models, written once for both engines.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Pool;

use crate::engine_impl;
use crate::store::StoreError;

/// One alert's current state, as dashboards and the API see it.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct AlertRow {
    pub device_id: String,
    pub alert_key: String,
    pub status: String,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub last_alarm_at: Option<DateTime<Utc>>,
    pub last_recovery_at: Option<DateTime<Utc>>,
    pub episode_count: i64,
    pub alarm_count: i64,
    pub recovery_count: i64,
    pub stray_recovery_count: i64,
    pub stream_version: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct EpisodeRow {
    #[serde(rename = "number")]
    pub episode_number: i64,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub alarm_count: i64,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub opened_by_event_id: String,
    pub closed_by_event_id: Option<String>,
    pub reconciled: bool,
}

/// A page of alerts across devices; `next` is the last row's key when more may follow.
#[derive(Debug)]
pub struct AlertsPage {
    pub alerts: Vec<AlertRow>,
    pub next: Option<(String, String)>,
}

const ALERT_COLUMNS: &str = "device_id, alert_key, status, severity, summary, since, \
    last_alarm_at, last_recovery_at, episode_count, alarm_count, recovery_count, \
    stray_recovery_count, stream_version";

pub trait ReadModels {
    fn alert(
        &self,
        device_id: &str,
        alert_key: &str,
    ) -> impl Future<Output = Result<Option<AlertRow>, StoreError>> + Send;
    fn device_alerts(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Vec<AlertRow>, StoreError>> + Send;
    fn alerts(
        &self,
        status: Option<&str>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> impl Future<Output = Result<AlertsPage, StoreError>> + Send;
    fn episodes(
        &self,
        device_id: &str,
        alert_key: &str,
    ) -> impl Future<Output = Result<Vec<EpisodeRow>, StoreError>> + Send;
}

engine_impl! {
    impl ReadModels for Pool<DB> {
        async fn alert(&self, device_id: &str, alert_key: &str) -> Result<Option<AlertRow>, StoreError> {
            Ok(sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert_state WHERE device_id = $1 AND alert_key = $2"
            ))
            .bind(device_id)
            .bind(alert_key)
            .fetch_optional(self)
            .await?)
        }

        async fn device_alerts(&self, device_id: &str) -> Result<Vec<AlertRow>, StoreError> {
            Ok(sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert_state WHERE device_id = $1 ORDER BY alert_key"
            ))
            .bind(device_id)
            .fetch_all(self)
            .await?)
        }

        async fn alerts(&self, status: Option<&str>, after: Option<(&str, &str)>, limit: i64) -> Result<AlertsPage, StoreError> {
            let (after_device, after_key) = match after {
                Some((device, key)) => (Some(device), Some(key)),
                None => (None, None),
            };
            let alerts: Vec<AlertRow> = sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert_state \
                 WHERE ($1 IS NULL OR status = $1) \
                   AND ($2 IS NULL OR device_id > $2 OR (device_id = $2 AND alert_key > $3)) \
                 ORDER BY device_id, alert_key LIMIT $4"
            ))
            .bind(status)
            .bind(after_device)
            .bind(after_key)
            .bind(limit)
            .fetch_all(self)
            .await?;
            let next = if alerts.len() as i64 == limit {
                alerts.last().map(|a| (a.device_id.clone(), a.alert_key.clone()))
            } else {
                None
            };
            Ok(AlertsPage { alerts, next })
        }

        async fn episodes(&self, device_id: &str, alert_key: &str) -> Result<Vec<EpisodeRow>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT episode_number, opened_at, closed_at, duration_ms, alarm_count, severity, \
                   summary, opened_by_event_id, closed_by_event_id, reconciled \
                 FROM alert_episodes WHERE device_id = $1 AND alert_key = $2 \
                 ORDER BY episode_number",
            )
            .bind(device_id)
            .bind(alert_key)
            .fetch_all(self)
            .await?)
        }
    }
}
