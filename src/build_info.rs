//! What this binary is (a leaf): version facts baked in at build time by `build.rs`, recorded in
//! every run's `meta.json` and benchmark.

use std::time::SystemTime;

pub const BRASA_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short=12 HEAD`, with `-dirty` for uncommitted changes.
pub const GIT_COMMIT: &str = env!("BRASA_GIT_COMMIT");
pub const BURN_VERSION: &str = env!("BRASA_BURN_VERSION");

/// `time` as RFC 3339 UTC to the second, the form of every timestamp brasa writes.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
