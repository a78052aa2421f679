//! The dataset audit: pictures fingerprinted, and the duplicates among them — exact and near.
//!
//! [`fingerprint()`] and [`group()`] work on decoded images and indices only, so the run pipeline
//! can reuse them on what it has in memory. The audit never changes the dataset.

pub mod fingerprint;
pub mod group;

pub use fingerprint::{Fingerprint, NEAR_THRESHOLD, PHASH_BITS, Phash, fingerprint, is_near};
pub use group::{Group, Kind, clusters, crossing, group, leaked};
