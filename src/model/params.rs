//! Parameters by name: the dotted path of every float parameter (Hugging Face style, e.g.
//! `cvt.encoder.stages.0.layers.0.layernorm_before.gamma`), with its id and the module type
//! that owns it. Used to freeze parts of a model and to choose what is weight-decayed.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// One float parameter of a module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedParam {
    pub path: String,
    pub id: ParamId,
    /// The burn module type that owns it (`LayerNorm`, `Linear`, `BatchNorm`, ...).
    pub owner: String,
    /// Number of values.
    pub numel: usize,
}

impl NamedParam {
    /// The parameter's own name (`weight`, `bias`, `gamma`, ...).
    pub fn leaf(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// Whether it sits at or below the dotted `prefix` (`cvt.encoder.stages.0`).
    pub fn is_under(&self, prefix: &str) -> bool {
        self.path == prefix || self.path.starts_with(&format!("{prefix}."))
    }

    /// Hugging Face Trainer's rule (`get_decay_parameter_names`): no weight decay on biases and
    /// on LayerNorm weights. burn names norm biases `beta`, LayerNorm weights `gamma`;
    /// BatchNorm weights are decayed, as in the Trainer.
    pub fn hf_decays(&self) -> bool {
        let leaf = self.leaf();
        let is_bias = leaf == "bias" || leaf == "beta";
        let is_layer_norm_weight = self.owner == "LayerNorm" && leaf == "gamma";
        !(is_bias || is_layer_norm_weight)
    }

    /// A BatchNorm running mean or variance: state, not a parameter (a buffer in PyTorch).
    pub fn is_running_statistic(&self) -> bool {
        self.owner == "BatchNorm" && matches!(self.leaf(), "running_mean" | "running_var")
    }
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    owners: Vec<String>,
    params: Vec<NamedParam>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.owners.push(container_type.strip_prefix("Struct:").unwrap_or(container_type).to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.owners.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Entering a field reports the type of the struct that holds it: the parameter's owner.
        let owner = self.owners.last().cloned().unwrap_or_default();
        let numel = param.lazy_shape().num_elements();
        self.params.push(NamedParam { path: self.path.join("."), id: param.id, owner, numel });
    }
}

/// How many parameters `module` has, trainable or frozen, as PyTorch counts them
/// (`sum(p.numel() for p in model.parameters())`): BatchNorm running statistics are not parameters.
pub fn count<M: Module>(module: &M) -> usize {
    named_params(module).iter().filter(|p| !p.is_running_statistic()).map(|p| p.numel).sum()
}

/// Initialises every lazily initialised parameter of `module`, in module order.
pub fn initialize<M: Module>(module: &M) {
    struct Initialize;
    impl ModuleVisitor for Initialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Initialize);
}

/// Every float parameter of `module` (trainable weights and running statistics), in order.
pub fn named_params<M: Module>(module: &M) -> Vec<NamedParam> {
    let mut collector = Collector::default();
    module.visit(&mut collector);
    collector.params
}
