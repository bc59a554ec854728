//! Trains klachtd's three small models from the labelled corpus in
//! `training/corpus/` (see its FORMAT.md):
//! - `complaint`: is this mail a complaint (or close enough that a person
//!   should look)? Its two thresholds give the three bands;
//! - `nature` and `outcome`: does a complaint state what went wrong, and what
//!   the client wants (art. 4)?
//!
//! Logistic regression (linfa) over the features of
//! `klachtd::domain::classify::features`, L2 strength chosen by 5-fold
//! cross-validation on the training split, thresholds chosen on the
//! cross-validated probabilities of the training split. The test split is
//! only read by `evaluate`.

pub mod corpus;
pub mod evaluate;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use klachtd::domain::classify::features::{self, Prepared};
use klachtd::domain::classify::model::{sigmoid, ModelFile, Thresholds, FORMAT};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

pub use corpus::{Label, Record};

/// How a model is learned. `RECIPE` is what ships; `klachtd-train compare`
/// measures other recipes on the same cross-validation.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// L2 strengths tried by cross-validation.
    pub alphas: &'static [f64],
    /// A word, bigram or subject word must occur in this many training mails
    /// to be a feature, a character 4-gram in `min_df_chars`: rarer ones
    /// only learn the corpus.
    pub min_df: usize,
    pub min_df_chars: usize,
    /// Naive-Bayes scaling (NBSVM) with this add-k smoothing, or none.
    pub nb_smoothing: Option<f64>,
    /// Feature groups left out (by prefix, e.g. "b:").
    pub without: &'static [&'static str],
}

/// L2 strength of the art. 4 heads (nature, outcome).
pub const HEAD_ALPHA: f64 = 1.0;

pub const RECIPE: Recipe = Recipe {
    alphas: &[0.1, 0.3],
    min_df: 2,
    min_df_chars: 3,
    nb_smoothing: Some(1.0),
    without: &[],
};
/// Weights smaller than this are left out of the shipped model.
///
/// 0: every feature of the training vocabulary ships, so that at run time
/// the per-group normalisation (`Prepared::vectorize`, which counts the
/// features the model knows) is the one the model was trained with.
pub const PRUNE: f64 = 0.0;
/// Share of ordinary mail the `possible` threshold lets into triage on the
/// cross-validated training split, at most (and at least, when every
/// complaint is already above that).
pub const TRIAGE_BUDGET: (f64, f64) = (0.05, 0.10);

/// The `complaint` threshold lies above this share of the ordinary
/// training mail (cross-validated). 1.0: above all of it. At 0.995 the test
/// split had 88% of complaints acknowledged at once but 3.6% of ordinary
/// mail acknowledged too, which the procedure must never do.
pub const ACK_QUANTILE: f64 = 1.0;

/// The three models, as the trainer writes them to `assets/model/`.
pub struct Trained {
    pub complaint: ModelFile,
    pub nature: ModelFile,
    pub outcome: ModelFile,
    /// Cross-validated probabilities of the training mails (complaint model).
    pub oof: Vec<f64>,
}

/// One labelled problem: prepared mails, their 0/1 answers, and the fold
/// each mail is held out in.
struct Problem<'a> {
    docs: Vec<&'a Prepared>,
    y: Vec<bool>,
    fold: Vec<usize>,
}

/// Folds by writer: every batch of the corpus is one writer with one brief,
/// so holding out a whole batch measures what a new writer meets (mixing a
/// writer's mails over folds measured 2-3 times fewer errors than the test
/// split then showed).
///
/// A batch of a genre rather than a writer (`SPREAD_BATCHES`: spam and
/// newsletters, which no other batch has) is spread over those folds
/// instead: held out whole, every fold would meet spam for the first time,
/// which the shipped model never does, and the thresholds would be set by
/// that.
fn folds_by_writer(records: &[&Record]) -> Vec<usize> {
    let batches: BTreeSet<&str> = records
        .iter()
        .map(|r| r.batch.as_str())
        .filter(|b| !SPREAD_BATCHES.contains(b))
        .collect();
    let batches: Vec<&str> = batches.into_iter().collect();
    let mut spread = 0;
    records
        .iter()
        .map(|r| match batches.iter().position(|b| *b == r.batch) {
            Some(i) => i,
            None => {
                spread += 1;
                spread % batches.len().max(1)
            }
        })
        .collect()
}

