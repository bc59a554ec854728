//! `klachtd classify FILE.eml [--explain] [--json]`: what intake would make
//! of one mail, without touching the register or the mailbox. Prints to
//! stdout only (never to the log): the verdict, the probability, the
//! article-4 elements, the persons concerned and, with `--explain`, the
//! features that weighed most.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::Settings;
use crate::domain::classify::{self, model, MailFacts, RosterEntry, Verdict};
use crate::mail::parse;

/// Features shown by `--explain`.
const EXPLAIN_TOP: usize = 15;

pub fn run(settings: Option<&Settings>, file: &Path, explain: bool, as_json: bool) -> Result<()> {
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let max_attachment = settings.map_or(10 << 20, |s| s.intake.max_attachment_bytes);
    let m = parse::parse(&raw, max_attachment);
    let c = classified(settings, &m);
    if as_json {
        let v = as_json_value(&c, explain);
        return emit(&(serde_json::to_string_pretty(&v)? + "\n"));
    }
    emit(&super::terminal_safe(&as_text(&c, explain), true))
}

/// What intake would make of one mail.
struct Classified {
    verdict: &'static str,
    automated: Option<&'static str>,
    probability: f64,
    top: Vec<model::Contribution>,
    language: &'static str,
    category: &'static str,
    regulation: bool,
    elements: classify::Elements,
    missing: Vec<&'static str>,
    concerns: Vec<String>,
}

fn classified(settings: Option<&Settings>, m: &parse::InboundMail) -> Classified {
    let automated = match settings {
        Some(s) => crate::flows::intake::automated(s, m),
        None => classify::automated(
            &MailFacts {
                headers: &m.headers,
                mime_type: &m.mime_type,
                from: m.from.as_ref(),
                subject: &m.subject,
                text: &m.text,
            },
            &[],
            "",
        ),
    };
    let reading = classify::read(&m.subject, &m.text);
    let (probability, top) = model::MODEL.explain(reading.prepared(), EXPLAIN_TOP);
    // The verdict intake would reach (the model's band plus the rules on top).
    let verdict = match automated {
        Some(_) => "automated",
        None => reading.score().verdict.as_str(),
    };
    let elements = reading.elements();
    let roster: Vec<RosterEntry> = settings
        .map(|s| {
            s.staff
                .iter()
                .map(|st| RosterEntry {
                    name: &st.name,
                    email: &st.email,
                    aliases: &st.aliases,
                })
                .collect()
        })
        .unwrap_or_default();
    Classified {
        verdict,
        automated: automated.map(|a| a.as_str()),
        probability,
        top,
        language: reading.lang().as_str(),
        category: classify::category(&m.subject, &m.text).as_str(),
        regulation: classify::asks_for_regulation(&m.subject, &m.text),
        missing: elements.missing().iter().map(|e| e.as_str()).collect(),
        elements,
        concerns: classify::concerned(&m.subject, &m.text, &roster)
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
    }
}

fn as_json_value(c: &Classified, explain: bool) -> serde_json::Value {
    let t = model::MODEL.file.thresholds;
    let features: Vec<_> = if explain {
        c.top
            .iter()
            .map(|f| json!({"feature": f.feature, "weight": (f.weight * 1000.0).round() / 1000.0}))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "verdict": c.verdict,
        "automated": c.automated,
        "probability": (c.probability * 1000.0).round() / 1000.0,
        "thresholds": { "possible": t.possible, "complaint": t.complaint },
        "language": c.language,
        "category": c.category,
        "asks_for_regulation": c.regulation,
        "nature": c.elements.nature,
        "dates": c.elements.dates,
        "desired_outcome": c.elements.desired_outcome,
        "missing": c.missing,
        "concerns": c.concerns,
        "features": features,
    })
}

fn as_text(c: &Classified, explain: bool) -> String {
    let mut out = String::new();
    let or_missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
    let _ = writeln!(out, "verdict:         {}", c.verdict);
    if let Some(a) = c.automated {
        let _ = writeln!(out, "automated:       {a} (never answered)");
    }
    let t = model::MODEL.file.thresholds;
    let _ = writeln!(
        out,
        "probability:     {:.3} (triage from {:.3}, case from {:.3})",
        c.probability, t.possible, t.complaint
    );
    let _ = writeln!(out, "language:        {}", c.language);
    let _ = writeln!(out, "category:        {}", c.category);
    let e = &c.elements;
    let _ = writeln!(out, "nature:          {}", or_missing(&e.nature));
    let _ = writeln!(out, "dates:           {}", or_missing(&e.dates));
    let _ = writeln!(out, "desired outcome: {}", or_missing(&e.desired_outcome));
    let concerns = if c.concerns.is_empty() {
        "nobody on the roster".to_string()
    } else {
        c.concerns.join(", ")
    };
    let _ = writeln!(out, "concerns:        {concerns}");
    if c.regulation {
        let also = if c.verdict == Verdict::Possible.as_str() {
            ", and still a possible complaint"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "regulation:      asks for the regulation (answered with it{also})"
        );
    }
    if explain {
        let _ = writeln!(
            out,
            "features that weighed most (+ towards complaint, - away from it):"
        );
        for f in &c.top {
            let _ = writeln!(out, "  {:+.3}  {}", f.weight, f.feature);
        }
    }
    out
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
