//! Shared helpers for klachtd's integration tests (`mod support;`).
#![allow(dead_code)]

pub mod mailstack;
