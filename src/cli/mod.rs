//! Command-line front end: argument parsing and one module per subcommand.

mod bench;
mod eval;
mod export;
mod info;
mod inspect;
mod options;
mod parity;
mod progress;
mod run;
mod sample;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use rnn_wgpu::Backend;
use rnn_wgpu::Result;

#[derive(Parser, Debug)]
#[command(
    name = "rnn-wgpu",
    version,
    about = "Train and run RNN, LSTM and GRU models with PyTorch's conventions"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check results against PyTorch reference cases (safetensors, format rnn-parity/1).
    Parity(parity::ParityArgs),
    /// Time forward and train steps (forward + BPTT) at one shape.
    Bench(bench::BenchArgs),
    /// List GPU adapters, the one chosen, its limits and features.
    Info,
    /// Write a checkpoint's stack and head under PyTorch's names, with the PyTorch that loads them.
    Export(export::ExportArgs),
    /// List what a safetensors file holds: its recurrent stacks (by prefix) and other tensors.
    Inspect(inspect::InspectArgs),
    /// Train a character language model on a text (tiny Shakespeare by default).
    Train(train::TrainArgs),
    /// Generate text from a trained character model.
    Sample(sample::SampleArgs),
    /// Stream a file through a checkpoint: a character model's guesses and loss, or a regression
    /// model's forecasts and RMSE / MAE.
    Run(run::RunArgs),
    /// A checkpoint's metrics on a labelled file (loss and perplexity; RMSE and MAE beside naive).
    Eval(eval::EvalArgs),
}

/// The bench script's cell names (`rnn` is tanh).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CellArg {
    Rnn,
    Lstm,
    Gru,
}

impl From<CellArg> for rnn_wgpu::Mode {
    fn from(c: CellArg) -> rnn_wgpu::Mode {
        match c {
            CellArg::Rnn => rnn_wgpu::Mode::RnnTanh,
            CellArg::Lstm => rnn_wgpu::Mode::Lstm,
            CellArg::Gru => rnn_wgpu::Mode::Gru,
        }
    }
}

/// `--backend cpu|gpu`
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    Cpu,
    Gpu,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::Gpu => Backend::Gpu,
        }
    }
}

/// exp(loss) to two decimals, or written as exp(loss) where it overflows f64 (a loss past 709
/// nats, as from a model with enormous weights): never "inf".
pub fn perplexity(loss: f64) -> String {
    let ppl = loss.exp();
    if ppl.is_finite() {
        format!("{ppl:.2}")
    } else {
        format!("exp({loss:.4})")
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Parity(args) => parity::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Info => info::run(),
        Command::Inspect(args) => inspect::run(args),
        Command::Export(args) => export::run(args),
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Run(args) => run::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
