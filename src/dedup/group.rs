//! Duplicate groups from fingerprints, and the questions asked of them: which test items have a
//! copy on the training side, which items must stay together when a folder is split.
//!
//! Pure index arithmetic over a slice of fingerprints: knows nothing of files, splits or classes.

use std::collections::HashMap;

use super::fingerprint::{Fingerprint, PHASH_BITS, Phash};

/// How the members of a group are alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Identical decoded pixels (same [`Fingerprint::exact`]).
    Exact,
    /// Different pixels, perceptual hashes within the threshold (transitively).
    Near,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Near => "near",
        }
    }
}

/// Items that show the same picture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// 1-based; groups are numbered by size (largest first), then by first member.
    pub id: usize,
    pub kind: Kind,
    /// Indices into the fingerprint slice, ascending; at least two.
    pub members: Vec<usize>,
}

/// The duplicate groups of `fingerprints`.
///
/// - **Exact** groups: two or more items with the same [`Fingerprint::exact`] (one distinct
///   picture each).
/// - **Near** groups: the distinct pictures are linked when their perceptual distance
///   ([`Phash::distance`](super::Phash::distance)) is at most `threshold`; each connected component (so links chain:
///   A~B and B~C put A and C together) holding two or more distinct pictures is a group listing
///   every item that shows one of them.
///
/// An item can therefore be in one exact group and one near group; items in no group are unique.
/// The near links are found by multi-index hashing ([`link_near`]), not by comparing every pair.
pub fn group(fingerprints: &[Fingerprint], threshold: u32) -> Vec<Group> {
    let pictures = distinct_pictures(fingerprints);
    let mut groups: Vec<Group> = pictures
        .iter()
        .filter(|items| items.len() >= 2)
        .map(|items| Group { id: 0, kind: Kind::Exact, members: items.clone() })
        .collect();

    let hashes: Vec<Phash> = pictures.iter().map(|items| fingerprints[items[0]].perceptual).collect();
    let mut links = UnionFind::new(pictures.len());
    link_near(&hashes, threshold, &mut links);
    for component in links.components() {
        if component.len() >= 2 {
            let mut members: Vec<usize> = component.iter().flat_map(|&p| pictures[p].iter().copied()).collect();
            members.sort_unstable();
            groups.push(Group { id: 0, kind: Kind::Near, members });
        }
    }

    groups.sort_by(|a, b| {
        b.members.len().cmp(&a.members.len()).then(a.members[0].cmp(&b.members[0])).then(a.kind.cmp(&b.kind))
    });
    for (index, group) in groups.iter_mut().enumerate() {
        group.id = index + 1;
    }
    groups
}

/// Links every two of `hashes` at most `threshold` bits apart, directly or through others.
///
/// Multi-index hashing (Norouzi, Punjani & Fleet 2012): cut the 256 bits into `threshold + 1`
/// blocks; two hashes within `threshold` bits agree exactly on at least one block (pigeonhole),
/// so only hashes sharing some block's value are compared. For n distinct pictures that is about
/// n × (threshold + 1) table entries and the pairs within each bucket instead of n²/2 pairs; a pair
/// already linked through others is not compared again. The links are exactly those of comparing
/// every pair. Beyond 63 bits of threshold the blocks get too short to help: every pair is compared.
fn link_near(hashes: &[Phash], threshold: u32, links: &mut UnionFind) {
    let blocks = threshold as usize + 1;
    if blocks > 64 {
        for a in 0..hashes.len() {
            for b in a + 1..hashes.len() {
                if hashes[a].distance(&hashes[b]) <= threshold {
                    links.union(a, b);
                }
            }
        }
        return;
    }
    let bits = PHASH_BITS as usize;
    for block in 0..blocks {
        let mask = block_mask(block * bits / blocks, (block + 1) * bits / blocks);
        let mut buckets: HashMap<[u64; 4], Vec<usize>> = HashMap::new();
        for (index, hash) in hashes.iter().enumerate() {
            let key = std::array::from_fn(|w| hash.0[w] & mask[w]);
            buckets.entry(key).or_default().push(index);
        }
        for bucket in buckets.values().filter(|bucket| bucket.len() >= 2) {
            for (i, &a) in bucket.iter().enumerate() {
                for &b in &bucket[i + 1..] {
                    if links.find(a) != links.find(b) && hashes[a].distance(&hashes[b]) <= threshold {
                        links.union(a, b);
                    }
                }
            }
        }
    }
}

