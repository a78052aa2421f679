//! Data: the image folder on disk → labelled items → train/validation/test → decoded images
//! (in memory, in the shared on-disk cache, or decoded on demand) → batches of normalised
//! tensors, assembled ahead on worker threads. Never imports the model or the trainer.

pub mod cache;
pub mod download;
pub mod folder;
pub mod images;
pub mod loader;
pub mod pixels;
pub mod prefetch;
pub mod split;
pub mod tensor;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use folder::Item;
pub use split::SplitIndices;

use crate::error::{Error, Result};

/// Where a dataset lives and how it is laid out (`<root>/<split>/<class>/<image>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub root: PathBuf,
    pub train: String,
    pub test: Option<String>,
    /// Class names in label order; the train folder's sorted sub-folders when `None`.
    pub classes: Option<Vec<String>>,
}

/// How the training folder is split into train and validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRule {
    pub validation: f64,
    pub stratify: bool,
    pub seed: u64,
    /// Keep duplicate groups on one side (applied once the images are decoded and fingerprinted).
    pub group_duplicates: bool,
}

/// A scanned dataset with its train/validation split fixed.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub classes: Vec<String>,
    /// Every image of the training folder; `split` indexes into it.
    pub train_folder: Vec<Item>,
    pub split: SplitIndices,
    pub test: Vec<Item>,
    /// Files found in the split folders that are not images.
    pub skipped: Vec<PathBuf>,
    /// Image files left out because they cannot be read (`data.unreadable = "skip"`).
    pub left_out: Vec<LeftOut>,
}

/// An image file left out of a run because it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub path: PathBuf,
    pub label: usize,
    /// In the test folder (else the training folder).
    pub test: bool,
    /// Why it cannot be read.
    pub message: String,
}

/// Per-class image counts of each part of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// A part of the split that a class has no images in (a run must train and validate every class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingFrom {
    Training,
    Validation,
    /// neither part: every image of the class was left out
    Both,
}

impl Counts {
    /// The classes (index, part) with no images on one side of the split, or none at all.
    pub fn classes_missing_a_side(&self) -> impl Iterator<Item = (usize, MissingFrom)> + '_ {
        self.train.iter().zip(&self.val).enumerate().filter_map(|(class, counts)| match counts {
            (0, 0) => Some((class, MissingFrom::Both)),
            (0, _) => Some((class, MissingFrom::Training)),
            (_, 0) => Some((class, MissingFrom::Validation)),
            _ => None,
        })
    }
}

impl Dataset {
    /// Scans the folders of `layout` and splits the training folder by `rule`.
    pub fn scan(layout: &Layout, rule: SplitRule) -> Result<Self> {
        let train_dir = layout.root.join(&layout.train);
        if !train_dir.is_dir() {
            return Err(Error::Data(format!("training folder {} does not exist", train_dir.display())));
        }
        let classes = match &layout.classes {
            Some(classes) => classes.clone(),
            None => folder::class_folders(&train_dir)?,
        };
        let train = folder::scan(&train_dir, &classes, true)?.whole()?;
        let mut skipped = train.skipped;
        let test = match &layout.test {
            Some(test) => {
                let test_dir = layout.root.join(test);
                if !test_dir.is_dir() {
                    return Err(Error::Data(format!("test folder {} does not exist", test_dir.display())));
                }
                let scanned = folder::scan(&test_dir, &classes, false)?.whole()?;
                skipped.extend(scanned.skipped);
                scanned.items
            }
            None => Vec::new(),
        };
        let labels: Vec<usize> = train.items.iter().map(|i| i.label).collect();
        let split = split::split(&labels, &classes, rule.validation, rule.stratify, rule.seed)?;
        Ok(Self { classes, train_folder: train.items, split, test, skipped, left_out: Vec::new() })
    }

    /// Leaves out the items that cannot be read (`train` indexes the training folder, `test` the
    /// test items) and splits the training folder again by `rule`: the split is the one a folder
    /// without those files gets.
    pub fn leave_out(&mut self, train: &[images::Unreadable], test: &[images::Unreadable], rule: SplitRule) -> Result<()> {
        fn remove(items: &mut Vec<Item>, bad: &[images::Unreadable], test: bool, left_out: &mut Vec<LeftOut>) {
            let mut keep = vec![true; items.len()];
            for b in bad {
                keep[b.index] = false;
                left_out.push(LeftOut { path: b.path.clone(), label: items[b.index].label, test, message: b.message.clone() });
            }
            let mut flags = keep.into_iter();
            items.retain(|_| flags.next().unwrap_or(true));
        }
        remove(&mut self.train_folder, train, false, &mut self.left_out);
        remove(&mut self.test, test, true, &mut self.left_out);
        let labels: Vec<usize> = self.train_folder.iter().map(|i| i.label).collect();
        self.split = split::split(&labels, &self.classes, rule.validation, rule.stratify, rule.seed)?;
        Ok(())
    }

