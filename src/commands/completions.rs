//! `berth completions SHELL`: the shell completion script, generated from the
//! same command-line definition the binary parses (clap_complete).

use crate::cli::CompletionsArgs;
use clap::CommandFactory;

use super::CommandError;

pub fn run(args: CompletionsArgs) -> Result<u8, CommandError> {
    let shell = args.shell;
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut cmd, "berth", &mut std::io::stdout());
    Ok(0)
}
