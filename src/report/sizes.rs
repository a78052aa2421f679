//! The image size summary of the data section: per part, the sizes the files are stored at.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run_dir::{Part, SplitRow};
use crate::stats::quantile;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeRow {
    pub part: String,
    pub images: usize,
    pub distinct: usize,
    /// `min / median / max`
    pub width: String,
    pub height: String,
    /// The most common sizes with their counts, e.g. `512×512 (1203), 256×256 (40)`.
    pub common: String,
}

/// One row per part with known sizes, then `all`; empty when the split file has no sizes.
pub fn summarise(rows: &[SplitRow]) -> Vec<SizeRow> {
    let mut out = Vec::new();
    for (name, part) in [("train", Some(Part::Train)), ("validation", Some(Part::Val)), ("test", Some(Part::Test)), ("all", None)] {
        let sizes: Vec<(u32, u32)> = rows
            .iter()
            .filter(|r| part.is_none_or(|p| r.split == p.into()))
            .filter_map(|r| r.width.zip(r.height))
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let mut counts: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        sizes.iter().for_each(|&s| *counts.entry(s).or_default() += 1);
        let mut common: Vec<((u32, u32), usize)> = counts.iter().map(|(&s, &n)| (s, n)).collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let spread = |values: Vec<u32>| {
            let mut v: Vec<f64> = values.into_iter().map(f64::from).collect();
            v.sort_by(f64::total_cmp);
            format!("{} / {} / {}", v[0], quantile(&v, 0.5), v[v.len() - 1])
        };
        out.push(SizeRow {
            part: name.to_string(),
            images: sizes.len(),
            distinct: counts.len(),
            width: spread(sizes.iter().map(|s| s.0).collect()),
            height: spread(sizes.iter().map(|s| s.1).collect()),
            common: common.iter().take(3).map(|((w, h), n)| format!("{w}×{h} ({n})")).collect::<Vec<_>>().join(", "),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_per_part() {
        let row = |split: Part, w, h| SplitRow { path: String::new(), class: String::new(), split: split.into(), width: Some(w), height: Some(h) };
        let rows = [row(Part::Train, 512, 512), row(Part::Train, 512, 512), row(Part::Train, 200, 300), row(Part::Test, 64, 64)];
        let summary = summarise(&rows);
        assert_eq!(summary.len(), 3);
        assert_eq!(summary[0].width, "200 / 512 / 512");
        assert_eq!(summary[0].common, "512×512 (2), 200×300 (1)");
        assert_eq!((summary[1].part.as_str(), summary[1].distinct), ("test", 1));
        assert_eq!((summary[2].part.as_str(), summary[2].images), ("all", 4));
    }
}
