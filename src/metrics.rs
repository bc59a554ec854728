//! What klachtd counts, in the Prometheus text format; served by
//! `workers::endpoint` (`[metrics] listen`).
//!
//! Labels are closed sets (an outcome, a channel, a kind of mail, an alarm
//! name): never a complaint's text, an address or a reference (art. 9).
//! What the register knows (open and overdue cases, mail waiting, the last
//! successful intake, raised alarms) is read from it at each scrape
//! ([`Figures`]), so every daemon on one database reports the same.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use jiff::Timestamp;
use prometheus::{
    CounterVec, Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Where intake and the outbox spend their time, for
/// `klachtd_stage_seconds_total` and the summary `run --once` logs (the
/// per-stage breakdown of BENCHMARKS.md). Outbox stages add up over its
/// SMTP sessions, which run at once.
pub const STAGES: &[&str] = &[
    "intake_fetch",
    "intake_parse",
    "intake_decide",
    "intake_commit",
    "intake_mark",
    "outbox_db",
    "outbox_marker",
    "outbox_smtp",
    "outbox_copy",
];

/// Seconds from a complaint's arrival to its acknowledgement accepted by
/// SMTP: seconds when all is well, up to a day over a weekend backlog.
const ACK_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

pub struct Metrics {
    registry: Registry,
    mail_seen: IntCounterVec,
    stages: CounterVec,
    cases_opened: IntCounterVec,
    outbox_sent: IntCounterVec,
    outbox_retried: IntCounterVec,
    outbox_failed: IntCounterVec,
    imap_reconnects: IntCounter,
    imap_idle: IntGauge,
    mailbox_held: IntGauge,
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
            stages: reg(
                &registry,
                CounterVec::new(
                    Opts::new(
                        "klachtd_stage_seconds_total",
                        "Seconds spent per stage of intake and the outbox (outbox stages summed over its SMTP sessions).",
                    ),
                    &["stage"],
                )
                .expect("valid metric"),
            ),
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
            mailbox_held: reg(
                &registry,
                IntGauge::new(
                    "klachtd_mailbox_held",
                    "1 while this daemon holds the mailbox lock and reads the mailbox, 0 while it stands by.",
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

    /// Adds the time since `since` to a stage (one of [`STAGES`]).
    pub fn stage(&self, stage: &'static str, since: std::time::Instant) {
        debug_assert!(STAGES.contains(&stage), "{stage}");
        self.stages
            .with_label_values(&[stage])
            .inc_by(since.elapsed().as_secs_f64());
    }

    /// Each stage's seconds so far, for a summary line.
    pub fn stage_summary(&self) -> String {
        STAGES
            .iter()
            .map(|s| format!("{s}={:.3}", self.stages.with_label_values(&[s]).get()))
            .collect::<Vec<_>>()
            .join(" ")
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

    /// This daemon holds the mailbox lock (true) or stands by.
    pub fn mailbox_held(&self, held: bool) {
        self.mailbox_held.set(i64::from(held));
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

    /// The text format, with `figures` (read from the register by the
    /// caller) in the gauges.
    pub fn render(&self, figures: &Figures) -> Result<String> {
        self.intake_age.set(figures.intake_age.unwrap_or(-1.0));
        self.unsent.set(figures.unsent);
        self.unsent_age.set(figures.unsent_age.unwrap_or(0.0));
        self.cases
            .with_label_values(&["open"])
            .set(figures.cases.open);
        self.cases
            .with_label_values(&["overdue"])
            .set(figures.cases.overdue);
        self.cases
            .with_label_values(&["triage"])
            .set(figures.cases.triage);
        for (name, raised) in &figures.alarms {
            self.alarm
                .with_label_values(&[name])
                .set(i64::from(*raised));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .context("encoding the metrics")?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// What keeps the daemon from being ready, as far as this process
    /// knows (intake and outbox not yet worked since start).
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if !self.intake_ok.load(Ordering::Relaxed) {
            why.push("intake has not yet read the mailbox");
        }
        if !self.outbox_ok.load(Ordering::Relaxed) {
            why.push("the outbox has not yet had a good pass");
        }
        why
    }
}

/// The register's figures a scrape shows (read by the endpoint, so this
/// module needs nothing of the daemon).
#[derive(Debug, Default)]
pub struct Figures {
    /// Seconds since the last successful intake; None: never.
    pub intake_age: Option<f64>,
    pub unsent: i64,
    /// Age of the oldest unsent mail; None: nothing waiting.
    pub unsent_age: Option<f64>,
    pub cases: crate::store::CaseCounts,
    /// Each health row's name and whether its alarm is raised.
    pub alarms: Vec<(&'static str, bool)>,
}
