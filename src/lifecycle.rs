//! What the long-running commands share, `fjord demo` included: the shutdown signal, the stream
//! processor on a blocking thread, and a generated token.

use anyhow::Context;
use fjord_core::config::Config;
use rand::Rng;
use tokio::sync::watch;

/// A watch that turns true on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Runs the stream processor on a blocking thread until `shutdown` turns true.
pub async fn run_stream(
    config: Config,
    metrics: fjord_stream::metrics::StreamMetrics,
    mut shutdown: watch::Receiver<bool>,
    options: fjord_stream::runtime::RunOptions,
) -> anyhow::Result<fjord_stream::runtime::Summary> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|s| *s).await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let summary = tokio::task::spawn_blocking(move || {
        fjord_stream::runtime::run(&config, metrics, stop, options)
    })
    .await??;
    Ok(summary)
}

/// The forecast's profiles for the stream processor's `lot_full_predicted`, reloaded from the
/// lake every `forecast.refresh` until `shutdown` (`None` when the forecast or the rule is off).
/// The first load is awaited (for up to 10 s), so a restarted processor judges its first
/// readings with the same profiles as the run before it.
pub async fn forecast_profiles(
    config: &Config,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Option<fjord_core::forecast::SharedProfiles>> {
    if !config.forecast_enabled() || !config.alerts.lot_full_predicted.enabled {
        return Ok(None);
    }
    let lake = fjord_batch::Lake::new(&config.lake_url(), &config.lake.storage_options)?;
    let profiles = fjord_core::forecast::SharedProfiles::default();
    let (shared, every, mut stop) = (
        profiles.clone(),
        config.forecast.refresh.std(),
        shutdown.clone(),
    );
    // a new version of the table is read whole; an unchanged one costs a look at its log
    let load = |lake: fjord_batch::Lake, known: Option<u64>| async move {
        let loaded = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            fjord_batch::lake_forecast::load_if_changed(&lake, known),
        )
        .await;
        match loaded {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("the lake did not answer within 10 s")),
        }
    };
    // what the loop does with each look: the version the profiles are at now
    let take =
        move |shared: &fjord_core::forecast::SharedProfiles,
              known: Option<u64>,
              loaded: anyhow::Result<Option<(u64, fjord_core::forecast::Profiles)>>| {
            match loaded {
                Ok(Some((version, p))) => {
                    let (model, lots) = (p.model_version.clone(), p.lots.len());
                    if shared.set(p) {
                        tracing::info!(%model, lots, "lot_full_predicted uses new forecast profiles");
                    }
                    Some(version)
                }
                Ok(None) => known,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load the forecast profiles; keeping the last");
                    known
                }
            }
        };
    let mut known = take(&profiles, None, load(lake.clone(), None).await);
    tokio::spawn(async move {
        loop {
            // until the first profile, look every 5 s: it appears soon after a fresh start
            let wait = if known.is_some() {
                every
            } else {
                every.min(std::time::Duration::from_secs(5))
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            known = take(&shared, known, load(lake.clone(), known).await);
        }
    });
    Ok(Some(profiles))
}

/// A random 24-character alphanumeric token.
pub fn generate_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}