/// Batches of a genre, spread over the writers' folds (see `folds_by_writer`).
pub const SPREAD_BATCHES: &[&str] = &["batch-11.txt"];

/// A vocabulary: feature name → column, in name order.
struct Vocab {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    fn build(docs: &[&Prepared], recipe: &Recipe) -> Vocab {
        let mut df: HashMap<String, usize> = HashMap::new();
        for d in docs {
            for f in d.feature_names() {
                *df.entry(f).or_default() += 1;
            }
        }
        let names: BTreeSet<String> = df
            .into_iter()
            .filter(|(f, n)| {
                let min = if f.starts_with("c:") {
                    recipe.min_df_chars
                } else if f.starts_with("f:") {
                    1
                } else {
                    recipe.min_df
                };
                *n >= min && !recipe.without.iter().any(|w| f.starts_with(w))
            })
            .map(|(f, _)| f)
            .collect();
        let names: Vec<String> = names.into_iter().collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Vocab { names, index }
    }

    fn matrix(&self, docs: &[&Prepared]) -> Array2<f64> {
        let mut x = Array2::<f64>::zeros((docs.len(), self.names.len()));
        for (r, d) in docs.iter().enumerate() {
            for (c, v) in d.vectorize(|f| self.index.get(f).copied()) {
                x[[r, c as usize]] = f64::from(v);
            }
        }
        x
    }
}

/// Weights and bias of one fit.
struct Weights {
    bias: f64,
    weights: Vec<f64>,
}

/// Naive-Bayes log-count ratios per column (Wang and Manning's NBSVM): a
/// column's value is scaled by how much more often it occurs in one class
/// than in the other, so that the regression starts from what each feature
/// says about the label, and rare topical words weigh less.
fn nb_ratios(x: &Array2<f64>, y: &[bool], k: f64) -> Vec<f64> {
    let d = x.ncols();
    let (mut p, mut q) = (vec![k; d], vec![k; d]);
    for (row, &yes) in x.rows().into_iter().zip(y) {
        let acc = if yes { &mut p } else { &mut q };
        for (j, v) in row.iter().enumerate() {
            if *v != 0.0 {
                acc[j] += 1.0;
            }
        }
    }
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(&q)
        .map(|(a, b)| ((a / sp) / (b / sq)).ln())
        .collect()
}

fn fit(x: &Array2<f64>, y: &[bool], alpha: f64, recipe: &Recipe) -> Result<Weights> {
    let Some(k) = recipe.nb_smoothing else {
        return fit_plain(x, y, alpha);
    };
    let r = nb_ratios(x, y, k);
    let mut scaled = x.clone();
    for mut row in scaled.rows_mut() {
        for (v, f) in row.iter_mut().zip(&r) {
            *v *= f;
        }
    }
    let w = fit_plain(&scaled, y, alpha)?;
    // Fold the ratios into the weights: the shipped model scores plain features.
    Ok(Weights {
        bias: w.bias,
        weights: w.weights.iter().zip(&r).map(|(w, f)| w * f).collect(),
    })
}

fn fit_plain(x: &Array2<f64>, y: &[bool], alpha: f64) -> Result<Weights> {
    let targets = Array1::from(y.to_vec());
    let data = Dataset::new(x.clone(), targets);
    let model = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(300)
        .gradient_tolerance(1e-5)
        .fit(&data)
        .context("logistic regression")?;
    // linfa calls the larger class "positive": turn it round when that is
    // the ordinary mail, so that the probability is always "yes".
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Weights {
        bias: sign * model.intercept(),
        weights: model.params().iter().map(|w| sign * w).collect(),
    })
}

