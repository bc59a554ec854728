//! The HTTP endpoint of `[metrics] listen`: `GET /metrics` (the
//! Prometheus text format, `crate::metrics`), `GET /healthz` (200 while
//! the daemon runs), `GET /readyz` (200 once intake and the outbox have
//! each worked since start; 503 with the reason before that and while an
//! alarm is raised).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::app::App;
use crate::metrics::Figures;
use crate::store::HEALTH_ROWS;

/// The register's figures, read now.
async fn figures(app: &App) -> Result<Figures> {
    let now = app.clock.now();
    let age = |t: jiff::Timestamp| now.duration_since(t).as_secs_f64().max(0.0);
    let intake = app.store.health("intake").await?;
    let (oldest, unsent, _) = app.store.unsent().await?;
    let today = crate::config::local_date(now, &app.settings.organisation.timezone);
    let raised = app.store.raised_alarms().await?;
    Ok(Figures {
        intake_age: intake.ok_at.map(age),
        unsent,
        unsent_age: oldest.map(age),
        cases: app.store.case_counts(today).await?,
        alarms: HEALTH_ROWS
            .iter()
            .map(|name| (*name, raised.contains(name)))
            .collect(),
    })
}

/// Ready: intake and outbox have each worked since start, and no alarm
/// is raised; else why not.
async fn ready(app: &App) -> Result<(bool, String)> {
    let mut why: Vec<String> = app
        .metrics
        .not_ready()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for name in app.store.raised_alarms().await? {
        why.push(format!("alarm raised: {name}"));
    }
    Ok((why.is_empty(), why.join("; ")))
}

/// Binds `addr` (before the daemon's work starts, so a wrong address is a
/// start-up error), then serves until `stop`.
pub async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {addr}"))
}

pub async fn serve(app: App, listener: tokio::net::TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app, &req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: String, content_type: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn answer(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    let m = &app.metrics;
    match req.uri().path() {
        "/metrics" => match async { m.render(&figures(app).await?) }.await {
            Ok(body) => text(StatusCode::OK, body, prometheus::TEXT_FORMAT),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "metrics: the register could not be read");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the register could not be read\n".into(),
                    PLAIN,
                )
            }
        },
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match ready(app).await {
            Ok((true, _)) => text(StatusCode::OK, "ready\n".into(), PLAIN),
            Ok((false, why)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"), PLAIN),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the register could not be read\n".into(),
                PLAIN,
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "/metrics, /healthz, /readyz\n".into(),
            PLAIN,
        ),
    }
}
