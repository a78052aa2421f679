//! AdamW over all parameters at once, with PyTorch's global gradient-norm clip in front of it.
//!
//! burn's `AdamW` (through `ModuleOptimizer`) updates one parameter at a time, a dozen tensor
//! operations each, and the global clip adds a few more per parameter: about 7000 operations a
//! step for CvT-13's 300-odd tensors. On a GPU every operation costs host time to record, fuse and
//! launch, and measured on an H100 (`brasa bench --phases`, CvT-13 at 224, batch 16,
//! 2026-11-27) the clip and the optimizer took 35 + 65 ms of a 154 ms step while the GPU sat idle.
//! Here, as in PyTorch's multi-tensor ("foreach") AdamW, the gradients of each weight-decay group
//! are concatenated into one vector, and the norm, the clip, both moments and the update are a
//! few operations on those vectors; the updated vector is cut back into the parameters.
//!
//! Cutting back costs nothing: each parameter starts at a multiple of [`ALIGN`] values in its
//! group's vector (zeros between them), so its slice is a view of that vector on every backend
//! (burn's GPU backends copy a slice whose ends are not aligned to the device's memory alignment:
//! at most 256 bytes on wgpu, 512 on CUDA). And the optimizer keeps the updated vectors: the next step
//! starts from them instead of gathering the parameters again, so a step gathers only the
//! gradients. Counted with cubecl's profiling log on Mesa's lavapipe (the kernels a GPU runs),
//! CvT-13's training step went from 4035 kernel launches to 3516: the 342 copies gathering the
//! parameters and the 179 cutting them back are gone (2026-12-05). The gradients are gathered
//! with [`Pack`]: on burn's GPU backend eight tensors a kernel launch instead of a slice
//! assignment each (CvT-13: 342 launches become 44), and cut back with [`kernels::views`]: there
//! eight views one recorded operation instead of a slice and a reshape each (CvT-13's step at
//! 32 px: 3082 operations in burn's fusion log become 2662, 2026-12-06).
//!
//! The arithmetic is burn's and `torch.optim.AdamW`'s: `p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + ε)`
//! with `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)`, and the clip multiplies the gradients by
//! `min(1, max_norm / (‖g‖ + 1e-6))` as `clip_grad_norm_` does (tested against burn's `AdamW`
//! and the host-side clip in [`super::clip`]). Every trainable parameter takes part in every
//! step; one that got no gradient counts as a zero gradient (PyTorch would skip it — brasa's
//! models give every trainable parameter a gradient). Frozen parameters (not `require_grad`)
//! and running statistics are left alone.
//!
//! A weight-decay class larger than [`GROUP_LIMIT`] values is split into several vectors, as
//! PyTorch's foreach kernels chunk their lists: GPUs cap the size of one storage buffer.
//!
//! The state (both moments and the step count) is saved and loaded as a small burnpack file,
//! each class's moments back to back in the parameters' order in the model (not by their ids,
//! without the padding or the split), so it is the same file whatever the vectors look like.

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::backend::Dispatch;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Device, Tensor};

use crate::kernels::{self, Pack};
use crate::model::params::{self, NamedParam};

/// AdamW's hyperparameters (the learning rate comes with each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
}

/// Where each parameter starts in its group's vector: a multiple of this many values (512 bytes
/// of f32). burn slices a GPU tensor as a view only where both ends fall on the device's memory
/// alignment (`MemoryDeviceProperties::alignment`), else it copies: on wgpu that is the
/// buffer-offset alignment, at most 256 bytes (Vulkan's and WebGPU's limit), on CUDA 512 (cubecl's
/// `cuMemAllocPitch` pitch). At 256 bytes, measured on a stand-in CUDA driver (CvT-13 at 224,
/// batch 16, 2026-12-07), 273 of CvT-13's parameters were copied out of their vectors every step.
const ALIGN: usize = 128;

