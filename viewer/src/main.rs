//! `chords`: the live viewer, and plan, render and bench CHORDS runs from the command line.
//!
//! Every failure prints one line `error: …` on stderr and exits with code 2; a render
//! stopped by Ctrl-C writes what it has, says so in one line and exits with code 130.

mod atlas;
mod bench;
mod cli;
mod data;
mod emojis;
mod files;
mod frames;
mod job;
mod limits;
mod plan;
mod plot;
mod raster;
mod render;
mod retrieval;
mod solver;
mod train;
mod view;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("error: {first} (see `chords --help`)");
            return ExitCode::from(2);
        }
    };
    // Our errors reach the user as return values; wgpu's own logging of failed probes
    // (missing drivers, no display) is silenced unless CHORDS_LOG asks for it.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHORDS_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,wgpu_hal=off,wgpu_core=off,naga=off")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let command = args
        .command
        .unwrap_or_else(|| cli::Command::View(view::ViewArgs::default_args()));
    quiet_panics();
    let Ok(result) = catch_unwind(AssertUnwindSafe(|| execute(command))) else {
        let what = LAST_PANIC
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .unwrap_or_else(|| "unknown cause".into());
        eprintln!(
            "error: internal error: {what} (a bug in chords; RUST_BACKTRACE=1 shows the trace)"
        );
        return ExitCode::from(101);
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `chords plan | head`: the reader left; not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<render::Cancelled>() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

/// The newest panic's message and place, kept by the hook [`quiet_panics`] installs.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Panics reach the user as one `error:` line, not a trace: a panic caught and turned
/// into an error (a model call, a training thread) prints nothing of its own, and `main`
/// reports one that is not. `RUST_BACKTRACE` keeps Rust's own report.
fn quiet_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let mut text = info.payload_as_str().unwrap_or("unknown cause").to_owned();
        if let Some(place) = info.location() {
            text += &format!(" at {place}");
        }
        tracing::debug!("panic: {text}");
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(text);
        }
    }));
}

/// Runs one command.
fn execute(command: cli::Command) -> anyhow::Result<()> {
    match command {
        cli::Command::View(a) => view::run(&a),
        cli::Command::Plan(a) => plan::run(&a),
        cli::Command::Render(a) => render::run(&a),
        cli::Command::Data(a) => data::run(&a),
        cli::Command::Train(a) => train::run(&a),
        cli::Command::Emojis(a) => emojis::run(&a),
        cli::Command::Retrieval(a) => retrieval::run(&a),
        cli::Command::Bench(a) => bench::run_bench(&a),
        cli::Command::Adapters => {
            let adapters =
                chords_wgpu::list_adapters(chords_wgpu::wgpu::Backends::all().with_env());
            if adapters.is_empty() {
                println!("no wgpu adapter found");
            }
            for (i, a) in adapters {
                println!("{i}: {a}");
            }
            Ok(())
        }
    }
}
