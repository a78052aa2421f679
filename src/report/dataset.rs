//! The dataset section: images per class and part, as a table and as charts.

use serde::Serialize;

use super::{Chart, charts};
use crate::error::Result;
use crate::run_dir::{self, Meta};

#[derive(Serialize)]
pub struct CountRow {
    pub class: String,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// Images per class of each part, for the table.
pub fn count_rows(meta: &Meta) -> Vec<CountRow> {
    meta.classes
        .iter()
        .enumerate()
        .map(|(i, c)| CountRow {
            class: c.clone(),
            train: meta.counts.train.get(i).copied().unwrap_or(0),
            val: meta.counts.val.get(i).copied().unwrap_or(0),
            test: meta.counts.test.get(i).copied().unwrap_or(0),
        })
        .collect()
}

/// A class-distribution chart per part that has images.
pub fn charts(meta: &Meta) -> Result<Vec<Chart>> {
    let mut found = Vec::new();
    for (part, title, counts) in [
        ("train", "Images per class: train", &meta.counts.train),
        ("val", "Images per class: validation", &meta.counts.val),
        ("test", "Images per class: test", &meta.counts.test),
    ] {
        if counts.iter().sum::<usize>() > 0 {
            found.push(Chart {
                title: title.into(),
                file: run_dir::chart(&format!("class_distribution_{part}")),
                svg: charts::class_distribution(title, &meta.classes, &[(part, counts)])?,
            });
        }
    }
    Ok(found)
}