/// The most values one group vector holds (64 MiB of f32); a weight-decay group with more is
/// split into several vectors. A GPU backend binds a tensor as one storage buffer, and devices
/// cap those: WebGPU's default and Mesa's lavapipe at 128 MiB, where ViT-B/16's 85 million
/// decayed values in one vector failed ("An IO error happened"). A single parameter larger than
/// this gets a vector of its own.
const GROUP_LIMIT: usize = 1 << 24;

/// The weight-decay classes, in the order a state file lists them.
const DECAYED: usize = 0;
const NOT_DECAYED: usize = 1;

/// One trainable parameter, in the model's visiting order.
#[derive(Debug, Clone)]
struct Slot {
    shape: Vec<usize>,
    len: usize,
    /// Index into [`AdamW::groups`].
    group: usize,
    /// Where it starts in its group's vector.
    offset: usize,
}

impl Slot {
    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Parameters sharing a weight decay, concatenated in visiting order: all of a class's
/// parameters, or a run of them up to [`GROUP_LIMIT`] values.
#[derive(Debug, Clone)]
struct Group {
    weight_decay: f64,
    /// [`DECAYED`] or [`NOT_DECAYED`].
    class: usize,
    /// Values in the group's vector, the padding between parameters included.
    len: usize,
}

/// Both moments of one group, on the device.
#[derive(Debug, Clone)]
struct Moments {
    first: Tensor<1>,
    second: Tensor<1>,
}

/// AdamW over flattened parameter groups. See the module documentation.
///
/// [`AdamW::step`] must be given the model the previous step returned: the optimizer keeps the
/// group vectors that model's parameters are views of and starts the next step from them. The
/// first step after [`AdamW::new`] or [`AdamW::load`] reads the parameters from the model.
#[derive(Debug, Clone)]
pub struct AdamW {
    settings: Settings,
    slots: Vec<Slot>,
    groups: Vec<Group>,
    moments: Option<Vec<Moments>>,
    /// The group vectors the last step cut the model's parameters from (`None` for a group
    /// without trainable parameters).
    values: Option<Vec<Option<Tensor<1>>>>,
    /// Steps taken.
    time: usize,
}

impl AdamW {
    /// An optimizer for `model`'s trainable parameters; `decays` says which are weight-decayed
    /// (the others get weight decay 0).
    pub fn new<M: Module>(model: &M, settings: Settings, decays: impl Fn(&NamedParam) -> bool) -> Self {
        Self::with_group_limit(model, settings, decays, GROUP_LIMIT)
    }

    /// [`AdamW::new`] with group vectors of at most `limit` values (tests split small models).
    fn with_group_limit<M: Module>(model: &M, settings: Settings, decays: impl Fn(&NamedParam) -> bool, limit: usize) -> Self {
        let named = params::named_params(model);
        let mut shapes = Shapes::default();
        model.visit(&mut shapes);
        assert_eq!(named.len(), shapes.all.len(), "named_params and the visitor see the same parameters");
        let mut groups: Vec<Group> = Vec::new();
        // the group each class is filling
        let mut open: [Option<usize>; 2] = [None, None];
        let mut slots = Vec::new();
        for (param, (shape, trainable)) in named.iter().zip(shapes.all) {
            if !trainable {
                continue;
            }
            let class = if decays(param) { DECAYED } else { NOT_DECAYED };
            let len: usize = shape.iter().product();
            let padded = len.next_multiple_of(ALIGN);
            let group = match open[class] {
                Some(g) if groups[g].len + padded <= limit => g,
                _ => {
                    let weight_decay = if class == DECAYED { settings.weight_decay } else { 0.0 };
                    groups.push(Group { weight_decay, class, len: 0 });
                    open[class] = Some(groups.len() - 1);
                    groups.len() - 1
                }
            };
            let offset = groups[group].len;
            groups[group].len += padded;
            slots.push(Slot { shape, len, group, offset });
        }
        Self { settings, slots, groups, moments: None, values: None, time: 0 }
    }

