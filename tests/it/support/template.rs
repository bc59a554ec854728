//! tests/fixtures/klachtd.toml, the test configuration, and the one rule
//! that fills it in. Only `std`, so src/config.rs's unit tests can include
//! this file as well (`#[cfg(test)] #[path = "../tests/it/support/template.rs"]
//! mod template;`).

/// The template: TOML with `{name}` placeholders, after a preamble that
/// says what they are.
pub const TEMPLATE: &str = include_str!("../../fixtures/klachtd.toml");

/// The template with each `(placeholder, value)` filled in. A section (a
/// `[…]` line up to the next one) holding a placeholder whose value is
/// `None` is left out whole, as is the preamble. Panics when the template
/// has a placeholder `values` does not name.
pub fn fill(values: &[(&str, Option<&str>)]) -> String {
    let mut starts = vec![0];
    let mut at = 0;
    for line in TEMPLATE.split_inclusive('\n') {
        if line.starts_with('[') {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(TEMPLATE.len());
    let mut text: String = starts
        .windows(2)
        .skip(1) // the preamble
        .map(|w| &TEMPLATE[w[0]..w[1]])
        .filter(|s| !values.iter().any(|(p, v)| v.is_none() && s.contains(p)))
        .collect();
    for (placeholder, value) in values {
        if let Some(v) = value {
            text = text.replace(placeholder, v);
        }
    }
    assert!(
        !text.contains('{'),
        "tests/fixtures/klachtd.toml has a placeholder without a value:\n{text}"
    );
    text
}