fn predict(f: &Weights, x: &Array2<f64>) -> Vec<f64> {
    x.rows()
        .into_iter()
        .map(|r| sigmoid(f.bias + r.iter().zip(&f.weights).map(|(a, b)| a * b).sum::<f64>()))
        .collect()
}

fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-9, 1.0 - 1e-9);
            -(if y { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / p.len().max(1) as f64
}

/// Cross-validated probabilities for every document (each fold held out in
/// turn), for each alpha; returns the best alpha and its probabilities.
fn cross_validate(p: &Problem, recipe: &Recipe, alphas: &[f64]) -> Result<(f64, Vec<f64>)> {
    let folds = p.fold.iter().copied().max().map_or(0, |m| m + 1);
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for &alpha in alphas {
        let mut oof = vec![0.0; p.docs.len()];
        for fold in 0..folds {
            let train: Vec<usize> = (0..p.docs.len()).filter(|&i| p.fold[i] != fold).collect();
            let held: Vec<usize> = (0..p.docs.len()).filter(|&i| p.fold[i] == fold).collect();
            if held.is_empty() {
                continue;
            }
            let tdocs: Vec<&Prepared> = train.iter().map(|&i| p.docs[i]).collect();
            let ty: Vec<bool> = train.iter().map(|&i| p.y[i]).collect();
            let vocab = Vocab::build(&tdocs, recipe);
            let f = fit(&vocab.matrix(&tdocs), &ty, alpha, recipe)?;
            let hdocs: Vec<&Prepared> = held.iter().map(|&i| p.docs[i]).collect();
            for (k, prob) in predict(&f, &vocab.matrix(&hdocs)).into_iter().enumerate() {
                oof[held[k]] = prob;
            }
        }
        let loss = log_loss(&oof, &p.y);
        if best.as_ref().is_none_or(|b| loss < b.1) {
            best = Some((alpha, loss, oof));
        }
    }
    let (alpha, _, oof) = best.context("no alpha to try")?;
    Ok((alpha, oof))
}

fn final_model(
    p: &Problem,
    recipe: &Recipe,
    alpha: f64,
    thresholds: Thresholds,
    sha: &str,
    counts: [usize; 3],
) -> Result<ModelFile> {
    let vocab = Vocab::build(&p.docs, recipe);
    let f = fit(&vocab.matrix(&p.docs), &p.y, alpha, recipe)?;
    let mut weights = BTreeMap::new();
    for (name, &w) in vocab.names.iter().zip(&f.weights) {
        let w = round(w);
        if w.abs() >= PRUNE {
            weights.insert(name.clone(), w);
        }
    }
    Ok(ModelFile {
        format: FORMAT,
        corpus_sha256: sha.to_string(),
        trained_on: counts,
        alpha,
        bias: round(f.bias),
        thresholds,
        weights,
    })
}

/// Five decimals: the file stays readable and diffs stay small.
fn round(x: f64) -> f64 {
    (x * 1e5).round() / 1e5
}

/// The value below which a share `q` of `v` lies (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let i = ((s.len() as f64 * q).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

/// Chooses the two thresholds on cross-validated probabilities:
/// - `possible` as low as the triage budget allows: every complaint and
///   borderline mail above it if at most 10% of ordinary mail then goes to
///   triage, otherwise where 5% does;
/// - `complaint` above the `ACK_QUANTILE` of the ordinary mail, by a
///   quarter of the distance left to 1 (ordinary mail must not be
///   acknowledged), never below `possible`.
pub fn choose_thresholds(oof: &[f64], labels: &[Label]) -> Thresholds {
    let pick = |want: &dyn Fn(Label) -> bool| -> Vec<f64> {
        oof.iter()
            .zip(labels)
            .filter(|(_, &l)| want(l))
            .map(|(&p, _)| p)
            .collect()
    };
    let positives = pick(&|l| l != Label::Ordinary);
    let ordinary = pick(&|l| l == Label::Ordinary);
    let lowest_positive = positives.iter().copied().fold(1.0, f64::min);
    let strict = quantile(&ordinary, 1.0 - TRIAGE_BUDGET.0);
    let loose = quantile(&ordinary, 1.0 - TRIAGE_BUDGET.1);
    let possible = strict.min((lowest_positive * 0.9).max(loose));
    let highest_ordinary = quantile(&ordinary, ACK_QUANTILE);
    let complaint = (highest_ordinary + 0.25 * (1.0 - highest_ordinary)).clamp(possible, 0.995);
    Thresholds {
        possible: round(possible),
        complaint: round(complaint),
    }
}

/// Cross-validated probabilities of the complaint model under `recipe`
/// (for `klachtd-train compare`), with the alpha chosen.
pub fn cross_validated(train: &[Record], recipe: &Recipe) -> Result<(f64, Vec<f64>)> {
    let prepared: Vec<Prepared> = train
        .iter()
        .map(|r| features::prepare(&r.subject, &r.body))
        .collect();
    let all = Problem {
        docs: prepared.iter().collect(),
        y: train.iter().map(|r| r.label != Label::Ordinary).collect(),
        fold: folds_by_writer(&train.iter().collect::<Vec<_>>()),
    };
    cross_validate(&all, recipe, recipe.alphas)
}

/// Trains all three models on the training split with `RECIPE`.
pub fn train(train: &[Record], sha: &str) -> Result<Trained> {
    train_with(train, sha, &RECIPE)
}

/// Trains with `recipe` (the test that checks the committed models gives
/// it only the alpha they were trained with, which halves its time).
pub fn train_with(train: &[Record], sha: &str, recipe: &Recipe) -> Result<Trained> {
    let prepared: Vec<Prepared> = train
        .iter()
        .map(|r| features::prepare(&r.subject, &r.body))
        .collect();
    let counts = |rs: &mut dyn Iterator<Item = &Record>| {
        let mut c = [0usize; 3];
        for r in rs {
            c[r.label as usize] += 1;
        }
        c
    };
    let all = Problem {
        docs: prepared.iter().collect(),
        y: train.iter().map(|r| r.label != Label::Ordinary).collect(),
        fold: folds_by_writer(&train.iter().collect::<Vec<_>>()),
    };
    let (alpha, oof) = cross_validate(&all, recipe, recipe.alphas)?;
    let labels: Vec<Label> = train.iter().map(|r| r.label).collect();
    let thresholds = choose_thresholds(&oof, &labels);
    let complaint = final_model(
        &all,
        recipe,
        alpha,
        thresholds,
        sha,
        counts(&mut train.iter()),
    )?;

    // The art. 4 heads learn from complaints and borderline mail only.
    let head = |answer: &dyn Fn(&Record) -> bool| -> Result<ModelFile> {
        let idx: Vec<usize> = (0..train.len())
            .filter(|&i| train[i].label != Label::Ordinary)
            .collect();
        let p = Problem {
            docs: idx.iter().map(|&i| &prepared[i]).collect(),
            y: idx.iter().map(|&i| answer(&train[i])).collect(),
            fold: Vec::new(),
        };
        let half = Thresholds {
            possible: 0.5,
            complaint: 0.5,
        };
        final_model(
            &p,
            recipe,
            HEAD_ALPHA,
            half,
            sha,
            counts(&mut idx.iter().map(|&i| &train[i])),
        )
    };
    let nature = head(&|r| r.nature)?;
    let outcome = head(&|r| r.outcome)?;
    Ok(Trained {
        complaint,
        nature,
        outcome,
        oof,
    })
}

/// The JSON text of a model file, as committed.
pub fn to_json(m: &ModelFile) -> String {
    let mut s = serde_json::to_string_pretty(m).unwrap_or_default();
    s.push('\n');
    s
}
