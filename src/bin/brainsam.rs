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
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result: brainsam::Result<()> = match cli.command {
        Command::Info => {
            println!("{}", brainsam::runtime::RuntimeInfo::current());
            Ok(())
        }
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
