//! The `berth` binary: parse the command line, read the environment once, run
//! the command, report any error once.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = berth::cli::Cli::parse();
    let settings = berth::shell::settings::Settings::from_process(cli.state_dir.clone());
    let serving = matches!(
        cli.command,
        berth::cli::Command::Watch(_) | berth::cli::Command::Serve { .. }
    );
    if matches!(cli.command, berth::cli::Command::Watch(_)) {
        berth::shell::memory::one_arena();
    }
    if !serving {
        // A command whose output goes into `head` or `grep -q` ends quietly when
        // the reader leaves, as Unix tools do, instead of panicking in println!.
        // Long-running servers keep ignoring SIGPIPE: a client that hangs up
        // is an error on that connection, never the end of the daemon.
        // SAFETY: called before any thread starts; SIG_DFL is a valid handler.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter = match (cli.verbose, serving) {
        (true, _) => "berth=debug",
        (false, true) => "berth=info",
        (false, false) => "berth=warn",
    };
    let filter = settings
        .env
        .get("BERTH_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| filter.into());
    // `BERTH_TIMINGS=1`: each phase's time (load, connect, every list call,
    // desired, plan, render, the whole command) as it ends, for the benchmarks.
    let timings = settings.env.get("BERTH_TIMINGS").is_some_and(|v| v == "1");
    let (filter, spans) = match timings {
        true => (
            filter.add_directive("berth::timing=info".parse().expect("a valid directive")),
            tracing_subscriber::fmt::format::FmtSpan::CLOSE,
        ),
        false => (filter, tracing_subscriber::fmt::format::FmtSpan::NONE),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !settings.env.contains_key("NO_COLOR"));
    berth::say::set_json(cli.log_format == "json");
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
            berth::say::error(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The command runs on a worker, not on this thread: a future that
    // `block_on` polls here is woken from a worker at each I/O event, a context
    // switch each (a fifth of the CPU of a daemon's look at every container).
    let whole = tracing::info_span!(target: "berth::timing", "command");
    let command = runtime.block_on(async {
        use tracing::Instrument;
        tokio::spawn(berth::commands::run(cli, settings).instrument(whole)).await
    });
    match command {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            berth::say::error(&format!("error: {e}"));
            ExitCode::FAILURE
        }
        Err(joined) => match joined.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => ExitCode::FAILURE,
        },
    }
}