    /// Trainable values in all.
    pub fn len(&self) -> usize {
        self.slots.iter().map(|s| s.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Steps taken so far.
    pub fn time(&self) -> usize {
        self.time
    }

    /// One step: clips `grads` to `max_norm` by their global norm when it is set, then updates
    /// `model`'s trainable parameters. Returns the model and the gradients' global norm (before
    /// the clip), still on the device.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, mut grads: GradientsParams, max_norm: Option<f64>) -> (M, Tensor<1>) {
        let Some(device) = self.device(&model) else {
            // nothing trains: a zero norm on the model's device
            let device = model.devices().into_iter().next().unwrap_or_default().inner();
            return (model, Tensor::zeros([1], &device));
        };
        let values = match self.values.take() {
            Some(values) => values,
            None => {
                let mut gather = Gather::new(&self.slots, &self.groups, &device, Values);
                model.visit(&mut gather);
                gather.finish()
            }
        };
        let mut gradients = {
            let mut gather = Gather::new(&self.slots, &self.groups, &device, Gradients(&mut grads));
            model.visit(&mut gather);
            gather.finish()
        };

        let squares: Vec<Tensor<1>> = gradients.iter().flatten().map(|g| g.clone().square().sum()).collect();
        let norm = squares.into_iter().reduce(|a, b| a + b).expect("a gradient").sqrt();
        if let Some(max_norm) = max_norm {
            let factor = norm.clone().add_scalar(1e-6).recip().mul_scalar(max_norm).clamp_max(1.0);
            for g in gradients.iter_mut().flatten() {
                *g = g.clone().mul(factor.clone());
            }
        }

        self.time += 1;
        // the scalars in f32, as burn's AdamW computes them
        let (beta_1, beta_2, epsilon) = (self.settings.beta_1 as f32, self.settings.beta_2 as f32, self.settings.epsilon as f32);
        let correction_1 = 1.0 - beta_1.powi(self.time as i32);
        let correction_2 = 1.0 - beta_2.powi(self.time as i32);
        let moments = self.moments.get_or_insert_with(|| {
            self.groups.iter().map(|g| Moments { first: Tensor::zeros([g.len], &device), second: Tensor::zeros([g.len], &device) }).collect()
        });
        let mut updated = Vec::with_capacity(self.groups.len());
        // the padding between parameters stays zero: zero gradients and moments give a zero step
        for ((group, moments), (value, gradient)) in self.groups.iter().zip(moments.iter_mut()).zip(values.into_iter().zip(gradients)) {
            let (Some(value), Some(gradient)) = (value, gradient) else {
                updated.push(None);
                continue;
            };
            moments.first = moments.first.clone().mul_scalar(beta_1).add(gradient.clone().mul_scalar(1.0 - beta_1));
            moments.second = moments.second.clone().mul_scalar(beta_2).add(gradient.square().mul_scalar(1.0 - beta_2));
            let step = moments
                .first
                .clone()
                .div_scalar(correction_1)
                .div(moments.second.clone().div_scalar(correction_2).sqrt().add_scalar(epsilon));
            let decay = lr * (group.weight_decay as f32) as f64;
            let decayed = if decay == 0.0 { value } else { value.mul_scalar(1.0 - decay) };
            updated.push(Some(decayed - step.mul_scalar(lr)));
        }
        let mut scatter = Scatter { slots: &self.slots, next: 0, views: self.views(&updated) };
        let model = model.map(&mut scatter);
        self.values = Some(updated);
        (model, norm)
    }

    /// Each trainable parameter's new value, in visiting order: a view of its slot in its group's
    /// updated vector (`None` for a group not updated).
    fn views(&self, updated: &[Option<Tensor<1>>]) -> Vec<Option<FloatTensor<Dispatch>>> {
        let mut views: Vec<Option<FloatTensor<Dispatch>>> = vec![None; self.slots.len()];
        for (group, vector) in updated.iter().enumerate() {
            let Some(vector) = vector else { continue };
            let (indices, parts): (Vec<usize>, Vec<(usize, &[usize])>) =
                self.slots.iter().enumerate().filter(|(_, slot)| slot.group == group).map(|(i, slot)| (i, (slot.offset, slot.shape.as_slice()))).unzip();
            for (i, view) in indices.into_iter().zip(kernels::views(vector, &parts)) {
                views[i] = Some(view);
            }
        }
        views
    }

    /// The device of `model`'s trainable parameters; `None` when nothing trains.
    fn device<M: Module>(&self, model: &M) -> Option<Device> {
        struct First(Option<Device>);
        impl ModuleVisitor for First {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.0.is_none() {
                    let value = param.val();
                    if value.is_require_grad() {
                        self.0 = Some(value.device());
                    }
                }
            }
        }
        if self.slots.is_empty() {
            return None;
        }
        let mut first = First(None);
        model.visit(&mut first);
        first.0
    }