    /// Keeps each group of duplicates (indices into `train_folder`) on one side of the split;
    /// returns how many images moved.
    pub fn keep_groups_together(&mut self, groups: &[Vec<usize>]) -> usize {
        split::keep_groups_together(&mut self.split, groups)
    }

    /// Keeps each duplicate group of the training folder on one side of the split. `groups`
    /// index the training folder's items, then the test items (groups reaching into the test
    /// folder are merged first, as they chain). Returns the images moved and the groups kept
    /// together; an error when a part would be left empty.
    pub fn keep_duplicates_together(&mut self, groups: &[crate::dedup::Group]) -> Result<(usize, usize)> {
        let n = self.train_folder.len();
        let clusters = crate::dedup::clusters(groups, n + self.test.len());
        let mut together: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        (0..n).for_each(|i| together.entry(clusters[i]).or_default().push(i));
        let within: Vec<Vec<usize>> = together.into_values().filter(|members| members.len() > 1).collect();
        let moved = self.keep_groups_together(&within);
        if self.split.val.is_empty() || self.split.train.is_empty() {
            return Err(Error::GroupingEmptiesPart {
                part: if self.split.val.is_empty() { "validation" } else { "training" },
                largest: within.iter().map(Vec::len).max().unwrap_or(0),
                total: n,
            });
        }
        Ok((moved, within.len()))
    }

    pub fn train_items(&self) -> Vec<&Item> {
        self.split.train.iter().map(|&i| &self.train_folder[i]).collect()
    }

    /// Split counts as a small table (for logs and `brasa validate`).
    pub fn counts_table(&self) -> String {
        let counts = self.counts();
        let width = self.classes.iter().map(String::len).max().unwrap_or(5).max(5);
        let mut text = format!("{:width$}  {:>6}  {:>6}  {:>6}\n", "class", "train", "val", "test");
        for (i, class) in self.classes.iter().enumerate() {
            text.push_str(&format!("{class:width$}  {:>6}  {:>6}  {:>6}\n", counts.train[i], counts.val[i], counts.test[i]));
        }
        let sum = |v: &[usize]| v.iter().sum::<usize>();
        text.push_str(&format!("{:width$}  {:>6}  {:>6}  {:>6}", "total", sum(&counts.train), sum(&counts.val), sum(&counts.test)));
        text
    }

    pub fn val_items(&self) -> Vec<&Item> {
        self.split.val.iter().map(|&i| &self.train_folder[i]).collect()
    }

    pub fn counts(&self) -> Counts {
        let count = |items: &mut dyn Iterator<Item = &Item>| {
            let mut counts = vec![0; self.classes.len()];
            items.for_each(|item| counts[item.label] += 1);
            counts
        };
        Counts {
            train: count(&mut self.train_items().into_iter()),
            val: count(&mut self.val_items().into_iter()),
            test: count(&mut self.test.iter()),
        }
    }

    /// Checks the number of files per split folder and class against `expected`
    /// (`{"Training": {"glioma_tumor": 826, ...}, ...}`).
    pub fn check_counts(&self, layout: &Layout, expected: &BTreeMap<String, BTreeMap<String, usize>>) -> Result<()> {
        let mut problems = Vec::new();
        for (split, classes) in expected {
            let items: Vec<&Item> = if *split == layout.train {
                self.train_folder.iter().collect()
            } else if layout.test.as_ref() == Some(split) {
                self.test.iter().collect()
            } else {
                problems.push(format!("`{split}` is neither the train nor the test folder"));
                continue;
            };
            for (class, &want) in classes {
                let Some(label) = self.classes.iter().position(|c| c == class) else {
                    problems.push(format!("{split}/{class}: not a class of this dataset"));
                    continue;
                };
                let found = items.iter().filter(|i| i.label == label).count();
                if found != want {
                    problems.push(format!("{split}/{class}: {found} images, expected {want}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Data(format!(
                "the dataset at {} does not have the expected files (data.expect):\n  {}",
                layout.root.display(),
                problems.join("\n  ")
            )))
        }
    }
}
