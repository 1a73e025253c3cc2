//! The `brainsam` command-line tool: a thin layer over the library.

use clap::{Parser, Subcommand};

/// Segment the 12 subcortical structures in T1-weighted brain MRI with SAM + LoRA.
#[derive(Parser)]
#[command(name = "brainsam", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print versions and the compute runtime (libtorch, CUDA, threads).
    Info,
    /// Fine-tune a model on labelled volumes (TOML configuration, flags override it).
    FineTune(brainsam::train::cli::FineTuneArgs),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result: brainsam::Result<()> = match cli.command {
        Command::Info => {
            println!("{}", brainsam::runtime::RuntimeInfo::current());
            Ok(())
        }
        Command::FineTune(args) => brainsam::train::cli::run_fine_tune(&args),
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