/// The bits `start..end` of a 256-bit hash, as four words.
fn block_mask(start: usize, end: usize) -> [u64; 4] {
    std::array::from_fn(|word| {
        let (lo, hi) = ((word * 64).max(start), ((word + 1) * 64).min(end));
        if lo >= hi {
            0
        } else {
            let width = hi - lo;
            let ones = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
            ones << (lo - word * 64)
        }
    })
}

/// Items grouped by exact hash, each list ascending, lists in order of their first item.
fn distinct_pictures(fingerprints: &[Fingerprint]) -> Vec<Vec<usize>> {
    let mut by_hash: HashMap<u128, usize> = HashMap::new();
    let mut pictures: Vec<Vec<usize>> = Vec::new();
    for (item, fingerprint) in fingerprints.iter().enumerate() {
        let picture = *by_hash.entry(fingerprint.exact).or_insert_with(|| {
            pictures.push(Vec::new());
            pictures.len() - 1
        });
        pictures[picture].push(item);
    }
    pictures
}

/// Groups with members on both sides: `in_a(i)` for some member and `in_b(j)` for another.
pub fn crossing<'a>(
    groups: &'a [Group],
    in_a: impl Fn(usize) -> bool + 'a,
    in_b: impl Fn(usize) -> bool + 'a,
) -> impl Iterator<Item = &'a Group> + 'a {
    groups.iter().filter(move |group| group.members.iter().any(|&i| in_a(i)) && group.members.iter().any(|&j| in_b(j)))
}

/// Test items that have an exact or near duplicate on the training side: the members `i` with
/// `is_test(i)` of every group that also holds a member `j ≠ i` with `is_training_side(j)`.
/// Ascending, without repeats. Dropping them from the test set gives leak-free test metrics.
///
/// `groups` must come from [`group`] over one slice holding both sides (e.g. the training
/// folder's items followed by the test folder's).
pub fn leaked(
    groups: &[Group],
    is_training_side: impl Fn(usize) -> bool,
    is_test: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut leaked = Vec::new();
    for group in groups {
        let training: Vec<usize> = group.members.iter().copied().filter(|&j| is_training_side(j)).collect();
        leaked.extend(group.members.iter().copied().filter(|&i| is_test(i) && training.iter().any(|&j| j != i)));
    }
    leaked.sort_unstable();
    leaked.dedup();
    leaked
}

/// For each of `len` items, the smallest item it must stay with: items that share a group,
/// directly or through other groups, get the same value; an item in no group gets its own index.
/// A splitter that keeps equal values on one side never puts a picture in both train and
/// validation.
pub fn clusters(groups: &[Group], len: usize) -> Vec<usize> {
    let mut links = UnionFind::new(len);
    for group in groups {
        for pair in group.members.windows(2) {
            links.union(pair[0], pair[1]);
        }
    }
    let mut smallest = vec![usize::MAX; len];
    for item in 0..len {
        let root = links.find(item);
        smallest[root] = smallest[root].min(item);
    }
    (0..len).map(|item| smallest[links.find(item)]).collect()
}

