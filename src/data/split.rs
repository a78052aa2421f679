//! The seeded train/validation split of the training folder.
//!
//! Sizes follow scikit-learn's `train_test_split(test_size=f, stratify=y)`: the validation set
//! holds `ceil(f * n)` items, shared between classes in proportion to their counts by largest
//! remainder. scikit-learn breaks remainder ties at random; here they go to the lowest label,
//! computed in exact integer arithmetic, which reproduces the reference notebook's per-class
//! counts on the brain-MRI data (val 165/165/79/165 of 826/822/395/827).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Indices into the training folder's items, each list sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Splits items with the given `labels` (indices into `classes`, which names them in errors).
pub fn split(
    labels: &[usize],
    classes: &[String],
    fraction: f64,
    stratify: bool,
    seed: u64,
) -> Result<SplitIndices> {
    let num_classes = classes.len();
    let n = labels.len();
    // scikit-learn: n_test = ceil(test_size * n); the epsilon absorbs 0.2 * 2870 = 574.0000001.
    let n_val = ((fraction * n as f64) - 1e-9).ceil().max(0.0) as usize;
    if n_val == 0 || n_val >= n {
        return Err(Error::Data(format!(
            "a validation fraction of {fraction} of {n} images leaves {n_val} for validation and {} for training; both need at least one",
            n.saturating_sub(n_val)
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut val = Vec::with_capacity(n_val);
    if stratify {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
        for (index, &label) in labels.iter().enumerate() {
            members[label].push(index);
        }
        if let Some(class) = members.iter().position(|m| m.len() == 1) {
            return Err(Error::Data(format!(
                "class `{}` has a single image: a stratified split (data.split.stratify = true) needs at least two per class; add images of it, or set data.split.stratify = false",
                classes[class]
            )));
        }
        let counts: Vec<usize> = members.iter().map(Vec::len).collect();
        for (class, quota) in allocate(&counts, n_val).into_iter().enumerate() {
            members[class].shuffle(&mut rng);
            val.extend_from_slice(&members[class][..quota]);
        }
    } else {
        let mut all: Vec<usize> = (0..n).collect();
        all.shuffle(&mut rng);
        val.extend_from_slice(&all[..n_val]);
    }
    val.sort_unstable();
    let mut in_val = vec![false; n];
    val.iter().for_each(|&i| in_val[i] = true);
    let train = (0..n).filter(|&i| !in_val[i]).collect();
    Ok(SplitIndices { train, val })
}

/// Moves every group (indices into the training folder) that the split divides to the side
/// holding most of its members (ties: training), so that no image has a duplicate across the
/// train/validation boundary. Returns how many images moved; the validation part's size may
/// differ from the requested fraction by that many. The groups must be disjoint (overlapping
/// duplicate groups merged first, as `audit::clusters` does): a later group could otherwise
/// split an earlier one.
pub fn keep_groups_together(split: &mut SplitIndices, groups: &[Vec<usize>]) -> usize {
    let n = split.train.len() + split.val.len();
    let mut in_val = vec![false; n];
    split.val.iter().for_each(|&i| in_val[i] = true);
    let mut moved = 0;
    for group in groups {
        let val_members = group.iter().filter(|&&i| in_val[i]).count();
        if val_members == 0 || val_members == group.len() {
            continue;
        }
        let to_val = val_members * 2 > group.len();
        for &i in group {
            if in_val[i] != to_val {
                in_val[i] = to_val;
                moved += 1;
            }
        }
    }
    split.train = (0..n).filter(|&i| !in_val[i]).collect();
    split.val = (0..n).filter(|&i| in_val[i]).collect();
    moved
}

/// Shares `total` draws between classes of `counts` items by largest remainder (exact
/// integer arithmetic; ties go to the lower class id).
pub fn allocate(counts: &[usize], total: usize) -> Vec<usize> {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return vec![0; counts.len()];
    }
    let mut quota: Vec<usize> = counts.iter().map(|&c| c * total / n).collect();
    let mut remainders: Vec<(usize, usize)> =
        counts.iter().enumerate().map(|(class, &c)| (c * total % n, class)).collect();
    // largest remainder first, then lowest class id
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = total - quota.iter().sum::<usize>();
    for &(_, class) in remainders.iter().take(missing) {
        quota[class] += 1;
    }
    quota
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("class{i}")).collect()
    }

    #[test]
    fn allocation_matches_the_reference_counts() {
        // Training folder of the brain-MRI data: glioma, meningioma, no tumour, pituitary.
        assert_eq!(allocate(&[826, 822, 395, 827], 574), [165, 165, 79, 165]);
        assert_eq!(allocate(&[10, 10, 10], 7), [3, 2, 2]);
        assert_eq!(allocate(&[5, 0], 2), [2, 0]);
    }

    #[test]
    fn split_is_stratified_disjoint_complete_and_seeded() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let a = split(&labels, &names(2), 0.2, true, 7).unwrap();
        assert_eq!(a.val.len(), 20);
        assert_eq!(a.val.iter().filter(|&&i| labels[i] == 1).count(), 5);
        let mut all: Vec<usize> = a.train.iter().chain(&a.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split(&labels, &names(2), 0.2, true, 7).unwrap(), a);
        assert_ne!(split(&labels, &names(2), 0.2, true, 8).unwrap(), a);
        let plain = split(&labels, &names(2), 0.2, false, 7).unwrap();
        assert_eq!(plain.val.len(), 20);
    }

    #[test]
    fn groups_end_up_on_one_side() {
        let mut s = SplitIndices { train: vec![0, 1, 2, 5], val: vec![3, 4, 6] };
        // {0, 3}: tie → train; {4, 6, 1}: two in val → val; {2, 5}: already together
        let moved = keep_groups_together(&mut s, &[vec![0, 3], vec![1, 4, 6], vec![2, 5]]);
        assert_eq!(moved, 2);
        assert_eq!(s, SplitIndices { train: vec![0, 2, 3, 5], val: vec![1, 4, 6] });
    }

    #[test]
    fn degenerate_fractions_are_errors() {
        let labels = vec![0, 0, 1, 1];
        assert!(split(&labels, &names(2), 0.0, true, 0).is_err());
        assert!(split(&labels, &names(2), 1.0, true, 0).is_err());
        assert!(split(&[0, 1, 1], &names(2), 0.4, true, 0).unwrap_err().to_string().contains("class `class0` has a single image"));
    }
}
