//! `klachtd-train train` rebuilds assets/model/*.json from training/corpus;
//! `klachtd-train evaluate` measures the committed models on the test split
//! (run it after `train`, in a new build, so it measures what ships).
//! `scripts/train` runs both.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use klachtd_train::{corpus, evaluate, to_json, train, Label, Recipe, RECIPE};

fn main() {
    if let Err(e) = run() {
        eprintln!("klachtd-train: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = corpus::default_dir();
    let c = corpus::load(&dir)?;
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/model");
    match args.first().map(String::as_str) {
        Some("train") => {
            let t = train(&c.train, &c.train_sha256)?;
            for (name, m) in [
                ("complaint", &t.complaint),
                ("nature", &t.nature),
                ("outcome", &t.outcome),
            ] {
                let path = models.join(format!("{name}.json"));
                std::fs::write(&path, to_json(m))
                    .with_context(|| format!("write {}", path.display()))?;
                println!(
                    "{name}: {} features, alpha {}, thresholds {:?}, trained on {:?}",
                    m.weights.len(),
                    m.alpha,
                    m.thresholds,
                    m.trained_on
                );
            }
            if std::env::var_os("KLACHTD_TRAIN_DEBUG").is_some() {
                for (r, p) in c.train.iter().zip(&t.oof) {
                    let bad = (r.label == Label::Ordinary && *p > 0.5)
                        || (r.label != Label::Ordinary && *p < 0.45);
                    if bad {
                        println!("{:.3} {:?} {} [{}] {}", p, r.label, r.id, r.kind, r.subject);
                    }
                }
            }
            let labels: Vec<Label> = c.train.iter().map(|r| r.label).collect();
            for (l, name) in [
                (Label::Complaint, "complaint"),
                (Label::Borderline, "borderline"),
                (Label::Ordinary, "ordinary"),
            ] {
                let mut p: Vec<f64> = t
                    .oof
                    .iter()
                    .zip(&labels)
                    .filter(|(_, &x)| x == l)
                    .map(|(&p, _)| p)
                    .collect();
                p.sort_by(f64::total_cmp);
                let q = |x: f64| klachtd_train::quantile(&p, x);
                println!(
                    "cross-validated {name}: min {:.3} p05 {:.3} p50 {:.3} p95 {:.3} max {:.3}",
                    q(0.0),
                    q(0.05),
                    q(0.5),
                    q(0.95),
                    q(1.0)
                );
            }
        }
        Some("evaluate") => {
            let r = evaluate::evaluate(&c.test);
            let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("EVALUATION.md");
            let text = format!(
                "# Complaint recognition on the test split\n\nWritten by `scripts/train` (`klachtd-train evaluate`): the committed models in `assets/model/`, through the functions intake calls, on `training/corpus/batch-07.txt` and `batch-08.txt` ({} mails by other writers than the training split; never used for training or thresholds).\n\n{}",
                c.test.len(),
                r.text
            );
            std::fs::write(&out, &text).with_context(|| format!("write {}", out.display()))?;
            print!("{}", r.text);
        }
        Some("compare") => compare(&c.train)?,
        Some("cues") => {
            // How often each cue fires per label on the training split.
            let mut n: std::collections::BTreeMap<&str, [usize; 3]> = Default::default();
            let mut total = [0usize; 3];
            for r in &c.train {
                total[r.label as usize] += 1;
                let p = klachtd::domain::classify::features::prepare(&r.subject, &r.body);
                for cue in p.cues() {
                    n.entry(cue).or_default()[r.label as usize] += 1;
                }
                if p.files_complaint() {
                    n.entry("(rule) files_complaint").or_default()[r.label as usize] += 1;
                }
                let model = &*klachtd::domain::classify::model::MODEL;
                if p.lodges_complaint() && model.probability(&p) >= model.file.thresholds.possible {
                    n.entry("(rule) lodges, in-sample p >= possible")
                        .or_default()[r.label as usize] += 1;
                    if r.label == Label::Ordinary {
                        println!("  LODGES {} [{}] {}", r.id, r.kind, r.subject);
                    }
                }
                if std::env::var("KLACHTD_TRAIN_CUE").is_ok_and(|w| {
                    p.cues().contains(&w.as_str())
                        || (w == "files_complaint" && p.files_complaint())
                }) && r.label == Label::Ordinary
                {
                    println!("  {} [{}] {}", r.id, r.kind, r.subject);
                }
            }
            println!("labels {total:?} (complaint, borderline, ordinary)");
            for (cue, c) in n {
                println!("{cue:22} {c:?}");
            }
        }
        _ => bail!("usage: klachtd-train train|evaluate|compare [RECIPE]|cues"),
    }
    Ok(())
}

/// Measures recipes against each other on the training split's writer-held-out
/// cross-validation (never on the test split): how many complaints would be
/// acknowledged at once, and how many reach triage, at the thresholds the
/// trainer would choose.
fn compare(train: &[klachtd_train::Record]) -> Result<()> {
    let base = RECIPE;
    let only: Option<String> = std::env::args().nth(2);
    let recipes: Vec<(&str, Recipe)> = vec![
        ("shipped", base.clone()),
        (
            "min_df 4",
            Recipe {
                min_df: 4,
                min_df_chars: 5,
                ..base.clone()
            },
        ),
        (
            "alpha 1,3",
            Recipe {
                alphas: &[1.0, 3.0],
                ..base.clone()
            },
        ),
        (
            "NB k=3",
            Recipe {
                nb_smoothing: Some(3.0),
                ..base.clone()
            },
        ),
        (
            "no bigrams",
            Recipe {
                without: &["b:"],
                ..base.clone()
            },
        ),
        (
            "no NB",
            Recipe {
                nb_smoothing: None,
                alphas: &[0.03, 0.1, 0.3],
                ..base.clone()
            },
        ),
    ];
    let recipes = recipes
        .into_iter()
        .filter(|(n, _)| only.as_deref().is_none_or(|o| n.starts_with(o)));

    let labels: Vec<Label> = train.iter().map(|r| r.label).collect();
    for (name, r) in recipes {
        let (alpha, oof) = klachtd_train::cross_validated(train, &r)?;
        let t = klachtd_train::choose_thresholds(&oof, &labels);
        let share = |l: Label, min: f64| {
            let v: Vec<f64> = oof
                .iter()
                .zip(&labels)
                .filter(|(_, &x)| x == l)
                .map(|(&p, _)| p)
                .collect();
            100.0 * v.iter().filter(|&&p| p >= min).count() as f64 / v.len().max(1) as f64
        };
        println!(
            "{name:12} alpha {alpha:<4} thresholds {:.3}/{:.3}: complaints acked {:5.1}% reach {:5.1}%, borderline reach {:5.1}%, ordinary triage {:4.1}% acked {:3.1}%, auc {:.4}",
            t.possible,
            t.complaint,
            share(Label::Complaint, t.complaint),
            share(Label::Complaint, t.possible),
            share(Label::Borderline, t.possible),
            share(Label::Ordinary, t.possible),
            share(Label::Ordinary, t.complaint),
            auc(&oof, &labels),
        );
        if std::env::var_os("KLACHTD_TRAIN_DEBUG").is_some() {
            let mut ord: Vec<(f64, &klachtd_train::Record)> = oof
                .iter()
                .copied()
                .zip(train)
                .filter(|(_, r)| r.label == Label::Ordinary)
                .collect();
            ord.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (p, r) in ord.iter().take(12) {
                println!("  ordinary {p:.3} {} [{}] {}", r.id, r.kind, r.subject);
            }
            let mut com: Vec<(f64, &klachtd_train::Record)> = oof
                .iter()
                .copied()
                .zip(train)
                .filter(|(_, r)| r.label == Label::Complaint)
                .collect();
            com.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (p, r) in com.iter().take(12) {
                println!("  complaint {p:.3} {} [{}] {}", r.id, r.kind, r.subject);
            }
        }
    }
    Ok(())
}

/// Area under the ROC curve of complaints against ordinary mail.
fn auc(p: &[f64], labels: &[Label]) -> f64 {
    let pos: Vec<f64> = p
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == Label::Complaint)
        .map(|(&p, _)| p)
        .collect();
    let neg: Vec<f64> = p
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == Label::Ordinary)
        .map(|(&p, _)| p)
        .collect();
    let mut wins = 0.0;
    for a in &pos {
        for b in &neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()).max(1) as f64
}
