//! The `berth` binary: parse the command line, read the environment once, run
//! the command, report any error once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = berth::cli::Cli::parse();
    let settings = berth::shell::settings::Settings::from_process(cli.state_dir.clone());
    let daemon = matches!(cli.command, berth::cli::Command::Watch(_));
    let filter = match (cli.verbose, daemon) {
        (true, _) => "berth=debug",
        (false, true) => "berth=info",
        (false, false) => "berth=warn",
    };
    let filter = settings
        .env
        .get("BERTH_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| filter.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(berth::commands::run(cli, settings)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
