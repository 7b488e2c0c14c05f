//! `haltway serve`: the engine, a store, the HTTP API and the demo kind in one process, with
//! the settings of `settings`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, Store};
use haltway_http::{ApiConfig, Keys, RateLimiter};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::{SqliteOptions, SqliteStore};
use haltway_webhooks::{Dispatcher, SealKey};
use tokio_util::sync::CancellationToken;

use haltway_profiles::Profiles;

use crate::demo::DemoFindAll;
use crate::settings::{ServeArgs, StartError, StoreSettings};

/// Opens the store.
async fn open_store(settings: &StoreSettings) -> Result<Arc<dyn Store>, StartError> {
    match settings {
        StoreSettings::Sqlite { path, synchronous } => {
            let options = SqliteOptions::default().synchronous(*synchronous);
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, options))
                .await
                .map_err(|e| StartError(format!("opening the database failed: {e}")))?
                .map_err(|e| {
                    StartError(format!("cannot open the SQLite database: {}", e.report()))
                })?;
            Ok(Arc::new(store))
        }
        StoreSettings::Postgres { url, schema } => {
            let options = PgOptions::default().schema(schema.clone());
            let store = PgStore::connect(url, options).await.map_err(|e| {
                StartError(format!(
                    "cannot use the PostgreSQL database: {}",
                    e.report()
                ))
            })?;
            Ok(Arc::new(store))
        }
    }
}

fn describe(store: &StoreSettings) -> String {
    match store {
        StoreSettings::Sqlite { path, .. } => format!("SQLite file {}", path.display()),
        StoreSettings::Postgres { schema, .. } => format!("PostgreSQL (schema `{schema}`)"),
    }
}

/// Opens the key file; with no key at all, creates an admin key for tenant `default` and
/// prints it (the only time it is shown).
fn open_keys(path: &Path, now_ms: i64) -> Result<Arc<Keys>, StartError> {
    let keys = Keys::open(path).map_err(|e| StartError(e.to_string()))?;
    if keys.is_empty() {
        let (_, key) = keys
            .create(&"default".into(), "admin", true, now_ms)
            .map_err(|e| StartError(e.to_string()))?;
        println!(
            "haltway: created the first API key (tenant `default`, admin), kept hashed in {}.\n\
             It is shown only this once:\n\n    export HALTWAY_KEY={key}\n",
            path.display()
        );
    }
    Ok(Arc::new(keys))
}

/// Runs the server until SIGTERM or Ctrl-C, then shuts down gracefully: no new requests, open
/// event streams end, running jobs stop at their next checkpoint and go back to the queue with
/// their results (docs/semantics.md §3).
///
/// # Errors
/// A bad setting, a store or key file that cannot be opened, or an address that cannot be
/// bound.
pub async fn serve(args: &ServeArgs) -> Result<(), StartError> {
    let settings = args.settings()?;
    let store = open_store(&settings.store).await?;
    let mut builder = Engine::builder_shared(store)
        .concurrency(settings.concurrency)
        .max_running_per_tenant(settings.max_running_per_tenant)
        .retention(settings.retention)
        .sweep_interval(Duration::from_millis(settings.sweep_interval_ms))
        .schedule_interval(settings.schedules.then_some(Duration::from_secs(1)));
    #[cfg(feature = "otel")]
    if crate::otel::configured() {
        builder = builder.span_link(Arc::new(crate::otel::link));
    }
    if settings.demo {
        builder = builder.register(DemoFindAll);
    }
    if !settings.profiles.is_empty() {
        builder = haltway_profiles::register_kinds(builder);
    }
    let engine = builder.build();
    let keys = open_keys(&settings.keys_file, engine.now().0)?;
    let shutdown = CancellationToken::new();
    // One rate-limit budget per tenant across the API and the profiles.
    let limiter = Arc::new(RateLimiter::new(settings.rate_limit));
    let key = SealKey::load_or_create(&settings.webhooks.key_file)
        .map_err(|e| StartError(format!("webhooks: {e}")))?;
    let delivery = settings.webhooks.delivery();
    let config = ApiConfig::default()
        .webhooks(key.clone(), delivery.policy)
        .body_limit(settings.body_limit)
        .rate_limit(settings.rate_limit)
        .limiter(limiter.clone())
        .max_active_jobs(settings.max_active_jobs)
        .shutdown(shutdown.clone());
    let mut profiles = Profiles::new(engine.clone(), keys.clone())
        .shutdown(shutdown.clone())
        .limits(limiter, settings.max_active_jobs)
        .webhooks(key.clone());
    for product in &settings.profiles {
        profiles = profiles.mount(*product, crate::demo::backing(settings.demo_latency_ms));
    }
    let mut extra = profiles.router();
    if settings.ui {
        extra = extra.merge(haltway_http::dashboard());
    }
    let app = haltway_http::router_with(engine.clone(), keys, config, extra);
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", settings.listen)))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| StartError(format!("no local address: {e}")))?;
    engine.start();
    let dispatcher = if settings.webhooks.deliver {
        let d = Dispatcher::new(engine.store().clone(), engine.clock(), key, delivery)
            .map_err(StartError)?
            .render("native", Arc::new(haltway_http::NativeRender));
        let d = profiles
            .renderers()
            .into_iter()
            .fold(d, |d, (format, r)| d.render(format, r));
        Some(Arc::new(d).spawn(shutdown.clone()))
    } else {
        None
    };
    tracing::info!(%addr, store = %describe(&settings.store), kinds = ?engine.kinds(), profiles = ?settings.profiles, "haltway serving");
    // A line for people and for scripts that start the server on port 0.
    println!(
        "haltway: listening on http://{addr} ({})",
        describe(&settings.store)
    );
    if settings.ui {
        println!("haltway: dashboard at http://{addr}/ui");
    }
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing requests, requeueing running jobs");
        stop.cancel();
        // Everything acknowledged is already durable, so exiting is safe if a connection or a
        // handler will not let go.
        tokio::time::sleep(SHUTDOWN_LIMIT).await;
        tracing::error!(limit = ?SHUTDOWN_LIMIT, "graceful shutdown took too long; exiting");
        std::process::exit(1);
    });
    let server = axum::serve(haltway_http::ApiListener::new(listener), app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let (served, ()) = tokio::join!(server.into_future(), async {
        shutdown.cancelled().await;
        engine.shutdown().await;
    });
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    served.map_err(|e| StartError(format!("server error: {e}")))?;
    println!("haltway: stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
