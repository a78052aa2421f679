//! `brasa schema`: the JSON Schema of a spec file, for editors (`#:schema` in a spec).

use brasa::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn execute(_: SchemaArgs) -> Result<()> {
    super::print_out(&brasa::spec::json_schema())
}