    /// Writes the state (moments and step count) to `path`, atomically.
    pub fn save(&self, path: &Path) -> std::result::Result<(), String> {
        let record = self.record(&Device::flex());
        crate::model::save(&record, path)
    }

    /// Reads a state written by [`AdamW::save`] for the same model, onto `device`.
    pub fn load(mut self, path: &Path, device: &Device) -> std::result::Result<Self, String> {
        let empty = self.record(&Device::flex());
        let record = crate::model::load(empty, path)?;
        let time = host(record.time.val())?;
        self.time = time.first().map_or(0, |t| *t as usize);
        self.moments = if self.time > 0 {
            let first = self.unpack(&[host(record.first[DECAYED].val())?, host(record.first[NOT_DECAYED].val())?]);
            let second = self.unpack(&[host(record.second[DECAYED].val())?, host(record.second[NOT_DECAYED].val())?]);
            let on_device = |values: Vec<f32>| Tensor::<1>::from_data(burn::tensor::TensorData::new(values.clone(), [values.len()]), device);
            Some(first.into_iter().zip(second).map(|(m, v)| Moments { first: on_device(m), second: on_device(v) }).collect())
        } else {
            None
        };
        self.values = None;
        Ok(self)
    }

    /// Each class's parameters in visiting order, back to back: how a state file lays out the
    /// moments (without the padding and the split into groups, which depend only on [`ALIGN`] and
    /// [`GROUP_LIMIT`]). Assembled on the host: a class can be larger than a device buffer.
    fn pack(&self, groups: &[Vec<f32>]) -> [Vec<f32>; 2] {
        let mut packed = [Vec::new(), Vec::new()];
        for slot in &self.slots {
            packed[self.groups[slot.group].class].extend_from_slice(&groups[slot.group][slot.range()]);
        }
        packed
    }

    /// The inverse of [`AdamW::pack`]: the group vectors, zeros between parameters.
    fn unpack(&self, packed: &[Vec<f32>; 2]) -> Vec<Vec<f32>> {
        let mut groups: Vec<Vec<f32>> = self.groups.iter().map(|g| vec![0.0; g.len]).collect();
        let mut start = [0, 0];
        for slot in &self.slots {
            let class = self.groups[slot.group].class;
            groups[slot.group][slot.range()].copy_from_slice(&packed[class][start[class]..start[class] + slot.len]);
            start[class] += slot.len;
        }
        groups
    }

    /// Values in class `class`, the padding left out.
    fn packed_len(&self, class: usize) -> usize {
        self.slots.iter().filter(|s| self.groups[s.group].class == class).map(|s| s.len).sum()
    }

