//! `brasa bench`: how fast this machine trains and runs a spec's model, and how fast it feeds it.
//!
//! - **train**: samples/s of the real training step ([`crate::train::train_step`]: forward,
//!   cross-entropy, backward, global gradient clip, AdamW) on the spec's model, image size, batch
//!   and backend, fed seeded random pixels from the host each step as a run feeds its batches;
//! - **infer**: samples/s of the inference copy of the model (`model.valid()`) on the same batch;
//! - **data**: images/s of the data path over the spec's training folder: decode, the spec's
//!   preprocessing and augmentation-source resize, its random augmentation chain, and the
//!   normalised channels-first batch values (what the trainer's worker thread assembles);
//! - **epoch**: a run's data preparation with the spec's `data.cache`: the whole dataset made
//!   available (decoded into memory, filled into or read from the disk cache, or scanned), then
//!   one epoch of training batches assembled through the prefetch pipeline, nothing trained.
//!
//! Device work is timed over all timed steps with one wait at the end (a GPU queues steps as a
//! run does); warm-up steps (autotuning, first allocations) are not timed.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{self, DeviceInfo};
use crate::data::images;
use crate::data::loader::TrainSet;
use crate::data::prefetch::pipelined;
use crate::error::{Error, Result};
use crate::model::{self, Model};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::train::{self, Classifier};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Train,
    Infer,
    Data,
    Epoch,
}

impl What {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "train" => Some(What::Train),
            "infer" => Some(What::Infer),
            "data" => Some(What::Data),
            "epoch" => Some(What::Epoch),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub what: Vec<What>,
    /// Timed steps of train and infer.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// At most this many training-folder images for the data path (all when `None`).
    pub limit: Option<usize>,
    /// Also time each part of the training step, waiting for the device after each.
    pub phases: bool,
}

/// One benchmark's figures, printed as one JSON line with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub brasa: String,
    pub git_commit: String,
    pub burn: String,
    pub date: String,
    pub machine: Machine,
    pub device: DeviceInfo,
    pub model: String,
    pub parameters: usize,
    pub image_size: [u32; 2],
    pub batch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<Throughput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer: Option<Throughput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataThroughput>,
    pub epoch: Option<EpochData>,
    /// Peak resident memory of the process (Linux), bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// What the GPU allocator held at the end, bytes (its high-water mark: pools keep their pages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub threads: usize,
    pub os: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub samples_per_s: f64,
    pub steps: usize,
    pub warmup: usize,
    pub seconds: f64,
    /// Seconds of the warm-up steps (first-use costs: autotuning, kernel compilation, allocation).
    pub warmup_seconds: f64,
    /// Where a training step's time goes (`--phases`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
}