/// Disjoint sets with path halving and union by size.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(len: usize) -> Self {
        Self { parent: (0..len).collect(), size: vec![1; len] }
    }

    fn find(&mut self, mut item: usize) -> usize {
        while self.parent[item] != item {
            self.parent[item] = self.parent[self.parent[item]];
            item = self.parent[item];
        }
        item
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }

    /// The sets with their items ascending, in order of their smallest item.
    fn components(&mut self) -> Vec<Vec<usize>> {
        let mut by_root: HashMap<usize, usize> = HashMap::new();
        let mut components: Vec<Vec<usize>> = Vec::new();
        for item in 0..self.parent.len() {
            let root = self.find(item);
            let index = *by_root.entry(root).or_insert_with(|| {
                components.push(Vec::new());
                components.len() - 1
            });
            components[index].push(item);
        }
        components
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::Phash;

    /// A fingerprint whose perceptual hash has `low` as its first word, zeros elsewhere.
    fn print(exact: u128, low: u64) -> Fingerprint {
        Fingerprint { exact, perceptual: Phash([low, 0, 0, 0]) }
    }

    #[test]
    fn exact_and_near_groups_with_ids_by_size() {
        let fingerprints = [
            print(1, 0b0000),     // 0: picture A
            print(2, u64::MAX),   // 1: unique
            print(1, 0b0000),     // 2: A again
            print(3, 0b0111),     // 3: B, 3 bits from A
            print(4, 0xff << 20), // 4: C, far from A
            print(5, 0xfe << 20), // 5: D, 1 bit from C
            print(5, 0xfe << 20), // 6: D again
            print(1, 0b0000),     // 7: A again
        ];
        let groups = group(&fingerprints, 3);
        let summary: Vec<(usize, Kind, Vec<usize>)> = groups.into_iter().map(|g| (g.id, g.kind, g.members)).collect();
        assert_eq!(
            summary,
            [
                (1, Kind::Near, vec![0, 2, 3, 7]),
                (2, Kind::Exact, vec![0, 2, 7]),
                (3, Kind::Near, vec![4, 5, 6]),
                (4, Kind::Exact, vec![5, 6]),
            ]
        );
        // at a threshold of 2, A and B are no longer linked
        let groups = group(&fingerprints, 2);
        assert!(groups.iter().all(|g| !g.members.contains(&3)), "{groups:?}");
    }

    /// Components of the near relation by comparing every pair, as [`group`] did before it
    /// hashed blocks.
    fn brute_components(hashes: &[Phash], threshold: u32) -> Vec<Vec<usize>> {
        let mut links = UnionFind::new(hashes.len());
        for a in 0..hashes.len() {
            for b in a + 1..hashes.len() {
                if hashes[a].distance(&hashes[b]) <= threshold {
                    links.union(a, b);
                }
            }
        }
        links.components()
    }

    #[test]
    fn block_hashing_links_exactly_the_pairs_within_the_threshold() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // random pictures, each with a few copies a handful of random bits away (some chained)
        let mut hashes: Vec<Phash> = Vec::new();
        for _ in 0..300 {
            let base = Phash(std::array::from_fn(|_| rng.random()));
            hashes.push(base);
            let mut near = base;
            for _ in 0..rng.random_range(0..4) {
                for _ in 0..rng.random_range(0..14) {
                    let bit = rng.random_range(0..256);
                    near.0[bit / 64] ^= 1 << (bit % 64);
                }
                hashes.push(near);
            }
        }
        for threshold in [0, 1, 3, 10, 20, 63, 64, 200] {
            let mut links = UnionFind::new(hashes.len());
            link_near(&hashes, threshold, &mut links);
            assert_eq!(links.components(), brute_components(&hashes, threshold), "threshold {threshold}");
        }
    }

    #[test]
    fn block_masks_tile_the_hash() {
        for blocks in [1, 2, 3, 11, 64] {
            let mut covered = [0u64; 4];
            for block in 0..blocks {
                let mask = block_mask(block * 256 / blocks, (block + 1) * 256 / blocks);
                for w in 0..4 {
                    assert_eq!(covered[w] & mask[w], 0, "blocks overlap");
                    covered[w] |= mask[w];
                }
            }
            assert_eq!(covered, [u64::MAX; 4], "{blocks} blocks");
        }
    }

    #[test]
    fn near_links_chain_transitively() {
        let fingerprints = [print(1, 0b000), print(2, 0b001), print(3, 0b011), print(4, 0b111)];
        let groups = group(&fingerprints, 1);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members, [0, 1, 2, 3]);
        assert!(group(&fingerprints, 0).is_empty());
    }

    #[test]
    fn leaked_test_items_and_crossing_groups() {
        let groups = vec![
            Group { id: 1, kind: Kind::Near, members: vec![0, 5, 6] },
            Group { id: 2, kind: Kind::Exact, members: vec![5, 7] },
            Group { id: 3, kind: Kind::Exact, members: vec![1, 2] },
        ];
        let is_test = |i: usize| i >= 5;
        let is_training_side = |i: usize| i < 5;
        assert_eq!(leaked(&groups, is_training_side, is_test), [5, 6]);
        let ids: Vec<usize> = crossing(&groups, is_training_side, is_test).map(|g| g.id).collect();
        assert_eq!(ids, [1]);
        // an item on both sides does not leak into itself
        assert!(leaked(&groups[1..], |i| i == 5, |i| i == 5).is_empty());
    }

    #[test]
    fn clusters_merge_overlapping_groups() {
        let groups = vec![
            Group { id: 1, kind: Kind::Near, members: vec![1, 4] },
            Group { id: 2, kind: Kind::Exact, members: vec![4, 6] },
            Group { id: 3, kind: Kind::Exact, members: vec![2, 3] },
        ];
        assert_eq!(clusters(&groups, 7), [0, 1, 2, 2, 1, 5, 1]);
    }
}
