//! `hapnd serve`: open the data dir, start the API, and on SIGTERM or Ctrl-C drain in-flight requests, finish queued
//! writes and exit 0.

use std::io::IsTerminal;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::serve::ListenerExt;
use hapnd_executor::PoolConfig;
use hapnd_policy::signing::ArtifactSigner;
use hapnd_server::api::{self, AppState};
use hapnd_server::catalog::Catalog;
use hapnd_server::catalog::sqlite::SqliteCatalog;
use hapnd_server::code::reducers::ProjectionSink;
use hapnd_server::code::registry::Registry;
use hapnd_server::code::{CodeRuntime, Reducers};
use hapnd_server::config::{LogFormat, ServeArgs, ServeConfig};
use hapnd_server::metrics::{CodeMetrics, Metrics};
use hapnd_server::projections::{ProjectionStore, Projections};
use hapnd_server::runtime::{ArtifactWorkers, Compiler, DotnetHost};
use hapnd_server::store::EventStore;
use hapnd_server::store::sqlite::{DEFAULT_WAL_REWIND_FRAMES, SqliteConfig, SqliteStore};
use tokio::signal::unix::{SignalKind, signal};

/// Held for the life of the process: two servers on one data dir would both write its shards.
const LOCK_FILE: &str = "hapnd.lock";
const DEFAULT_TENANT: &str = "default";

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(args)?;
    init_logging(config.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(serve(config))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))
        .context("open the data dir lock")?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another hapnd server is already using {}; stop it first",
            data_dir.display()
        )
    })?;

    let catalog = Arc::new(SqliteCatalog::open(data_dir, config.durability)?);
    // Created on first start at its default place; an operator-supplied key must exist.
    let create_key = config.signing_key == hapnd_server::signing_key::default_path(data_dir);
    let signer = Arc::new(hapnd_server::signing_key::load_or_create(
        &config.signing_key,
        create_key,
    )?);
    tracing::debug!(?signer, "artifact signing key ready");
    let shard_count: usize = catalog
        .setting_or_init("shard_count", &config.shards.to_string())?
        .parse()
        .context("the catalog's shard_count is not a number")?;
    if shard_count != config.shards {
        tracing::warn!(
            configured = config.shards,
            actual = shard_count,
            "the shard count is fixed when a data dir is created; using the data dir's"
        );
    }
    if catalog.tenant_count()? == 0 {
        let issued = catalog.create_tenant(DEFAULT_TENANT)?;
        println!("default tenant api key: {}", issued.api_key.expose());
        println!("(shown only this once; create more with `hapnd key create --tenant default`)");
    }

    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(SqliteStore::open(
        &SqliteConfig {
            data_dir: data_dir.clone(),
            shard_count,
            durability: config.durability,
            wal_rewind_frames: DEFAULT_WAL_REWIND_FRAMES,
        },
        &metrics.store,
    )?);
    let registry = Arc::new(Registry::open(data_dir, config.durability)?);
    let runtime = code_runtime(&config, signer, &metrics.code)?;
    let projection_store = Arc::new(ProjectionStore::open(data_dir)?);
    let projections = Projections::start(
        projection_store,
        store.clone(),
        registry.clone(),
        runtime.clone(),
        metrics.projections.clone(),
        config.projections.clone(),
    )?;
    let sink: Arc<dyn ProjectionSink> = projections.clone();
    let reducers = Reducers::start(registry, runtime, store.clone(), metrics.code.clone(), Some(sink))?;
    let state = Arc::new(AppState {
        store: store.clone(),
        catalog,
        metrics,
        reducers,
        projections: projections.clone(),
        limits: config.limits,
        draining: AtomicBool::new(false),
    });

    // Listen for SIGTERM before anyone can know the server is up: a signal that came before the handler would take
    // the default action and kill the process without a drain (seen as a flaky exit status in the tests).
    let terminate = signal(SignalKind::terminate());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let address = listener.local_addr().context("read the bound address")?;
    let listener = listener.tap_io(|stream| {
        // Responses are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "set TCP_NODELAY");
        }
    });
    tracing::info!(%address, data_dir = %data_dir.display(), shards = shard_count, durability = ?config.durability, "hapnd started");
    println!("listening on http://{address}");
    std::io::stdout().flush().context("write to stdout")?;

    let draining = state.clone();
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal(terminate).await;
            draining.draining.store(true, Ordering::Release);
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await
        .context("serve http")?;
    projections.shutdown();
    store.shutdown().await;
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}

/// The jailed C# compiler and workers, or why this server cannot run user code (then uploads are refused). A
/// `--dotnet-host` the operator named must work; the default place is used only when it holds a build.
fn code_runtime(
    config: &ServeConfig,
    signer: Arc<ArtifactSigner>,
    metrics: &CodeMetrics,
) -> anyhow::Result<Result<Arc<CodeRuntime>, String>> {
    let unavailable = |reason: String| -> anyhow::Result<Result<Arc<CodeRuntime>, String>> {
        if config.dotnet_host_required {
            anyhow::bail!("{reason}");
        }
        tracing::warn!(%reason, "user code is disabled: uploads of reducers are refused");
        Ok(Err(reason))
    };
    let host = match DotnetHost::from_build_artifacts(&config.dotnet_host) {
        Ok(host) => host,
        Err(error) => {
            return unavailable(format!(
                "the C# programs are not usable ({error}); build them with `dotnet build dotnet-host/Hapnd.slnx -c \
                 Release --artifacts-path DIR` and pass --dotnet-host DIR (default: dotnet-host next to hapnd)"
            ));
        }
    };
    let sandbox = match super::sandbox::host_sandbox() {
        Ok(sandbox) => sandbox,
        Err(error) => {
            return unavailable(format!(
                "the jail cannot be set up here ({error:#}); run `hapnd doctor`"
            ));
        }
    };
    let public_key = signer.public_key();
    let compiler = Compiler::new(sandbox.clone(), &host, signer, 1);
    let workers = ArtifactWorkers::new(
        sandbox,
        &host,
        public_key,
        // Two workers per tenant and reducer: a reducer stuck on one aggregate (until its 5 s limit) leaves the other
        // to serve the type's other aggregates. More would not serve more on a small host: every worker is a process
        // the requests wake in turn (measured: 4 workers took 210 µs of CPU per apply at 32 clients, 2 took 78 µs).
        PoolConfig {
            ready_per_key: 1,
            max_per_key: 2,
            ..PoolConfig::default()
        },
    );
    let runtime = Arc::new(CodeRuntime::new(compiler, workers, metrics));
    let warming = runtime.clone();
    tokio::spawn(async move { warming.compiler.prewarm().await });
    tracing::info!(dotnet_host = %config.dotnet_host.display(), "user code enabled");
    Ok(Ok(runtime))
}

async fn shutdown_signal(terminate: std::io::Result<tokio::signal::unix::Signal>) {
    let mut terminate = match terminate {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAPND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a file or journald gets plain text, and every span's fields (one
    // span per request) are formatted without escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
