//! What klachtd counts, and the endpoint that serves it (`[metrics]
//! listen`): `GET /metrics` in the Prometheus text format, `GET /healthz`
//! (200 while the daemon runs), `GET /readyz` (200 once intake and the
//! outbox have each succeeded since start, 503 before and while an alarm
//! is raised).
//!
//! Labels are closed sets (an outcome, a channel, a kind of mail, an alarm
//! name): never a complaint's text, an address or a reference (art. 9).
//! What the register knows (open and overdue cases, mail waiting, the last
//! successful intake, raised alarms) is read from it at each scrape, so
//! every daemon on one database reports the same.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tokio::sync::watch;

use crate::app::App;
use crate::domain::types::Status;
use crate::store::CaseFilter;

/// The health rows of the register whose alarms are reported.
const ALARMS: [&str; 3] = ["intake", "outbox", "auto_replies"];

/// Seconds from a complaint's arrival to its acknowledgement accepted by
/// SMTP: seconds when all is well, up to a day over a weekend backlog.
const ACK_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

pub struct Metrics {
    registry: Registry,
    mail_seen: IntCounterVec,
    cases_opened: IntCounterVec,
    outbox_sent: IntCounterVec,
    outbox_retried: IntCounterVec,
    outbox_failed: IntCounterVec,
    imap_reconnects: IntCounter,
    imap_idle: IntGauge,
    ack_latency: Histogram,
    intake_age: Gauge,
    unsent_age: Gauge,
    unsent: IntGauge,
    cases: IntGaugeVec,
    alarm: IntGaugeVec,
    intake_ok: AtomicBool,
    outbox_ok: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Names and help texts are fixed here, and each is registered once
        // in an empty registry: none of these can fail.
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("a metric registered once");
            c
        }
        let counters = |name: &str, help: &str, label: &str| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let m = Metrics {
            mail_seen: counters(
                "klachtd_mail_seen_total",
                "Mail intake looked at, by outcome.",
                "outcome",
            ),
            cases_opened: counters(
                "klachtd_cases_opened_total",
                "Cases opened, by channel (email, phone, forwarded).",
                "channel",
            ),
            outbox_sent: counters(
                "klachtd_outbox_sent_total",
                "Mail the SMTP server accepted, by kind.",
                "kind",
            ),
            outbox_retried: counters(
                "klachtd_outbox_retried_total",
                "Transient SMTP failures that will be retried, by kind.",
                "kind",
            ),
            outbox_failed: counters(
                "klachtd_outbox_failed_total",
                "Mail that failed for good, by kind.",
                "kind",
            ),
            imap_reconnects: reg(
                &registry,
                IntCounter::new(
                    "klachtd_imap_reconnects_total",
                    "IMAP intake sessions started again after one ended.",
                )
                .expect("valid metric"),
            ),
            imap_idle: reg(
                &registry,
                IntGauge::new(
                    "klachtd_imap_idle",
                    "1 while intake waits in IMAP IDLE, 0 while it polls or is disconnected.",
                )
                .expect("valid metric"),
            ),
            ack_latency: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "klachtd_ack_latency_seconds",
                        "From a complaint's arrival to its acknowledgement accepted by SMTP.",
                    )
                    .buckets(ACK_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            intake_age: reg(
                &registry,
                Gauge::new(
                    "klachtd_intake_last_success_age_seconds",
                    "Seconds since intake last read the mailbox successfully (-1: never).",
                )
                .expect("valid metric"),
            ),
            unsent_age: reg(
                &registry,
                Gauge::new(
                    "klachtd_outbox_oldest_unsent_age_seconds",
                    "Age of the oldest mail not yet sent (0: none waiting).",
                )
                .expect("valid metric"),
            ),
            unsent: reg(
                &registry,
                IntGauge::new("klachtd_outbox_unsent", "Mail waiting to be sent.")
                    .expect("valid metric"),
            ),
            cases: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "klachtd_cases",
                        "Cases by state: open (being handled), overdue (answer past due), triage.",
                    ),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            alarm: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "klachtd_alarm",
                        "1 while a health alarm is raised (the supervisors were told).",
                    ),
                    &["name"],
                )
                .expect("valid metric"),
            ),
            intake_ok: AtomicBool::new(false),
            outbox_ok: AtomicBool::new(false),
            registry,
        };
        let info = IntGaugeVec::new(
            Opts::new("klachtd_build_info", "The running version and commit."),
            &["version", "commit"],
        )
        .expect("valid metric");
        info.with_label_values(&[env!("CARGO_PKG_VERSION"), env!("KLACHTD_GIT_COMMIT")])
            .set(1);
        reg(&m.registry, info);
        m
    }

    /// A message intake decided about (`Outcome::label`: a closed set).
    pub fn mail_seen(&self, outcome: &str) {
        self.mail_seen.with_label_values(&[outcome]).inc();
    }

    pub fn case_opened(&self, channel: &str) {
        self.cases_opened.with_label_values(&[channel]).inc();
    }

    pub fn sent(&self, kind: &str) {
        self.outbox_sent.with_label_values(&[kind]).inc();
    }

    pub fn retried(&self, kind: &str) {
        self.outbox_retried.with_label_values(&[kind]).inc();
    }

    pub fn failed(&self, kind: &str) {
        self.outbox_failed.with_label_values(&[kind]).inc();
    }

    pub fn ack_accepted(&self, arrived: Timestamp, now: Timestamp) {
        let secs = now.duration_since(arrived).as_secs_f64().max(0.0);
        self.ack_latency.observe(secs);
    }

    /// An intake session started; `again`: not the first since start.
    pub fn imap_connected(&self, again: bool) {
        if again {
            self.imap_reconnects.inc();
        }
    }

    pub fn imap_idle(&self, idle: bool) {
        self.imap_idle.set(i64::from(idle));
    }

    /// Whether intake waits in IDLE now.
    pub fn idle_now(&self) -> bool {
        self.imap_idle.get() == 1
    }

    /// Intake read the mailbox successfully.
    pub fn intake_succeeded(&self) {
        self.intake_ok.store(true, Ordering::Relaxed);
    }

    /// The outbox sent (or had nothing to send) successfully.
    pub fn outbox_succeeded(&self) {
        self.outbox_ok.store(true, Ordering::Relaxed);
    }

    /// The text format, with the register's figures read now.
    pub async fn render(&self, app: &App) -> Result<String> {
        let now = app.clock.now();
        let intake = app.store.health("intake").await?;
        self.intake_age.set(
            intake
                .ok_at
                .map_or(-1.0, |t| now.duration_since(t).as_secs_f64().max(0.0)),
        );
        let (oldest, waiting, _) = app.store.unsent().await?;
        self.unsent.set(waiting);
        self.unsent_age
            .set(oldest.map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0)));
        let today = crate::config::local_date(now, &app.settings.organisation.timezone);
        let open = app
            .store
            .cases(&CaseFilter {
                open: true,
                ..CaseFilter::default()
            })
            .await?;
        let triage = open.iter().filter(|c| c.status == Status::Triage).count();
        let overdue = open
            .iter()
            .filter(|c| c.status != Status::Triage && c.response_due < today)
            .count();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.cases
            .with_label_values(&["open"])
            .set(count(open.len() - triage));
        self.cases
            .with_label_values(&["overdue"])
            .set(count(overdue));
        self.cases.with_label_values(&["triage"]).set(count(triage));
        for name in ALARMS {
            let raised = app.store.health(name).await?.alarm_at.is_some();
            self.alarm.with_label_values(&[name]).set(i64::from(raised));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .context("encoding the metrics")?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Ready: intake and outbox have each worked since start, and no alarm
    /// is raised.
    async fn ready(&self, app: &App) -> Result<(bool, String)> {
        let mut why = Vec::new();
        if !self.intake_ok.load(Ordering::Relaxed) {
            why.push("intake has not yet read the mailbox".to_string());
        }
        if !self.outbox_ok.load(Ordering::Relaxed) {
            why.push("the outbox has not yet had a good pass".to_string());
        }
        for name in ALARMS {
            if app.store.health(name).await?.alarm_at.is_some() {
                why.push(format!("alarm raised: {name}"));
            }
        }
        Ok((why.is_empty(), why.join("; ")))
    }
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
        "/metrics" => match m.render(app).await {
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
        "/readyz" => match m.ready(app).await {
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
