//! `quarry serve`: opens the data directory, serves until SIGTERM or Ctrl-C,
//! then drains in-flight calls (bounded by the grace period), flushes and
//! exits 0.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use quarry::auth::{Authenticator, KeysFile};
use quarry::config::{ServeArgs, ServeConfig};
use quarry::grpc::{self, ServerOptions, Services};
use quarry::http::HttpOptions;
use quarry_engine::Engine;
use tokio::sync::watch;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    // Keys before models: a server without them fails in milliseconds.
    let auth = authenticator(&config)?;
    let engine = open_engine(&config).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let http = bind_http(&config, &auth).await?;
    if let Some((_, _, bound)) = &http {
        println!("http on {bound}");
    }
    let http = http.map(|(listener, options, _)| (listener, options));
    let stop = stop_on_signal();
    if let Some(metrics_addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {metrics_addr}"))?;
        let bound = metrics.local_addr()?;
        tracing::info!(addr = %bound, "metrics at /metrics");
        println!("metrics on {bound}");
        tokio::spawn(quarry::metrics::serve(
            metrics,
            engine.clone(),
            stop.clone(),
        ));
    }
    match &config.backend {
        quarry::config::Backend::Embedded => {
            tracing::info!(%addr, data_dir = %config.engine.data_dir.display(), "quarry serving")
        }
        quarry::config::Backend::Qdrant(q) => {
            tracing::info!(%addr, qdrant = ?q.urls, "quarry serving (Qdrant backend)")
        }
    }
    // Scripts and tests read the bound address (useful with port 0) here.
    println!("listening on {addr}");
    std::io::stdout().flush()?;

    serve_until_stopped(
        engine,
        listener,
        ServerOptions {
            max_message_bytes: config.max_message_bytes,
            auth,
            tls: tls_config(&config)?,
        },
        http,
        config.shutdown_grace,
        stop,
    )
    .await
}

/// The server's authenticator: the keys file's keys, or nothing checked
/// when --no-auth says so. Neither is a configuration error, so that a
/// server never runs open by accident.
pub fn authenticator(config: &ServeConfig) -> anyhow::Result<Authenticator> {
    if config.no_auth {
        tracing::warn!(
            "authentication is OFF (--no-auth): every caller may read, write and delete everything"
        );
        return Ok(Authenticator::off());
    }
    let path = config.keys_file.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "no API keys: pass --keys-file FILE (create keys with `quarry keys create NAME --role reader|writer|admin`), or --no-auth for local development"
        )
    })?;
    let keys = KeysFile::read(path, false)?;
    anyhow::ensure!(
        !keys.keys.is_empty(),
        "keys file {} holds no keys (create one with `quarry keys create`)",
        path.display()
    );
    tracing::info!(keys = keys.keys.len(), file = %path.display(), "API keys loaded");
    Ok(Authenticator::with_keys(&keys))
}

/// The server's TLS settings from its PEM files (read now, so that a bad
/// path fails at start with its name).
pub fn tls_config(
    config: &ServeConfig,
) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).with_context(|| format!("cannot read the TLS {what} {}", p.display()))
    };
    let identity = tonic::transport::Identity::from_pem(
        read(&files.cert, "certificate")?,
        read(&files.key, "key")?,
    );
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(
            ca,
            "client CA",
        )?));
    }
    tracing::info!(mtls = files.client_ca.is_some(), "TLS on");
    Ok(Some(tls))
}

/// The HTTP listener a configuration asks for (`None` when it is off),
/// bound, with its options and bound address.
pub async fn bind_http(
    config: &ServeConfig,
    auth: &Authenticator,
) -> anyhow::Result<Option<(tokio::net::TcpListener, HttpOptions, std::net::SocketAddr)>> {
    let Some(addr) = config.http_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for HTTP on {addr} (set --http-listen ADDR, 127.0.0.1:0, or none)")
    })?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "HTTP API at /v1, web console at /");
    let options = HttpOptions {
        auth: auth.clone(),
        max_body_bytes: config.max_message_bytes,
        tls: http_tls(config)?,
    };
    Ok(Some((listener, options, bound)))
}

/// The HTTP listener's TLS, from the same PEM files as gRPC's; it offers
/// both HTTP/2 and HTTP/1.1 (tonic's offers h2 only, which HTTP/1.1
/// clients such as Python's cannot use).
pub fn http_tls(
    config: &ServeConfig,
) -> anyhow::Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the TLS certificate {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the TLS key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read the TLS client CA {}", ca.display()))?
            {
                roots.add(cert.with_context(|| {
                    format!("cannot read the TLS client CA {}", ca.display())
                })?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder.with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// Opens the engine a configuration describes (loading the models) on the
/// blocking pool.
pub async fn open_engine(config: &ServeConfig) -> anyhow::Result<Engine> {
    let engine_config = config.engine.clone();
    let backend = config.backend.clone();
    tokio::task::spawn_blocking(move || open_engine_on(engine_config, backend))
        .await?
        .context("cannot start the engine")
}

/// Opens the engine on `backend` (blocking: loads the models, then opens
/// the data directory or connects to the Qdrant cluster).
pub fn open_engine_on(
    config: quarry_engine::EngineConfig,
    backend: quarry::config::Backend,
) -> quarry_engine::Result<Engine> {
    match backend {
        quarry::config::Backend::Embedded => Engine::open(config),
        quarry::config::Backend::Qdrant(qdrant) => {
            Engine::open_on(config, move |config, dimension| {
                tracing::info!(nodes = ?qdrant.urls, "storage: Qdrant cluster");
                Ok(Arc::new(quarry_qdrant::QdrantStorage::connect(
                    &qdrant,
                    dimension,
                    config.record_key.clone(),
                )?))
            })
        }
    }
}

/// A receiver that turns true on SIGTERM or Ctrl-C.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Registered here, before the caller announces it listens: a signal
    // that arrives right after must not take the default action (exit).
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let (term, int) = signals;
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                _ = wait(term, "SIGTERM") => {},
                _ = wait(int, "SIGINT") => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("stop signal received: refusing new calls, finishing in-flight ones");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Serves until `stop` turns true, gives in-flight calls `grace` to
/// finish, then flushes the engine (store and index checkpoints).
pub async fn serve_until_stopped(
    engine: Engine,
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    http: Option<(tokio::net::TcpListener, HttpOptions)>,
    grace: std::time::Duration,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let services = Services::new(&engine);
    if let Some((http_listener, http_options)) = http {
        let router = quarry::http::router(services.clone(), &http_options);
        let mut http_stop = stop.clone();
        tokio::spawn(quarry::http::serve(
            router,
            http_listener,
            http_options.tls,
            async move {
                let _ = http_stop.wait_for(|stop| *stop).await;
            },
        ));
    }
    let mut server_stop = stop.clone();
    let server = grpc::serve(services, listener, options, async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    });
    let mut grace_stop = stop;
    tokio::select! {
        served = server => served.context("the gRPC server failed")?,
        _ = async move {
            let _ = grace_stop.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "in-flight calls did not finish within the grace period; stopping anyway"),
    }

    tokio::task::spawn_blocking(move || engine.flush())
        .await?
        .context("final flush failed")?;
    tracing::info!("quarry stopped");
    Ok(())
}
