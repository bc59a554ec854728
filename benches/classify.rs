//! Classification time per mail (release): every mail of the labelled
//! corpus (`training/corpus/`) through what intake calls for a mail that
//! reaches the model (`read` once, then the verdict, the article-4
//! elements and the category), plus the memory the models take once loaded.
//!
//!   cargo bench --bench classify [-- --rounds N]
//!
//! Prints p50, p99 and max per mail in microseconds, the resident memory
//! before and after the models are loaded (VmRSS) and the peak (VmHWM), and
//! writes target/bench/classify.json.

use std::path::Path;
use std::time::Instant;

use klachtd::domain::classify;

/// (subject, body) of every record in the corpus batches.
fn corpus(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("batch-") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus batch");
        for record in text.split("\n=== ").filter(|r| !r.trim().is_empty()) {
            let Some((head, body)) = record.split_once("\n---\n") else {
                continue;
            };
            let subject = head
                .lines()
                .find_map(|l| l.strip_prefix("subject:"))
                .unwrap_or("")
                .trim()
                .to_string();
            out.push((subject, body.to_string()));
        }
    }
    out
}

/// A field of /proc/self/status in kB (Linux), 0 elsewhere.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut rounds = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?} (only --rounds N)"),
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("training/corpus");
    let mails = corpus(&dir);
    assert!(!mails.is_empty(), "no mails in {}", dir.display());

    let rss_before = status_kb("VmRSS:");
    let loaded = Instant::now();
    let _ = classify::score_complaint("", "");
    let load_ms = loaded.elapsed().as_secs_f64() * 1e3;
    let rss_models = status_kb("VmRSS:");

    let mut times: Vec<f64> = Vec::with_capacity(mails.len() * rounds);
    let mut scoring: Vec<f64> = Vec::with_capacity(mails.len() * rounds);
    let mut complaints = 0usize;
    for _ in 0..rounds {
        for (subject, body) in &mails {
            let t = Instant::now();
            let reading = classify::read(subject, body);
            let score = reading.score();
            let scored = t.elapsed();
            let elements = reading.elements();
            let category = classify::category(subject, body);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            scoring.push(scored.as_secs_f64() * 1e6);
            complaints += usize::from(score.verdict == classify::Verdict::Complaint);
            std::hint::black_box((elements, category));
        }
    }
    let quantiles = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        (q(0.5), q(0.99), q(1.0))
    };
    let (p50, p99, max) = quantiles(&mut times);
    let (s50, s99, _) = quantiles(&mut scoring);
    let hwm = status_kb("VmHWM:");
    let chars: Vec<usize> = mails.iter().map(|(s, b)| s.len() + b.len()).collect();
    let longest = chars.iter().copied().max().unwrap_or(0);

    println!(
        "classify: {} mails x {rounds} rounds (longest {longest} bytes), per mail p50 {p50:.0} µs, p99 {p99:.0} µs, max {max:.0} µs",
        mails.len()
    );
    println!(
        "classify: of which reading the mail and the verdict: p50 {s50:.0} µs, p99 {s99:.0} µs"
    );
    println!(
        "classify: models loaded in {load_ms:.1} ms; RSS {rss_before} kB before, {rss_models} kB with the models (+{} kB), peak {hwm} kB",
        rss_models.saturating_sub(rss_before)
    );
    println!(
        "classify: {complaints} acknowledged-at-once verdicts in all rounds (a check that work was done)"
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let json = format!(
        "{{\"mails\":{},\"rounds\":{rounds},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\"max_us\":{max:.1},\"score_p50_us\":{s50:.1},\"score_p99_us\":{s99:.1},\"load_ms\":{load_ms:.2},\"rss_before_kb\":{rss_before},\"rss_models_kb\":{rss_models},\"peak_rss_kb\":{hwm}}}\n",
        mails.len()
    );
    if let Err(e) = std::fs::write(out.join("classify.json"), json) {
        eprintln!("classify: could not write target/bench/classify.json: {e}");
    }
}