/// Milliseconds per training step in each part, measured over `steps` more steps with a wait
/// for the device after each part, and how long the host takes to queue a whole step.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub steps: usize,
    pub forward_ms: f64,
    pub backward_ms: f64,
    /// The global gradient clip and AdamW.
    pub optimizer_ms: f64,
    /// A step with no wait: the host's time to record and queue it (equals the step's time on a
    /// backend that computes as it goes, like flex).
    pub queue_ms: f64,
    /// The same step, queued and then waited for.
    pub step_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataThroughput {
    pub images: usize,
    /// Read + decode only.
    pub decode_per_s: f64,
    /// Read + decode + preprocessing + augmentation chain + normalised batch values.
    pub full_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochData {
    /// The `data.cache` mode used (`auto` resolved).
    pub cache: String,
    /// Training-folder and test images made available.
    pub images: usize,
    /// Files decoded while doing so (0 when the disk cache had them all).
    pub decoded: usize,
    pub load_seconds: f64,
    /// Training samples of the epoch (clean images and augmented copies).
    pub samples: usize,
    pub epoch_seconds: f64,
    pub samples_per_s: f64,
}

/// Runs the benchmark of `plan`'s model, data and device.
pub fn run(plan: &Plan, options: &Options, progress: &Progress) -> Result<Results> {
    if options.steps == 0 {
        return Err(Error::usage("--steps", "must be at least 1"));
    }
    if options.limit == Some(0) {
        return Err(Error::usage("--limit", "must be at least 1"));
    }
    if let Some(threads) = plan.runtime.threads {
        backend::set_threads(threads);
    }
    let chosen = plan.runtime.backend.choose(plan.runtime.device)?;
    progress.log(format!("device: {}", chosen.info.describe()));
    let size = plan.preprocess.input_size;
    let classes = classes_of(plan);
    let request = model::Request {
        arch: plan.model.arch,
        options: plan.model.options,
        classes: &classes,
        input_size: size,
        pretrained: None,
        freeze: &plan.model.freeze,
        seed: plan.seed,
    };
    let mut results = Results {
        brasa: crate::build_info::BRASA_VERSION.into(),
        git_commit: crate::build_info::GIT_COMMIT.into(),
        burn: crate::build_info::BURN_VERSION.into(),
        date: crate::build_info::timestamp(std::time::SystemTime::now()),
        machine: machine(),
        device: chosen.info.clone(),
        model: plan.model.arch.name().into(),
        parameters: 0,
        image_size: [size.0, size.1],
        batch: plan.train.batch_size,
        train: None,
        infer: None,
        data: None,
        epoch: None,
        peak_rss_bytes: None,
        gpu_memory_bytes: None,
    };
    let wants = |what| options.what.contains(&what);
    if wants(What::Data) {
        results.data = Some(data_path(plan, options.limit, progress)?);
    }
    if wants(What::Epoch) {
        results.epoch = Some(epoch_preparation(plan, progress)?);
    }
    if wants(What::Train) || wants(What::Infer) {
        let device = chosen.device.clone().autodiff();
        device.seed(plan.seed);
        let built = model::build(&request, &device)?;
        results.parameters = built.model.num_params();
        let measured = backend::on_pool(&device, || match built.model {
            Model::Cvt(model) => measure(model, classes.len(), plan, options, &device, progress),
            Model::Vit(model) => measure(model, classes.len(), plan, options, &device, progress),
        })?;
        (results.train, results.infer) = measured;
        results.gpu_memory_bytes = backend::memory_reserved(&chosen.device).filter(|_| chosen.info.is_gpu());
    }
    results.peak_rss_bytes = peak_rss();
    Ok(results)
}

type Measured = (Option<Throughput>, Option<Throughput>);

fn measure<M: Classifier>(model: M, num_classes: usize, plan: &Plan, options: &Options, device: &Device, progress: &Progress) -> Result<Measured> {
    let batch = plan.train.batch_size;
    let (width, height) = plan.preprocess.input_size;
    let shape = [batch, 3, height as usize, width as usize];
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let pixels: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..num_classes)).collect();
    let input = |device: &Device| Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), device);
    let (mut train_result, mut infer_result) = (None, None);

    if options.what.contains(&What::Infer) {
        let inference = model.valid();
        let inner = device.clone().inner();
        let bar = progress.bar((options.warmup + options.steps) as u64, "bench: inference");
        let mut step = |_: usize| -> Tensor<2> {
            let logits = inference.logits(input(&inner));
            bar.inc(1);
            logits
        };
        infer_result = Some(timed(options, batch, &mut step, |logits| wait(logits.sum(), batch))?);
        bar.finish_and_clear();
    }

    if options.what.contains(&What::Train) {
        let mut optimizer = crate::runner::new_optimizer(plan, &model);
        let loss_fn = CrossEntropyLossConfig::new().init(device);
        let label_tensor = |device: &Device| {
            let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(values, [batch]), device)
        };
        let bar = progress.bar((options.warmup + options.steps) as u64, "bench: training");
        let mut current = Some(model);
        let mut step = |k: usize| -> Tensor<1> {
            let lr = plan.train.lr * (1.0 - k as f64 / (options.warmup + options.steps) as f64);
            let (next, stats) = train::train_step(current.take().expect("model"), &mut optimizer, &loss_fn, input(device), label_tensor(device), lr, plan.train.grad_clip);
            current = Some(next);
            bar.inc(1);
            stats
        };
        let mut result = timed(options, batch, &mut step, |stats| wait(stats, batch))?;
        bar.finish_and_clear();
        if options.phases {
            let model = current.take().expect("model");
            result.phases = Some(phases(model, &mut optimizer, &loss_fn, &input, &label_tensor, plan, options.steps, device, progress)?);
        }
        train_result = Some(result);
    }
    Ok((train_result, infer_result))
}

