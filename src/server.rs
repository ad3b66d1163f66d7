//! Opening the ledger and serving HTTP until a shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{LedgerArgs, ServeArgs};
use crate::http::auth::{Auth, AuthConfigError};
use crate::http::{router, AppState};
use crate::ledger::Ledger;
use crate::notifications::config::ConfigError;
use crate::notifications::dispatcher::Dispatcher;
use crate::notifications::{Notifier, NotifyConfig};
use crate::projections::Projector;
use crate::store::{Db, StoreError};

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("notification configuration refused: {0}")]
    NotifyConfig(#[from] ConfigError),
    #[error("cannot set up the notification HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Connect, migrate the event store, read the notification configuration, and bring
/// the projections up to date with the log.
pub async fn open(args: &LedgerArgs) -> Result<AppState, OpenError> {
    // A bad notification file is refused before anything touches the database.
    let notifier = match &args.notify_config {
        Some(path) => Some(Arc::new(Notifier::new(NotifyConfig::load(path)?))),
        None => None,
    };
    let db = Db::connect(&args.connect_options()).await?;
    let fold = args.fold_config();
    let projector = Projector::new(db.clone(), fold).with_notifier(notifier.clone());
    projector.start().await?;
    let dispatcher = match &notifier {
        Some(notifier) => Some(Dispatcher::new(
            db.clone(),
            notifier.config.clone(),
            notifier.wake.clone(),
        )?),
        None => None,
    };
    let ledger = Ledger::new(
        db.clone(),
        projector.clone(),
        usize::from(args.max_append_attempts),
    )
    .with_fault_pause_before_projection(Duration::from_millis(
        args.fault_pause_before_projection_ms,
    ));
    Ok(AppState {
        ledger: Arc::new(ledger),
        projector,
        rebuilds: Arc::default(),
        db,
        fold,
        dispatcher,
        auth: Arc::default(),
        alertmanager: Arc::default(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("refusing to start: {0}")]
    AuthConfig(#[from] AuthConfigError),
    #[error(
        "refusing to listen on {0} without authentication: configure tokens with --auth-config \
         (see docs/auth.md), listen on a loopback address, or pass --allow-unauthenticated"
    )]
    Unauthenticated(std::net::SocketAddr),
}

/// The bearer tokens `serve` runs with, after checking that the combination of token
/// file and listen address is safe; says at start whether requests are authenticated.
pub fn sender_auth(args: &ServeArgs) -> Result<Auth, StartError> {
    let auth = match &args.auth_config {
        Some(path) => Auth::load(path, |name| std::env::var(name).ok())?,
        None => Auth::disabled(),
    };
    if auth.enabled() {
        tracing::info!(senders = ?auth.names(), "bearer tokens required on /v1");
    } else if args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "no tokens configured (--auth-config): requests are NOT authenticated; listening on loopback only"
        );
    } else if args.allow_unauthenticated {
        tracing::warn!(
            listen = %args.listen,
            "no tokens configured and --allow-unauthenticated: anyone who reaches this address can record and read"
        );
    } else {
        return Err(StartError::Unauthenticated(args.listen));
    }
    Ok(auth)
}

/// Serve until `shutdown` completes, then finish in-flight requests. The notification
/// dispatcher, when configured, runs alongside and finishes its current round.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let dispatcher = state
        .dispatcher
        .clone()
        .map(|dispatcher| tokio::spawn(dispatcher.run(stopped)));
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop.send(true);
    if let Some(dispatcher) = dispatcher {
        let _ = dispatcher.await;
    }
    served
}

/// Serve until Ctrl-C or SIGTERM, then give in-flight requests `grace` to finish; a
/// client that never completes its request cannot hold the process up beyond that.
pub async fn run_until_signal(
    listener: TcpListener,
    state: AppState,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let serve = run(listener, state, async {
        shutdown_signal().await;
        let _ = signalled.send(());
    });
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => result,
        _ = async {
            if on_signal.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "connections still open after the grace period; closing them");
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
