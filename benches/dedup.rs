//! Duplicate grouping at scale (issue 12, "the audit at scale"): `dedup::group` on synthetic
//! fingerprint sets of 5,000 to 100,000 pictures, against comparing every pair.
//!
//! `cargo bench --bench dedup` prints one line per set and distribution. Two distributions:
//! `uniform` (random 256-bit hashes) and `clustered` (1,000 prototypes, each picture 40 random
//! bits from its own: many pictures alike, as slices of one modality are). Each picture has a
//! 1-in-10 chance of a copy up to 8 bits away, so there are near groups to find.

use std::time::Instant;

use brasa::dedup::{self, Fingerprint, NEAR_THRESHOLD, Phash};
use rand::{Rng, SeedableRng};

fn flip(hash: &mut Phash, bits: usize, rng: &mut impl Rng) {
    for _ in 0..bits {
        let bit = rng.random_range(0..256);
        hash.0[bit / 64] ^= 1 << (bit % 64);
    }
}

fn fingerprints(n: usize, clustered: bool, seed: u64) -> Vec<Fingerprint> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let prototypes: Vec<Phash> = (0..1000).map(|_| Phash(std::array::from_fn(|_| rng.random()))).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut hash = if clustered { prototypes[rng.random_range(0..prototypes.len())] } else { Phash(std::array::from_fn(|_| rng.random())) };
        if clustered {
            flip(&mut hash, 40, &mut rng);
        }
        out.push(Fingerprint { exact: rng.random(), perceptual: hash });
        if rng.random_range(0..10) == 0 && out.len() < n {
            let bits = rng.random_range(0..=8);
            flip(&mut hash, bits, &mut rng);
            out.push(Fingerprint { exact: rng.random(), perceptual: hash });
        }
    }
    out
}

/// Pairs within the threshold by comparing every pair (what `group` did before).
fn all_pairs(prints: &[Fingerprint]) -> usize {
    let mut near = 0;
    for a in 0..prints.len() {
        for b in a + 1..prints.len() {
            near += usize::from(prints[a].perceptual.distance(&prints[b].perceptual) <= NEAR_THRESHOLD);
        }
    }
    near
}

fn main() {
    println!("dedup::group at threshold {NEAR_THRESHOLD}, one thread, {}", std::env::consts::ARCH);
    for clustered in [false, true] {
        for n in [5_000, 20_000, 100_000] {
            let prints = fingerprints(n, clustered, 7);
            let started = Instant::now();
            let groups = dedup::group(&prints, NEAR_THRESHOLD);
            let grouped = started.elapsed().as_secs_f64();
            let near = groups.iter().filter(|g| g.kind == dedup::Kind::Near).count();
            let started = Instant::now();
            let found = all_pairs(&prints);
            let pairs = format!("every pair: {:.2} s ({found} near pairs)", started.elapsed().as_secs_f64());
            let kind = if clustered { "clustered" } else { "uniform" };
            println!("{kind:>9} {n:>7} pictures: group {grouped:.3} s, {near} near groups; {pairs}");
        }
    }
}
