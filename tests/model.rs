//! CvT forward shapes for every variant, fresh weights that follow from the seed, and
//! checkpoints that round-trip exactly.

mod common;

use brasa::model::{Arch, ArchConfig, CvtForImageClassification, Model};
use brasa::train::Classifier;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::flex_rng;
use common::hf::{fresh, weights};

fn tiny(num_labels: usize, device: &Device) -> CvtForImageClassification {
    match ArchConfig::for_arch(Arch::CvtTiny, num_labels, (96, 96)).init(device) {
        Model::Cvt(m) => m,
        Model::Vit(_) => unreachable!(),
    }
}

#[test]
fn every_variant_maps_images_to_class_logits() {
    let _rng = flex_rng();
    let device = Device::flex();
    // transformers' own counts (`sum(p.numel() for p in model.parameters())` of the models
    // bench/torch_bench.py builds: 4 labels): exact for the configurations both define
    for (arch, size, exact) in [(Arch::CvtTiny, 96, 621_380), (Arch::Cvt13, 224, 19_614_020), (Arch::VitBasePatch16, 224, 85_801_732), (Arch::VitTiny, 96, 2_735_428)] {
        let model = ArchConfig::for_arch(arch, 4, (size as u32, size as u32)).init(&device);
        assert_eq!(model.num_params(), exact, "{}", arch.name());
    }
    for (arch, size, params) in [
        (Arch::CvtTiny, 96, 0.62e6),
        (Arch::Cvt13, 224, 19.6e6),
        (Arch::Cvt21, 224, 31.2e6),
        (Arch::VitTiny, 96, 2.7e6),
        (Arch::VitTinyPatch16, 224, 5.5e6),
        (Arch::VitSmallPatch16, 224, 21.7e6),
        (Arch::VitBasePatch16, 224, 85.8e6),
    ] {
        let model = ArchConfig::for_arch(arch, 4, (size as u32, size as u32)).init(&device);
        let n = model.num_params() as f64;
        assert!((n - params).abs() / params < 0.05, "{}: {n} parameters", arch.name());
        let pixels = Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let logits = match model {
            Model::Cvt(m) => m.valid().logits(pixels),
            Model::Vit(m) => m.valid().logits(pixels),
        };
        assert_eq!(logits.dims(), [2, 4], "{}", arch.name());
        let values: Vec<f32> = logits.into_data().try_into_vec().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{}", arch.name());
    }
}

/// Built twice from one seed, a fresh model has the same weights bit for bit — whatever was drawn
/// in between, and for a ViT at another size than its own, whose position embeddings are read
/// (resized) while it is built — and another seed draws others.
#[test]
fn fresh_weights_follow_from_the_seed_alone() {
    let _rng = flex_rng();
    let device = Device::flex().autodiff();
    for (arch, size) in [(Arch::CvtTiny, 32), (Arch::VitTiny, 32)] {
        let first = weights(&fresh(arch, size, 7, &device));
        let _ = Tensor::<1>::random([100], Distribution::Default, &device);
        assert!(first == weights(&fresh(arch, size, 7, &device)), "{}: the same seed drew other weights", arch.name());
        assert!(first != weights(&fresh(arch, size, 8, &device)), "{}: another seed drew the same weights", arch.name());
    }
}

#[test]
fn smaller_inputs_and_other_class_counts_work() {
    let _rng = flex_rng();
    let device = Device::flex();
    let model = tiny(7, &device).valid();
    let logits = model.logits(Tensor::<4>::zeros([3, 3, 16, 16], &device));
    assert_eq!(logits.dims(), [3, 7]);
}

#[test]
fn parameter_names_mirror_hugging_face() {
    let _rng = flex_rng();
    use burn::module::{ModuleVisitor, Param};
    #[derive(Default)]
    struct Names {
        path: Vec<String>,
        names: Vec<String>,
    }
    impl ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.names.push(self.path.join("."));
        }
    }
    let model = tiny(4, &Device::flex());
    let mut names = Names::default();
    model.visit(&mut names);
    let names = Names { names: names.names.clone(), path: Vec::new() };
    for expected in [
        "cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight",
        "cvt.encoder.stages.2.cls_token",
        "cvt.encoder.stages.2.layers.1.attention.attention.convolution_projection_query.convolution_projection.convolution.weight",
        "cvt.encoder.stages.1.layers.0.attention.attention.projection_key.weight",
        "cvt.encoder.stages.1.layers.0.attention.output.dense.bias",
        "cvt.encoder.stages.1.layers.0.intermediate.dense.weight",
        "cvt.encoder.stages.1.layers.0.layernorm_before.gamma",
        "layernorm.beta",
        "classifier.weight",
    ] {
        assert!(names.names.iter().any(|n| n == expected), "missing {expected}; have e.g. {:?}", &names.names[..5.min(names.names.len())]);
    }
}

#[test]
fn checkpoint_round_trip_keeps_weights_and_batchnorm_statistics() {
    let _rng = flex_rng();
    let device = Device::flex().autodiff();
    let model = tiny(4, &device);
    // a training-mode forward pass moves the BatchNorm running statistics
    let pixels = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let _ = model.logits(pixels.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bpk");
    brasa::model::save(&model, &path).unwrap();
    let restored = brasa::model::load(tiny(4, &device), &path).unwrap();
    let eval = |m: &brasa::model::CvtForImageClassification| -> Vec<f32> {
        m.valid().logits(pixels.clone().without_autodiff()).into_data().try_into_vec().unwrap()
    };
    assert_eq!(eval(&model), eval(&restored));
    let fresh = tiny(4, &device);
    assert_ne!(eval(&model), eval(&fresh));
}

#[test]
fn hf_weight_decay_spares_biases_and_layer_norms() {
    let _rng = flex_rng();
    let params = brasa::model::params::named_params(&tiny(4, &Device::flex()));
    let decays = |path: &str| params.iter().find(|p| p.path == path).unwrap_or_else(|| panic!("{path}")).hf_decays();
    assert!(decays("classifier.weight"));
    assert!(!decays("classifier.bias"));
    assert!(!decays("layernorm.gamma") && !decays("layernorm.beta"));
    assert!(decays("cvt.encoder.stages.2.cls_token"));
    // BatchNorm weights are decayed by the Trainer (only LayerNorm is exempt), their biases not
    let bn = "cvt.encoder.stages.0.layers.0.attention.attention.convolution_projection_query.convolution_projection.normalization";
    assert!(decays(&format!("{bn}.gamma")) && !decays(&format!("{bn}.beta")));
}
