//! The shared corpora (`../shared/corpora`) and the files of a folder.

use std::path::{Path, PathBuf};

/// `../shared/corpora` (or `$KLACHTD_CORPORA`), or None (after saying so
/// on stderr) when it is absent. A fresh clone has none: then every corpus
/// test prints a SKIPPED line and passes.
pub fn corpus_root(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KLACHTD_CORPORA").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_dir(),
            "KLACHTD_CORPORA={} is set but is not a folder",
            p.display()
        );
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {test}: ../shared/corpora not found (set KLACHTD_CORPORA)");
        None
    }
}

/// Files of `dir` (recursively), sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}
