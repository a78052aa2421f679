//! Model variants: the registry of architectures a spec can name, and their burn modules.

pub mod cvt;

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use cvt::{CvtConfig, CvtForImageClassification};

use crate::train::Classifier;

/// An architecture a spec can name in `model.arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Cvt13,
    Cvt21,
    CvtTiny,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Cvt13, Arch::Cvt21, Arch::CvtTiny];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Cvt13 => "cvt-13",
            Arch::Cvt21 => "cvt-21",
            Arch::CvtTiny => "cvt-tiny",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.name()).collect()
    }
}

/// Options a spec may set on top of an architecture's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Options {
    /// Stochastic depth of the last stage.
    pub drop_path_rate: Option<f64>,
    /// Dropout after projections and in the MLP.
    pub dropout: f64,
}

/// A concrete model description: architecture, its options, and the class count.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub arch: Arch,
    pub options: Options,
}

impl ModelSpec {
    pub fn cvt_config(&self, num_labels: usize) -> CvtConfig {
        let mut config = match self.arch {
            Arch::Cvt13 => CvtConfig::cvt13(num_labels),
            Arch::Cvt21 => CvtConfig::cvt21(num_labels),
            Arch::CvtTiny => CvtConfig::tiny(num_labels),
        };
        if let Some(rate) = self.options.drop_path_rate {
            *config.drop_path_rate.last_mut().expect("stages") = rate;
        }
        config.drop_rate = vec![self.options.dropout; config.stages()];
        config
    }

    /// A freshly initialised model for `num_labels` classes.
    pub fn init(&self, num_labels: usize, device: &Device) -> CvtForImageClassification {
        self.cvt_config(num_labels).init(device)
    }
}

/// Saves a module's weights, BatchNorm running statistics included, as a burnpack file
/// (written atomically; parameter ids kept, so optimizer state saved beside it still matches).
pub fn save<M: Module>(model: &M, path: &Path) -> Result<(), String> {
    // `valid()` folds pending running-statistics updates into the module first: without it a
    // record would hold the statistics of the last `valid()` call.
    model.valid().into_record().save(path).map_err(|e| e.to_string())
}

/// Loads weights saved by [`save`] into `model` (which must have the same architecture).
pub fn load<M: Module>(model: M, path: &Path) -> Result<M, String> {
    model.try_load_file(path).map_err(|e| e.to_string())
}

impl Classifier for CvtForImageClassification {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}
