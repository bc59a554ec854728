//! Reads the labelled corpus (`training/corpus/batch-NN.txt`, format in
//! `training/corpus/FORMAT.md`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Batches of the test split: other writers than the training batches;
/// never read by training or threshold choice.
pub const TEST_BATCHES: &[&str] = &["batch-07.txt", "batch-08.txt"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Complaint = 0,
    Borderline = 1,
    Ordinary = 2,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub batch: String,
    pub label: Label,
    pub lang: String,
    pub register: String,
    pub kind: String,
    pub hard: bool,
    pub nature: bool,
    pub dates: bool,
    pub outcome: bool,
    pub concerns: Vec<String>,
    pub from: String,
    pub subject: String,
    pub body: String,
}

/// The corpus, split.
pub struct Corpus {
    pub train: Vec<Record>,
    pub test: Vec<Record>,
    /// SHA-256 over the training batches' bytes, in file-name order.
    pub train_sha256: String,
}

/// The default corpus folder, beside this crate.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

pub fn load(dir: &Path) -> Result<Corpus> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("batch-") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no batch-*.txt in {}", dir.display());
    }
    let mut sha = Sha256::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let text = std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
        let records = parse(name, &text).with_context(|| format!("{}", f.display()))?;
        if TEST_BATCHES.contains(&name) {
            test.extend(records);
        } else {
            sha.update(name.as_bytes());
            sha.update(text.as_bytes());
            train.extend(records);
        }
    }
    train.sort_by(|a, b| a.id.cmp(&b.id));
    test.sort_by(|a, b| a.id.cmp(&b.id));
    let train_sha256 = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Corpus {
        train,
        test,
        train_sha256,
    })
}

/// Parses one batch file.
pub fn parse(batch: &str, text: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut chunks = text.split("\n=== ");
    let first = chunks.next().unwrap_or_default();
    let first = first
        .strip_prefix("=== ")
        .context("a batch starts with a line '=== ID'")?;
    for chunk in std::iter::once(first).chain(chunks) {
        let (head, body) = chunk
            .split_once("\n---\n")
            .with_context(|| format!("record {:?}: no '---' line", chunk.lines().next()))?;
        let mut lines = head.lines();
        let id = lines.next().unwrap_or_default().trim().to_string();
        let mut r = Record {
            id: id.clone(),
            batch: batch.to_string(),
            label: Label::Ordinary,
            lang: String::new(),
            register: String::new(),
            kind: String::new(),
            hard: false,
            nature: false,
            dates: false,
            outcome: false,
            concerns: Vec::new(),
            from: String::new(),
            subject: String::new(),
            body: body.trim_end().to_string() + "\n",
        };
        let yes = |v: &str| v == "yes";
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "label" => {
                    r.label = match v {
                        "complaint" => Label::Complaint,
                        "borderline" => Label::Borderline,
                        "ordinary" => Label::Ordinary,
                        _ => bail!("{id}: label {v:?}"),
                    }
                }
                "lang" => r.lang = v.to_string(),
                "register" => r.register = v.to_string(),
                "kind" => r.kind = v.to_string(),
                "hard" => r.hard = yes(v),
                "nature" => r.nature = yes(v),
                "dates" => r.dates = yes(v),
                "outcome" => r.outcome = yes(v),
                "concerns" => {
                    r.concerns = v
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "from" => r.from = v.to_string(),
                "subject" => r.subject = v.to_string(),
                _ => {}
            }
        }
        out.push(r);
    }
    Ok(out)
}
