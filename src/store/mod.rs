//! The event store: connecting to SQLite or PostgreSQL, running the forward-only
//! migrations in `migrations/<engine>/`, and reading the log.
//!
//! Appending goes through cqrs-es (see [`event_store`]); everything here that is not
//! cqrs-es is written once and instantiated for both engines by [`engine_impl!`], so the
//! two engines run the same SQL text.

pub mod event_store;
pub mod log;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use log::{EventLog, EventRow, FeedEvent, StoredEvent, TimeField, TrailFilter};

/// The aggregate type of every device stream in the `events` table.
pub const DEVICE_STREAM: &str = "device";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("another rebuild is running on this database")]
    RebuildRunning,
    #[error("stored event could not be decoded: {0}")]
    Decode(#[from] serde_json::Error),
}

impl StoreError {
    /// Errors a sender should retry later: the database is away or overloaded.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => is_unavailable(error),
            _ => false,
        }
    }
}

pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout; PostgreSQL admin shutdown,
        // cannot-connect-now, too-many-connections and serialization trouble.
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
        ),
        _ => false,
    }
}

/// What little SQL differs between the engines, named so the shared SQL can say why.
pub trait Dialect {
    /// Begins a transaction that will write. SQLite must take the write lock up front:
    /// a deferred transaction that reads and then writes fails with SQLITE_BUSY instead
    /// of waiting for the lock.
    const BEGIN_WRITE: &'static str;
    /// Transactions below this id have all finished: the global feed serves only those,
    /// so an event that commits late is never skipped. SQLite has one writer at a time,
    /// so everything committed is final.
    const FEED_HORIZON: &'static str;
}

impl Dialect for sqlx::Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FEED_HORIZON: &'static str = "9223372036854775807";
}

impl Dialect for sqlx::Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FEED_HORIZON: &'static str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
}

/// A connection pool to one of the two engines. Cloning is cheap.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Evaluate `$body` with `$pool` bound to the concrete pool of either engine.
#[macro_export]
#[doc(hidden)]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Implement a trait for both engines from one body of SQL. Inside, `DB` names the
/// engine (`sqlx::Sqlite`, then `sqlx::Postgres`).
#[macro_export]
#[doc(hidden)]
macro_rules! engine_impl {
    (impl $trait:ident for $ty:ty { $($body:tt)* }) => {
        const _: () = {
            #[allow(unused_imports)]
            use sqlx::Sqlite as DB;
            impl $trait for $ty { $($body)* }
        };
        const _: () = {
            #[allow(unused_imports)]
            use sqlx::Postgres as DB;
            impl $trait for $ty { $($body)* }
        };
    };
    (impl<$lt:lifetime> $trait:ident for $ty:ty { $($body:tt)* }) => {
        const _: () = {
            #[allow(unused_imports)]
            use sqlx::Sqlite as DB;
            impl<$lt> $trait for $ty { $($body)* }
        };
        const _: () = {
            #[allow(unused_imports)]
            use sqlx::Postgres as DB;
            impl<$lt> $trait for $ty { $($body)* }
        };
    };
}

#[derive(Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

// Written by hand so that a `{:?}` in a log line never prints the database password.
impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &redacted_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// The database URL with any password replaced by `***`, fit for logs and `Debug`.
/// A URL that does not parse is hidden entirely rather than printed as it is.
pub fn redacted_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Cannot fail: a URL with a password has a host.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable database url>".to_string(),
    }
}

impl Db {
    /// Connect, creating an SQLite file when it does not exist, and migrate.
    pub async fn connect(options: &ConnectOptions) -> Result<Db, StoreError> {
        let db = if options.url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(&options.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // An acknowledged event must survive a power cut, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Db::Sqlite(pool)
        } else if options.url.starts_with("postgres:") || options.url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(&options.url)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        db.migrate().await?;
        if let Db::Postgres(pool) = &db {
            // Planner statistics for the log even where autovacuum is off.
            sqlx::query("ANALYZE events").execute(pool).await?;
        }
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// The statement that begins a write transaction on this engine.
    pub fn begin_write(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => <sqlx::Sqlite as Dialect>::BEGIN_WRITE,
            Db::Postgres(_) => <sqlx::Postgres as Dialect>::BEGIN_WRITE,
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Is the database reachable right now?
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_password_never_reaches_debug_output() {
        let options = ConnectOptions {
            url: "postgres://ledger:s3cret-pw@db.internal:5432/alerts".to_string(),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("s3cret-pw"), "{printed}");
        assert!(
            printed.contains("postgres://ledger:***@db.internal:5432/alerts"),
            "{printed}"
        );
    }

    #[test]
    fn urls_without_a_password_and_sqlite_paths_print_unchanged() {
        assert_eq!(
            redacted_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redacted_url("sqlite://alert-ledger.db"),
            "sqlite://alert-ledger.db"
        );
        assert_eq!(
            redacted_url("not a url with pw"),
            "<unparseable database url>"
        );
    }
}
