//! Finding an alert by its key alone, across devices: a PagerDuty `resolve` names only
//! its dedup key, so the device it belongs to is looked up here.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::Pool;

use crate::engine_impl;
use crate::store::StoreError;

/// One device's alert with the key looked up.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct KeyedAlert {
    pub device_id: String,
    pub status: String,
    pub since: Option<DateTime<Utc>>,
}

/// More devices than this sharing one alert key is not a PagerDuty dedup key in use.
pub const MAX_DEVICES_PER_KEY: i64 = 100;

pub trait AlertLookup {
    /// The devices that have an alert with this key (at most [`MAX_DEVICES_PER_KEY`]).
    /// `alert_state` has no index on `alert_key` alone, so this scans the table: fine
    /// for the occasional resolve without `payload.source`, not for a hot path.
    fn devices_with_alert_key(
        &self,
        alert_key: &str,
    ) -> impl Future<Output = Result<Vec<KeyedAlert>, StoreError>> + Send;
}

engine_impl! {
    impl AlertLookup for Pool<DB> {
        async fn devices_with_alert_key(&self, alert_key: &str) -> Result<Vec<KeyedAlert>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT device_id, status, since FROM alert_state WHERE alert_key = $1 \
                 ORDER BY device_id LIMIT $2",
            )
            .bind(alert_key)
            .bind(MAX_DEVICES_PER_KEY)
            .fetch_all(self)
            .await?)
        }
    }
}
