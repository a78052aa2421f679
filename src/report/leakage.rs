//! The dataset audit of a run, read back from its `duplicates.csv`: how many duplicate groups,
//! which of them span the run's parts (leakage) or carry different labels, and which test images
//! are leak-free (no duplicate among the training or validation images).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use crate::run_dir::DuplicateRow;

/// The audit section of a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditSummary {
    pub exact_groups: usize,
    pub exact_files: usize,
    pub near_groups: usize,
    pub near_files: usize,
    /// Groups with members in more than one of train / val / test.
    pub cross_split_groups: usize,
    /// Groups whose members have different classes.
    pub conflict_groups: usize,
    /// Test images with a duplicate among the training or validation images.
    pub test_leaked: usize,
    /// Validation images with a duplicate among the training images.
    pub val_leaked: usize,
    /// The largest groups, biggest first.
    pub largest: Vec<GroupLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupLine {
    pub group: usize,
    pub kind: String,
    pub files: usize,
    pub splits: String,
    pub classes: String,
    pub example: String,
}

/// Groups listed in the report.
const LARGEST: usize = 10;

/// Summarises `rows`; `leaked` gets the paths (relative to the data root) of test images with a
/// duplicate on the training side.
pub fn summarise(rows: &[DuplicateRow]) -> (AuditSummary, HashSet<String>) {
    let mut groups: BTreeMap<usize, Vec<&DuplicateRow>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.group).or_default().push(row);
    }
    let mut summary = AuditSummary::default();
    let mut leaked_test = HashSet::new();
    let mut leaked_val = HashSet::new();
    let mut lines = Vec::new();
    for (&id, members) in &groups {
        let kind = members[0].kind.clone();
        if kind == "exact" {
            summary.exact_groups += 1;
            summary.exact_files += members.len();
        } else {
            summary.near_groups += 1;
            summary.near_files += members.len();
        }
        let splits: BTreeSet<&str> = members.iter().map(|m| m.split.as_str()).collect();
        let classes: BTreeSet<&str> = members.iter().map(|m| m.class.as_str()).collect();
        if splits.len() > 1 {
            summary.cross_split_groups += 1;
        }
        if classes.len() > 1 {
            summary.conflict_groups += 1;
        }
        let has_train = splits.contains("train");
        if has_train || splits.contains("val") {
            leaked_test.extend(members.iter().filter(|m| m.split == "test").map(|m| m.path.clone()));
        }
        if has_train {
            leaked_val.extend(members.iter().filter(|m| m.split == "val").map(|m| m.path.clone()));
        }
        lines.push(GroupLine {
            group: id,
            kind,
            files: members.len(),
            splits: splits.into_iter().collect::<Vec<_>>().join(", "),
            classes: classes.into_iter().collect::<Vec<_>>().join(", "),
            example: members[0].path.clone(),
        });
    }
    lines.sort_by(|a, b| b.files.cmp(&a.files).then(a.group.cmp(&b.group)));
    lines.truncate(LARGEST);
    summary.largest = lines;
    summary.test_leaked = leaked_test.len();
    summary.val_leaked = leaked_val.len();
    (summary, leaked_test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: usize, kind: &str, split: &str, class: &str, path: &str) -> DuplicateRow {
        DuplicateRow { group, kind: kind.into(), split: split.into(), class: class.into(), path: path.into() }
    }

    #[test]
    fn counts_leaks_and_conflicts() {
        let rows = [
            row(1, "exact", "train", "a", "T/a/1.jpg"),
            row(1, "exact", "test", "a", "S/a/1.jpg"),
            row(1, "exact", "val", "a", "T/a/2.jpg"),
            row(2, "near", "test", "a", "S/a/3.jpg"),
            row(2, "near", "test", "b", "S/b/4.jpg"),
            row(3, "exact", "val", "b", "T/b/5.jpg"),
            row(3, "exact", "test", "b", "S/b/6.jpg"),
        ];
        let (summary, leaked) = summarise(&rows);
        assert_eq!((summary.exact_groups, summary.exact_files, summary.near_groups, summary.near_files), (2, 5, 1, 2));
        assert_eq!((summary.cross_split_groups, summary.conflict_groups), (2, 1));
        assert_eq!((summary.test_leaked, summary.val_leaked), (2, 1));
        let mut leaked: Vec<String> = leaked.into_iter().collect();
        leaked.sort();
        assert_eq!(leaked, ["S/a/1.jpg", "S/b/6.jpg"]);
        assert_eq!(summary.largest[0].group, 1);
        assert_eq!(summary.largest[0].splits, "test, train, val");
    }
}