    /// The state as a module on `device` (zeros before the first step, shaped for loading
    /// into). Its parameter ids are fixed (fresh ones are random), so one state writes the same
    /// bytes wherever it lives.
    fn record(&self, device: &Device) -> StateRecord {
        let param = |id: usize, value: Vec<f32>| {
            let len = value.len();
            Param::initialized(ParamId::from(id as u64), Tensor::from_data(burn::tensor::TensorData::new(value, [len]), device))
        };
        let host = |t: &Tensor<1>| host(t.clone()).expect("the moments are f32");
        let (first, second) = match &self.moments {
            Some(moments) => (
                self.pack(&moments.iter().map(|m| host(&m.first)).collect::<Vec<_>>()),
                self.pack(&moments.iter().map(|m| host(&m.second)).collect::<Vec<_>>()),
            ),
            None => {
                let zeros = || [vec![0.0; self.packed_len(DECAYED)], vec![0.0; self.packed_len(NOT_DECAYED)]];
                (zeros(), zeros())
            }
        };
        let [first_decayed, first_rest] = first;
        let [second_decayed, second_rest] = second;
        StateRecord {
            first: vec![param(0, first_decayed), param(1, first_rest)],
            second: vec![param(2, second_decayed), param(3, second_rest)],
            // exact up to 2^24 steps
            time: param(4, vec![self.time as f32]),
        }
    }
}

/// What [`AdamW::save`] writes.
#[derive(Module, Debug)]
struct StateRecord {
    first: Vec<Param<Tensor<1>>>,
    second: Vec<Param<Tensor<1>>>,
    time: Param<Tensor<1>>,
}

/// Every float parameter's shape and whether it trains, in visiting order.
#[derive(Default)]
struct Shapes {
    all: Vec<(Vec<usize>, bool)>,
}

impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.all.push((value.dims().to_vec(), value.is_require_grad()));
    }
}

/// A vector's values on the host, as f32.
fn host(t: Tensor<1>) -> std::result::Result<Vec<f32>, String> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// One tensor per trainable parameter (its value or its gradient), flattened into its group's
/// vector at its slot; the padding, and a parameter without a tensor, are zeros.
struct Gather<'a, F> {
    slots: &'a [Slot],
    next: usize,
    pick: F,
    groups: Vec<Option<Pack>>,
}

impl<'a, F> Gather<'a, F> {
    fn new(slots: &'a [Slot], groups: &[Group], device: &Device, pick: F) -> Self {
        let groups = groups.iter().map(|g| (g.len > 0).then(|| Pack::new(Tensor::zeros([g.len], device)))).collect();
        Self { slots, next: 0, pick, groups }
    }

    fn finish(self) -> Vec<Option<Tensor<1>>> {
        assert_eq!(self.next, self.slots.len(), "the optimizer was built for another model");
        self.groups.into_iter().map(|group| group.map(Pack::finish)).collect()
    }
}

/// What [`Gather`] takes from a parameter: `Some(tensor)` of the parameter's shape, or `None`.
trait Pick {
    fn pick<const D: usize>(&mut self, param: &Param<Tensor<D>>) -> Option<Tensor<D>>;
}

impl<F: Pick> ModuleVisitor for Gather<'_, F> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let slot = &self.slots[self.next];
        self.next += 1;
        assert_eq!(value.dims().as_slice(), slot.shape.as_slice(), "the optimizer was built for another model");
        if let Some(tensor) = self.pick.pick(param) {
            self.groups[slot.group].as_mut().expect("a group with this slot").put(tensor, slot.range().start);
        }
    }
}

/// The parameters' values (their inner tensors, off the autodiff graph).
struct Values;

impl Pick for Values {
    fn pick<const D: usize>(&mut self, param: &Param<Tensor<D>>) -> Option<Tensor<D>> {
        Some(param.val().inner())
    }
}

/// The parameters' gradients, taken out of the step's gradients.
struct Gradients<'a>(&'a mut GradientsParams);

impl Pick for Gradients<'_> {
    fn pick<const D: usize>(&mut self, param: &Param<Tensor<D>>) -> Option<Tensor<D>> {
        self.0.remove::<D>(param.id)
    }
}

/// Puts the updated group vectors' views ([`AdamW::views`]) in place of the parameters.
struct Scatter<'a> {
    slots: &'a [Slot],
    next: usize,
    views: Vec<Option<FloatTensor<Dispatch>>>,
}

