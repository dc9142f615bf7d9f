//! `rnn-wgpu inspect FILE`: what a safetensors file holds, the recurrent stacks found in it by
//! their parameter names (as `interop::load_state_dict` would load them) and every other tensor.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use rnn_wgpu::Result;
use rnn_wgpu::interop::{FoundStack, find_stacks};
use rnn_wgpu::limits::human_bytes;
use rnn_wgpu::tensor_file::TensorFile;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A safetensors file (a PyTorch state_dict, a checkpoint, a parity case)
    file: PathBuf,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let file = TensorFile::read(&args.file)?;
    let stacks = find_stacks(&file);
    println!("{}: {} tensors", args.file.display(), file.names().count());
    println!("recurrent stacks ({}):", stacks.len());
    for stack in &stacks {
        let dtype = file.dtype(&format!("{}weight_ih_l0", stack.prefix))?;
        println!("  {} dtype={dtype:?}", describe(stack));
    }
    let mut others: Vec<&str> = file
        .names()
        .filter(|name| !stacks.iter().any(|s| owns(s, name)))
        .collect();
    others.sort_unstable();
    println!("other tensors ({}):", others.len());
    for name in others {
        let shape = file.shape(name)?;
        let dtype = file.dtype(name)?;
        let bytes = (shape.iter().product::<usize>() * dtype.bitsize()).div_ceil(8);
        println!(
            "  {name} {shape:?} {dtype:?} ({})",
            human_bytes(bytes as u128)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line: where the stack is and the config it loads as.
fn describe(stack: &FoundStack) -> String {
    let prefix = if stack.prefix.is_empty() {
        "(no prefix)".to_string()
    } else {
        format!("'{}'", stack.prefix)
    };
    let mode = match stack.mode {
        Some(rnn_wgpu::Mode::RnnTanh) => "RNN (tanh or relu)".to_string(),
        Some(mode) => mode.to_string(),
        None => "unknown cell (gate rows not 1, 3 or 4 times H)".to_string(),
    };
    let proj = if stack.proj_size > 0 {
        format!(" proj_size={}", stack.proj_size)
    } else {
        String::new()
    };
    format!(
        "{prefix}: {mode} input={} hidden={}{proj} layers={} bidirectional={} bias={}",
        stack.input_size, stack.hidden_size, stack.num_layers, stack.bidirectional, stack.bias
    )
}

/// Whether `name` is one of the stack's parameters.
fn owns(stack: &FoundStack, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(&stack.prefix) else {
        return false;
    };
    let rest = rest.strip_suffix("_reverse").unwrap_or(rest);
    [
        "weight_ih_l",
        "weight_hh_l",
        "weight_hr_l",
        "bias_ih_l",
        "bias_hh_l",
    ]
    .iter()
    .any(|kind| {
        rest.strip_prefix(kind)
            .is_some_and(|layer| layer.parse::<usize>().is_ok_and(|k| k < stack.num_layers))
    })
}
