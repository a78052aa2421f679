//! The experiment spec as the user writes it: schema, layered loading, and located errors.

mod error;
pub mod flat;
mod load;
pub mod schema;
pub mod sweep;

pub use error::{SpecError, SpecIssue, closest};
pub use load::{ENV_PREFIX, ENV_SEPARATOR, Layers, LoadedSpec, Override, UnsetKey, render_value};
pub use schema::{Spec, json_schema};
