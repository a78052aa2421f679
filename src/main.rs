//! The `brasa` command: parse arguments, call the library, turn errors into one readable
//! message and the exit code of their kind (`brasa::error` lists them).

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: brasa::allocator::BySize = brasa::allocator::BySize;

fn main() -> ExitCode {
    brasa::allocator::tune();
    let args = cli::Cli::parse();
    match cli::execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