impl ModuleMapper for Scatter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        if !value.is_require_grad() {
            return Param::from_mapped_value(id, value, mapper);
        }
        let index = self.next;
        self.next += 1;
        let Some(view) = self.views[index].take() else {
            return Param::from_mapped_value(id, value, mapper);
        };
        assert_eq!(self.slots[index].shape.len(), D, "the optimizer was built for another model");
        let fresh = Tensor::from_inner(Tensor::<D>::from_dispatch(view)).require_grad();
        Param::from_mapped_value(id, fresh, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::clip;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::optim::{AdamWConfig, ModuleOptimizer};
    use burn::tensor::TensorData;

    #[derive(Module, Debug)]
    struct Net {
        first: Linear,
        norm: LayerNorm,
        frozen: Linear,
        last: Linear,
    }

    fn net(device: &Device) -> Net {
        device.seed(3);
        let net = Net {
            first: LinearConfig::new(5, 7).init(device),
            norm: LayerNormConfig::new(7).init(device),
            frozen: LinearConfig::new(7, 7).init(device).no_grad(),
            last: LinearConfig::new(7, 3).init(device),
        };
        // parameters are drawn when first read: read them now (clones then share the values;
        // the flex generator is shared with tests running beside this one, so no two calls of
        // `net` are alike)
        values(&net);
        net
    }

    impl Net {
        fn loss(&self, step: usize, device: &Device) -> Tensor<1> {
            let values: Vec<f32> = (0..4 * 5).map(|i| (((i * 37 + step * 11) % 17) as f32 - 8.0) / 3.0).collect();
            let x = Tensor::<2>::from_data(TensorData::new(values, [4, 5]), device);
            let y = self.last.forward(self.frozen.forward(self.norm.forward(self.first.forward(x).tanh())));
            y.powf_scalar(2.0).sum().mul_scalar(5.0 + step as f32)
        }
    }

    fn decays(param: &NamedParam) -> bool {
        param.hf_decays()
    }

    const SETTINGS: Settings = Settings { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.05 };

    /// burn's per-parameter AdamW, grouped like brasa's, behind the host-side clip.
    fn reference(model: &Net) -> ModuleOptimizer {
        let config = |wd: f64| AdamWConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-8).with_weight_decay(wd as f32);
        let no_decay: Vec<_> = params::named_params(model).into_iter().filter(|p| !p.hf_decays()).map(|p| p.id).collect();
        config(SETTINGS.weight_decay).init().with_group(burn::module::ParamGroup::from_ids(no_decay), config(0.0).build(), None)
    }

    fn values(model: &Net) -> Vec<f32> {
        let mut all = Vec::new();
        for tensor in [model.first.weight.val().reshape([35]), model.norm.gamma.val(), model.frozen.weight.val().reshape([49]), model.last.weight.val().reshape([21]), model.last.bias.as_ref().unwrap().val()] {
            all.extend(tensor.into_data().convert::<f32>().try_into_vec::<f32>().unwrap());
        }
        all
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 2e-6 * x.abs().max(1.0), "{what}: {x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    #[test]
    fn equals_burns_adamw_after_the_global_clip() {
        let device = Device::flex().autodiff();
        // one vector per class, and classes split into vectors of at most 64 values (each of the
        // six trainable parameters padded to 64: one vector each)
        for (max_norm, limit) in [(None, GROUP_LIMIT), (Some(1.0), GROUP_LIMIT), (Some(1e9), GROUP_LIMIT), (Some(1.0), 64)] {
            let mut ours = net(&device);
            let mut theirs = ours.clone();
            let mut flat = AdamW::with_group_limit(&ours, SETTINGS, decays, limit);
            assert_eq!(flat.groups.len(), if limit == 64 { 6 } else { 2 });
            let mut per_param = reference(&theirs);
            for step in 0..6 {
                let lr = 1e-2 * (1.0 + step as f64);
                let grads = GradientsParams::from_grads(ours.loss(step, &device).backward(), &ours);
                let (next, norm) = flat.step(lr, ours, grads, max_norm);
                ours = next;

                let mut grads = GradientsParams::from_grads(theirs.loss(step, &device).backward(), &theirs);
                let reference_norm = clip::global_norm(&theirs, &grads);
                if let Some(max_norm) = max_norm {
                    clip::clip(&theirs, &mut grads, reference_norm, max_norm);
                }
                theirs = per_param.step(lr, theirs, grads);

                let norm: f32 = norm.into_scalar();
                assert!((norm as f64 - reference_norm).abs() <= 1e-5 * reference_norm, "step {step}: norm {norm} vs {reference_norm}");
                assert_close(&values(&ours), &values(&theirs), &format!("max_norm {max_norm:?}, limit {limit}, step {step}"));
            }
            assert_eq!(flat.time(), 6);
        }
    }

    #[test]
    fn frozen_parameters_stay_and_the_rest_stay_trainable() {
        let device = Device::flex().autodiff();
        let model = net(&device);
        let frozen_before: Vec<f32> = model.frozen.weight.val().into_data().try_into_vec().unwrap();
        let mut flat = AdamW::new(&model, SETTINGS, decays);
        assert_eq!(flat.len(), 35 + 7 + 7 + 7 + 21 + 3);
        let grads = GradientsParams::from_grads(model.loss(0, &device).backward(), &model);
        let (model, _) = flat.step(0.1, model, grads, Some(1.0));
        assert_eq!(model.frozen.weight.val().into_data().try_into_vec::<f32>().unwrap(), frozen_before);
        assert!(model.first.weight.val().is_require_grad() && !model.frozen.weight.val().is_require_grad());
        // a second step still finds every gradient
        let grads = GradientsParams::from_grads(model.loss(1, &device).backward(), &model);
        assert!(grads.get::<2>(model.first.weight.id).is_some());
    }

    #[test]
    fn a_model_with_nothing_to_train_is_left_as_it_is() {
        let device = Device::flex().autodiff();
        let model = net(&device).no_grad();
        let before = values(&model);
        let mut flat = AdamW::new(&model, SETTINGS, decays);
        assert!(flat.is_empty());
        let (model, norm) = flat.step(0.1, model, GradientsParams::new(), Some(1.0));
        assert_eq!(values(&model), before);
        assert_eq!(norm.into_scalar::<f32>(), 0.0);
    }

    #[test]
    fn a_saved_state_resumes_to_the_same_parameters() {
        let device = Device::flex().autodiff();
        let dir = tempfile::tempdir().unwrap();
        let run = |model: Net, flat: &mut AdamW, steps: std::ops::Range<usize>| {
            let mut model = model;
            for step in steps {
                let grads = GradientsParams::from_grads(model.loss(step, &device).backward(), &model);
                model = flat.step(1e-2, model, grads, Some(1.0)).0;
            }
            model
        };
        let initial = net(&device);
        let mut straight = AdamW::new(&initial, SETTINGS, decays);
        let expected = values(&run(initial.clone(), &mut straight, 0..5));

        let mut first = AdamW::new(&initial, SETTINGS, decays);
        let halfway = run(initial.clone(), &mut first, 0..2);
        let path = dir.path().join("optim.bpk");
        first.save(&path).unwrap();
        crate::model::save(&halfway, &dir.path().join("model.bpk")).unwrap();
        let model = crate::model::load(net(&device), &dir.path().join("model.bpk")).unwrap();
        let mut resumed = AdamW::new(&model, SETTINGS, decays).load(&path, &device.clone().inner()).unwrap();
        assert_eq!(resumed.time(), 2);
        assert_close(&values(&run(model.clone(), &mut resumed, 2..5)), &expected, "resumed");

        // the state file does not depend on how the classes are split into vectors
        let mut split = AdamW::with_group_limit(&model, SETTINGS, decays, 64).load(&path, &device.clone().inner()).unwrap();
        assert_close(&values(&run(model.clone(), &mut split, 2..5)), &expected, "resumed with one vector per parameter");
        let resaved = dir.path().join("resaved.bpk");
        AdamW::with_group_limit(&model, SETTINGS, decays, 64).load(&path, &device.clone().inner()).unwrap().save(&resaved).unwrap();
        assert_eq!(std::fs::read(&resaved).unwrap(), std::fs::read(&path).unwrap());

        // a state for another model is refused
        let other = Net { last: LinearConfig::new(7, 4).init(&device), ..net(&device) };
        let error = AdamW::new(&other, SETTINGS, decays).load(&path, &device.clone().inner()).unwrap_err();
        assert!(!error.is_empty());
    }
}
