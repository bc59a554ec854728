//! The git commit `klachtd --version` names: `KLACHTD_GIT_COMMIT` if set
//! (a package built outside a checkout), else `git rev-parse` of this
//! checkout, else "unknown". A working tree with changes gets "-dirty".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KLACHTD_GIT_COMMIT");
    for path in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("KLACHTD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KLACHTD_GIT_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = out(&["rev-parse", "--short=12", "HEAD"]).filter(|c| !c.is_empty())?;
    let dirty =
        out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
