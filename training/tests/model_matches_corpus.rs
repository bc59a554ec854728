//! The committed models (assets/model/) are what `scripts/train` makes of
//! the committed corpus: the corpus hash matches, and training again gives
//! the same features, weights and thresholds. Fails when the corpus, the
//! features or the trainer changed without `scripts/train`.

use klachtd::domain::classify::model::ModelFile;
use klachtd_train::{corpus, train_with};

fn committed(name: &str) -> ModelFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/model")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("committed model");
    serde_json::from_str(&text).expect("model file parses")
}

fn same(a: &ModelFile, b: &ModelFile, name: &str) -> Vec<String> {
    let mut diff = Vec::new();
    let close = |x: f64, y: f64| (x - y).abs() <= 2e-4 * (1.0 + x.abs().max(y.abs()));
    if a.corpus_sha256 != b.corpus_sha256 {
        diff.push(format!("{name}: corpus hash differs"));
    }
    if a.trained_on != b.trained_on || a.alpha != b.alpha {
        diff.push(format!(
            "{name}: trained on {:?}/alpha {} vs {:?}/{}",
            a.trained_on, a.alpha, b.trained_on, b.alpha
        ));
    }
    if !close(a.bias, b.bias)
        || !close(a.thresholds.possible, b.thresholds.possible)
        || !close(a.thresholds.complaint, b.thresholds.complaint)
    {
        diff.push(format!(
            "{name}: bias or thresholds differ: {} {:?} vs {} {:?}",
            a.bias, a.thresholds, b.bias, b.thresholds
        ));
    }
    let mut off = 0;
    for (f, w) in &a.weights {
        match b.weights.get(f) {
            Some(v) if close(*w, *v) => {}
            // Pruning may keep or drop a weight right at the edge.
            None if w.abs() < 2.0 * klachtd_train::PRUNE => {}
            _ => off += 1,
        }
    }
    off += b
        .weights
        .keys()
        .filter(|f| {
            !a.weights.contains_key(*f) && b.weights[*f].abs() >= 2.0 * klachtd_train::PRUNE
        })
        .count();
    if off > 0 {
        diff.push(format!("{name}: {off} weights differ"));
    }
    diff
}

#[test]
fn the_committed_models_are_what_training_on_the_committed_corpus_gives() {
    let c = corpus::load(&corpus::default_dir()).expect("corpus");
    let complaint = committed("complaint");
    assert_eq!(
        complaint.corpus_sha256, c.train_sha256,
        "training/corpus changed: run scripts/train and commit assets/model"
    );
    // Cross-validation tries only the alpha the committed model was trained
    // with: that alpha's cross-validated probabilities, and so the
    // thresholds, are the same as when every alpha is tried.
    let alphas: &'static [f64] = Box::leak(vec![complaint.alpha].into_boxed_slice());
    assert!(
        klachtd_train::RECIPE.alphas.contains(&complaint.alpha),
        "the committed alpha {} is not one the recipe tries",
        complaint.alpha
    );
    let recipe = klachtd_train::Recipe {
        alphas,
        ..klachtd_train::RECIPE
    };
    let t = train_with(&c.train, &c.train_sha256, &recipe).expect("training");
    let mut diff = same(&complaint, &t.complaint, "complaint");
    diff.extend(same(&committed("nature"), &t.nature, "nature"));
    diff.extend(same(&committed("outcome"), &t.outcome, "outcome"));
    assert!(diff.is_empty(), "run scripts/train: {diff:#?}");
}

#[test]
fn the_test_split_is_other_writers_and_never_trained_on() {
    let c = corpus::load(&corpus::default_dir()).expect("corpus");
    assert!(
        c.train.len() >= 600 && c.test.len() >= 200,
        "{} / {}",
        c.train.len(),
        c.test.len()
    );
    assert!(c
        .train
        .iter()
        .all(|r| !corpus::TEST_BATCHES.contains(&r.batch.as_str())));
    assert!(c
        .test
        .iter()
        .all(|r| corpus::TEST_BATCHES.contains(&r.batch.as_str())));
    let ids: std::collections::BTreeSet<&str> = c
        .train
        .iter()
        .chain(&c.test)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids.len(), c.train.len() + c.test.len(), "ids are unique");
}
