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
    let automated = match settings {
        Some(s) => crate::flows::intake::automated(s, &m),
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
    let model = &*model::MODEL;
    let reading = classify::read(&m.subject, &m.text);
    let (probability, top) = model.explain(reading.prepared(), EXPLAIN_TOP);
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
    let concerns: Vec<String> = classify::concerned(&m.subject, &m.text, &roster)
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    let regulation = classify::asks_for_regulation(&m.subject, &m.text);
    let missing: Vec<&str> = elements.missing().iter().map(|e| e.as_str()).collect();
    if as_json {
        let v = json!({
            "verdict": verdict,
            "automated": automated.map(|a| a.as_str()),
            "probability": (probability * 1000.0).round() / 1000.0,
            "thresholds": { "possible": model.file.thresholds.possible, "complaint": model.file.thresholds.complaint },
            "language": reading.lang().as_str(),
            "category": classify::category(&m.subject, &m.text).as_str(),
            "asks_for_regulation": regulation,
            "nature": elements.nature,
            "dates": elements.dates,
            "desired_outcome": elements.desired_outcome,
            "missing": missing,
            "concerns": concerns,
            "features": if explain { top.iter().map(|c| json!({"feature": c.feature, "weight": (c.weight * 1000.0).round() / 1000.0})).collect::<Vec<_>>() } else { Vec::new() },
        });
        return emit(&(serde_json::to_string_pretty(&v)? + "\n"));
    }
    let mut out = String::new();
    let or_missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
    let _ = writeln!(out, "verdict:         {verdict}");
    if let Some(a) = automated {
        let _ = writeln!(out, "automated:       {a} (never answered)");
    }
    let t = model.file.thresholds;
    let _ = writeln!(
        out,
        "probability:     {probability:.3} (triage from {:.3}, case from {:.3})",
        t.possible, t.complaint
    );
    let _ = writeln!(out, "language:        {}", reading.lang().as_str());
    let _ = writeln!(
        out,
        "category:        {}",
        classify::category(&m.subject, &m.text).as_str()
    );
    let _ = writeln!(out, "nature:          {}", or_missing(&elements.nature));
    let _ = writeln!(out, "dates:           {}", or_missing(&elements.dates));
    let _ = writeln!(
        out,
        "desired outcome: {}",
        or_missing(&elements.desired_outcome)
    );
    let _ = writeln!(
        out,
        "concerns:        {}",
        if concerns.is_empty() {
            "nobody on the roster".to_string()
        } else {
            concerns.join(", ")
        }
    );
    if regulation {
        let also = if verdict == Verdict::Possible.as_str() {
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
        for c in &top {
            let _ = writeln!(out, "  {:+.3}  {}", c.weight, c.feature);
        }
    }
    emit(&out)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
