//! The complaint model: logistic regression over the features of
//! `features.rs`, trained by `scripts/train` from `training/corpus/` and
//! shipped inside the binary (`assets/model/`). Nothing is
//! read or downloaded at run time.
//!
//! Two thresholds on the probability give three bands: from `complaint` a
//! case is opened and acknowledged at once, from `possible` the mail goes to
//! triage, below it the mail is left alone. The trainer chooses both on
//! cross-validated probabilities of the training split only.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::features::Prepared;

/// The committed complaint model, parsed once on first use.
pub static MODEL: LazyLock<Model> = LazyLock::new(|| {
    embedded(
        "complaint",
        include_str!("../../../assets/model/complaint.json"),
    )
});
/// Does a complaint state its nature (art. 4)? Trained on the complaints'
/// `nature` annotations.
pub static NATURE: LazyLock<Model> =
    LazyLock::new(|| embedded("nature", include_str!("../../../assets/model/nature.json")));
/// Does a complaint state a desired outcome (art. 4)? Trained on the
/// complaints' `outcome` annotations.
pub static OUTCOME: LazyLock<Model> = LazyLock::new(|| {
    embedded(
        "outcome",
        include_str!("../../../assets/model/outcome.json"),
    )
});

fn embedded(name: &str, json: &str) -> Model {
    // The trainer writes these files and a test checks that they parse; a
    // broken one is a build defect, not outside input.
    Model::from_json(json).unwrap_or_else(|e| panic!("assets/model/{name}.json: {e}"))
}

/// A model file (`assets/model/*.json`), as the trainer writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    /// Bumped when the features or the file change incompatibly.
    pub format: u32,
    /// SHA-256 over the training batches, in file-name order.
    pub corpus_sha256: String,
    /// Mails trained on (complaint, borderline, ordinary).
    pub trained_on: [usize; 3],
    /// L2 regularisation chosen by cross-validation.
    pub alpha: f64,
    pub bias: f64,
    pub thresholds: Thresholds,
    /// Weight per feature name, sorted by name.
    pub weights: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    /// From this probability on: triage.
    pub possible: f64,
    /// From this probability on: a case, acknowledged at once.
    pub complaint: f64,
}

/// The format this build reads and the trainer writes.
pub const FORMAT: u32 = 1;

pub struct Model {
    pub file: ModelFile,
    index: HashMap<String, u32>,
    weights: Vec<f32>,
    names: Vec<String>,
}

/// One feature's share in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub feature: String,
    pub weight: f64,
}

impl Model {
    pub fn from_json(json: &str) -> Result<Model, String> {
        let file: ModelFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if file.format != FORMAT {
            return Err(format!(
                "model format {} (this build reads {FORMAT}): run scripts/train",
                file.format
            ));
        }
        Ok(Model::new(file))
    }

    pub fn new(file: ModelFile) -> Model {
        let names: Vec<String> = file.weights.keys().cloned().collect();
        let weights = file.weights.values().map(|&w| w as f32).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Model {
            file,
            index,
            weights,
            names,
        }
    }

    /// The column of a feature name, if the model knows it.
    pub fn column(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// Probability that the mail is a complaint (or close enough to one that
    /// a person should look).
    pub fn probability(&self, p: &Prepared) -> f64 {
        let z = self.bias_plus(p, |_, _| {});
        sigmoid(z)
    }

    /// Is the probability at or above the `possible` threshold? (For the
    /// yes/no models, `nature` and `outcome`, that is their one threshold.)
    pub fn decides(&self, p: &Prepared) -> bool {
        self.probability(p) >= self.file.thresholds.possible
    }

    /// The probability and the `n` features that weighed most, either way.
    pub fn explain(&self, p: &Prepared, n: usize) -> (f64, Vec<Contribution>) {
        let mut parts = Vec::new();
        let z = self.bias_plus(p, |i, c| parts.push((i, c)));
        parts.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        let top = parts
            .into_iter()
            .take(n)
            .map(|(i, c)| Contribution {
                feature: self.names[i as usize].clone(),
                weight: f64::from(c),
            })
            .collect();
        (sigmoid(z), top)
    }

    fn bias_plus(&self, p: &Prepared, mut each: impl FnMut(u32, f32)) -> f64 {
        let v = p.vectorize(|f| self.column(f));
        let mut z = self.file.bias;
        for (i, x) in v {
            let c = self.weights[i as usize] * x;
            each(i, c);
            z += f64::from(c);
        }
        z
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