/// Times each [`train::Phase`] of `steps` more training steps, and queuing a step against waiting
/// for it.
#[allow(clippy::too_many_arguments)]
fn phases<M: Classifier>(
    mut model: M,
    optimizer: &mut crate::train::optim::AdamW,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
    input: &dyn Fn(&Device) -> Tensor<4>,
    labels: &dyn Fn(&Device) -> Tensor<1, Int>,
    plan: &Plan,
    steps: usize,
    device: &Device,
    progress: &Progress,
) -> Result<Phases> {
    let sync = |device: &Device| device.sync().map_err(|e| backend::device_failure(&e, "train.batch_size", plan.train.batch_size));
    let bar = progress.bar(2 * steps as u64, "bench: training phases");
    let mut spent = [0.0f64; 3];
    let mut failure = None;
    for _ in 0..steps {
        let (pixels, targets) = (input(device), labels(device));
        sync(device)?;
        let mut mark = Instant::now();
        let (next, _) = train::train_step_observed(model, optimizer, loss_fn, pixels, targets, plan.train.lr, plan.train.grad_clip, &mut |phase| {
            if let Err(e) = sync(device) {
                failure.get_or_insert(e);
            }
            spent[phase as usize] += mark.elapsed().as_secs_f64();
            mark = Instant::now();
        });
        model = next;
        bar.inc(1);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (mut queue, mut total) = (0.0, 0.0);
    for _ in 0..steps {
        let (pixels, targets) = (input(device), labels(device));
        sync(device)?;
        let started = Instant::now();
        let (next, _) = train::train_step(model, optimizer, loss_fn, pixels, targets, plan.train.lr, plan.train.grad_clip);
        queue += started.elapsed().as_secs_f64();
        sync(device)?;
        total += started.elapsed().as_secs_f64();
        model = next;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ms = |seconds: f64| 1e3 * seconds / steps as f64;
    Ok(Phases {
        steps,
        forward_ms: ms(spent[0]),
        backward_ms: ms(spent[1]),
        optimizer_ms: ms(spent[2]),
        queue_ms: ms(queue),
        step_ms: ms(total),
    })
}

/// Waits until the device has computed `tensor` (reads it back).
fn wait(tensor: Tensor<1>, batch: usize) -> Result<()> {
    tensor.try_into_data().map(drop).map_err(|e| backend::device_failure(&e, "train.batch_size", batch))
}

/// Runs `warmup` then `steps` steps, each waited for at the end of its phase only.
fn timed<T>(options: &Options, batch: usize, step: &mut dyn FnMut(usize) -> T, finish: impl Fn(T) -> Result<()>) -> Result<Throughput> {
    let started = Instant::now();
    let mut last = None;
    for k in 0..options.warmup {
        last = Some(step(k));
    }
    if let Some(last) = last.take() {
        finish(last)?;
    }
    let warmup_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for k in 0..options.steps {
        last = Some(step(options.warmup + k));
    }
    finish(last.expect("at least one step"))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Throughput { samples_per_s: (batch * options.steps) as f64 / seconds, steps: options.steps, warmup: options.warmup, seconds, warmup_seconds, phases: None })
}

/// The classes the spec's model has (`data.classes`, or the training folder's sorted
/// sub-folders), so that the model timed is the one trained; placeholders where the training
/// folder cannot be read.
fn classes_of(plan: &Plan) -> Vec<String> {
    if let Some(classes) = &plan.data.layout.classes {
        return classes.clone();
    }
    let train = plan.data.layout.root.join(&plan.data.layout.train);
    let found = crate::data::folder::class_folders(&train).unwrap_or_default();
    if found.is_empty() { (0..4).map(|i| format!("class{i}")).collect() } else { found }
}

/// The data path over the spec's training folder.
fn data_path(plan: &Plan, limit: Option<usize>, progress: &Progress) -> Result<DataThroughput> {
    let dataset = crate::runner::prepare_dataset(plan, progress)?;
    let mut items = dataset.train_folder.clone();
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    if items.is_empty() {
        return Err(Error::Data("brasa bench: the training folder has no images".into()));
    }
    // the page cache first, so the disk is not what is measured
    for item in &items {
        let _ = std::fs::read(&item.path);
    }
    let started = Instant::now();
    items.par_iter().try_for_each(|item| images::read_rgb(&item.path).map(drop))?;
    let decode_seconds = started.elapsed().as_secs_f64();

    let clean = plan.preprocess.recipe;
    let source = plan.augment.source_recipe();
    let ops = plan.augment.chain.random_part();
    let normalize = plan.preprocess.normalize;
    let started = Instant::now();
    items.par_iter().enumerate().try_for_each(|(i, item)| -> Result<()> {
        let image = images::read_rgb(&item.path)?;
        let input = clean.apply(image.clone());
        let mut values = vec![0f32; 3 * (input.width() * input.height()) as usize];
        normalize.write_chw(&input, &mut values);
        if !ops.is_empty() {
            // as a run decodes: one form when the chain starts from the clean input
            let source = if source == clean { input } else { source.apply(image) };
            let augmented = crate::augment::Chain::apply_ops(ops, &source, i as u64);
            let mut values = vec![0f32; 3 * (augmented.width() * augmented.height()) as usize];
            normalize.write_chw(&augmented, &mut values);
        }
        Ok(())
    })?;
    let full_seconds = started.elapsed().as_secs_f64();
    Ok(DataThroughput { images: items.len(), decode_per_s: items.len() as f64 / decode_seconds, full_per_s: items.len() as f64 / full_seconds })
}

/// The dataset made available as a run does, then one epoch of batches assembled.
fn epoch_preparation(plan: &Plan, progress: &Progress) -> Result<EpochData> {
    let mut dataset = crate::runner::prepare_dataset(plan, progress)?;
    let started = Instant::now();
    let images = crate::runner::decode(plan, &mut dataset, None, progress)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let items: Vec<usize> = (0..dataset.train_folder.len()).collect();
    let labels = dataset.train_folder.iter().map(|item| item.label).collect();
    let train = TrainSet::new(images.train_folder.clone(), images.sources.clone(), items, labels, &plan.augment.chain, plan.augment.mode, plan.augment.copies, plan.seed);
    let order = train.shuffled(0);
    let bar = progress.bar(order.len() as u64, "epoch batches");
    let started = Instant::now();
    pipelined(order.chunks(plan.train.batch_size), 4, |samples| train.batch(samples, 0, &plan.preprocess.normalize), |batch| {
        bar.inc(batch.labels.len() as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    let epoch_seconds = started.elapsed().as_secs_f64();
    Ok(EpochData {
        cache: images.cache.name().into(),
        images: dataset.train_folder.len() + dataset.test.len(),
        decoded: images.decoded,
        load_seconds,
        samples: order.len(),
        epoch_seconds,
        samples_per_s: order.len() as f64 / epoch_seconds,
    })
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        threads: backend::threads(),
        os: std::env::consts::OS.into(),
    }
}

/// The process's peak resident set (VmHWM), where the OS tells.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Results {
    /// A few readable lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} ({} parameters) at {}x{}, batch {}\ndevice: {}\nmachine: {} ({} cores, {} threads)\n",
            self.model, self.parameters, self.image_size[0], self.image_size[1], self.batch, self.device.describe(), self.machine.cpu, self.machine.cores, self.machine.threads
        );
        if let Some(t) = &self.train {
            text.push_str(&format!("train: {:.2} samples/s ({} steps in {:.2} s; warm-up {:.1} s)\n", t.samples_per_s, t.steps, t.seconds, t.warmup_seconds));
            if let Some(p) = &t.phases {
                text.push_str(&format!(
                    "  per step, waiting after each part: forward {:.1} ms, backward {:.1} ms, clip + optimizer {:.1} ms\n  queued without waiting: {:.1} ms of {:.1} ms\n",
                    p.forward_ms, p.backward_ms, p.optimizer_ms, p.queue_ms, p.step_ms
                ));
            }
        }
        if let Some(t) = &self.infer {
            text.push_str(&format!("infer: {:.2} samples/s ({} batches in {:.2} s; warm-up {:.1} s)\n", t.samples_per_s, t.steps, t.seconds, t.warmup_seconds));
        }
        if let Some(d) = &self.data {
            text.push_str(&format!("data:  {:.0} images/s decode only, {:.0} images/s decode + preprocess + augment + batch ({} images)\n", d.decode_per_s, d.full_per_s, d.images));
        }
        if let Some(e) = &self.epoch {
            text.push_str(&format!(
                "epoch: data.cache = {}: {} images ready in {:.1} s ({} decoded), then {} samples of batches at {:.0} samples/s\n",
                e.cache, e.images, e.load_seconds, e.decoded, e.samples, e.samples_per_s
            ));
        }
        if let Some(rss) = self.peak_rss_bytes {
            text.push_str(&format!("peak RSS: {}\n", crate::fmt::megabytes(rss)));
        }
        if let Some(gpu) = self.gpu_memory_bytes {
            text.push_str(&format!("GPU memory held: {}\n", crate::fmt::megabytes(gpu)));
        }
        text
    }
}
