//! Duplicate pictures: fingerprints of decoded images and the groups they form.
//!
//! A leaf shared by the run pipeline (`data`, which keeps duplicates on one side of a split)
//! and the dataset audit (`audit`, which reports them). It works on decoded images and indices
//! only: it never reads a file and knows nothing of splits or classes.

pub mod fingerprint;
pub mod group;

pub use fingerprint::{Fingerprint, NEAR_THRESHOLD, PHASH_BITS, Phash, fingerprint, is_near};
pub use group::{Group, Kind, clusters, crossing, group, leaked};
