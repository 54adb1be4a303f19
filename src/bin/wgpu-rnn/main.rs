//! The `wgpu-rnn` command: run a Keras SimpleRNN layer from `.npz` weights on a `.npy` input, list
//! GPU adapters, or (with no arguments) run the embedded demo model.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ndarray::{Array2, Array3};
use wgpu_rnn::{
    Activation, CpuRnn, GpuContext, GpuOptions, GpuRnn, RnnError, RnnForward, SimpleRnn,
    SimpleRnnConfig, load_keras_npz, read_npy_f32, write_npy_f32,
};

#[derive(Parser)]
#[command(
    version,
    about = "Keras SimpleRNN layers on any GPU (wgpu) or the CPU, with Keras's numbers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SimpleRNN layer saved as `np.savez(path, *layer.get_weights())` on an N×T×D input.
    Run(RunArgs),
    /// List the GPU adapters wgpu finds, with the limits that matter here.
    Info,
    /// Run the embedded demo model (what running with no arguments does).
    Demo {
        /// Which backend(s) to run it on.
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Weights: arr_0 = kernel (D×M), arr_1 = recurrent_kernel (M×M), arr_2 = bias (M), or the
    /// keys kernel, recurrent_kernel, bias.
    weights: PathBuf,
    /// Input .npy, float32 or float64, shape N×T×D.
    input: PathBuf,
    /// Where to write the layer's output (.npy, float32): N×T×M with --return-sequences, else N×M.
    #[arg(short, long)]
    output: PathBuf,
    /// Keras activation name (tanh, relu, linear, gelu, softmax, ...).
    #[arg(long, default_value = "tanh")]
    activation: String,
    /// Output the state after every step instead of only the last.
    #[arg(long)]
    return_sequences: bool,
    /// Read the input from the last step to the first (Keras's go_backwards).
    #[arg(long)]
    go_backwards: bool,
    /// Initial state .npy, shape N×M (zeros when absent).
    #[arg(long)]
    initial_state: Option<PathBuf>,
    /// Also write the final state (N×M) to this .npy file.
    #[arg(long)]
    final_state: Option<PathBuf>,
    /// gpu, cpu, or auto (a GPU when one is found, else the CPU with a note).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
}

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A GPU adapter; an error when there is none.
    Gpu,
    /// The CPU reference path.
    Cpu,
    /// A GPU when one is found, else the CPU (with a note on stderr).
    Auto,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => demo::run(Backend::Auto),
        Some(Command::Demo { backend }) => demo::run(backend),
        Some(Command::Info) => {
            info();
            Ok(())
        }
        Some(Command::Run(args)) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<(), RnnError> {
    let config = SimpleRnnConfig {
        activation: Activation::from_keras_name(&args.activation)?,
        return_sequences: args.return_sequences,
        go_backwards: args.go_backwards,
        ..Default::default()
    };
    let layer = load_keras_npz(&args.weights, config)?;
    let input: Array3<f32> = read_npy_f32(&args.input)?;
    let initial_state: Option<Array2<f32>> =
        args.initial_state.as_ref().map(read_npy_f32).transpose()?;
    // Shapes are checked before any GPU work starts, so a bad input fails fast on every backend.
    layer.check_input(
        &input.view(),
        initial_state.as_ref().map(|h| h.view()).as_ref(),
    )?;

    let model = backend_for(args.backend, layer)?;
    let out = model.forward(input.view(), initial_state.as_ref().map(|h| h.view()))?;
    write_npy_f32(&args.output, &out.output())?;
    if let Some(path) = &args.final_state {
        write_npy_f32(path, &out.final_state)?;
    }
    Ok(())
}

/// Builds the model on the chosen backend; `auto` falls back to the CPU with a note.
pub fn backend_for(backend: Backend, layer: SimpleRnn) -> Result<Box<dyn RnnForward>, RnnError> {
    match backend {
        Backend::Cpu => Ok(Box::new(CpuRnn::new(layer))),
        Backend::Gpu => Ok(Box::new(GpuRnn::new(
            &GpuContext::new_blocking(GpuOptions::default())?,
            layer,
        )?)),
        Backend::Auto => match GpuContext::new_blocking(GpuOptions::default()) {
            Ok(ctx) => Ok(Box::new(GpuRnn::new(&ctx, layer)?)),
            Err(e) => {
                eprintln!("note: running on the CPU: {e}");
                Ok(Box::new(CpuRnn::new(layer)))
            }
        },
    }
}

fn info() {
    let adapters = GpuContext::adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapters found; `--backend auto` will use the CPU.\n\
             On a headless Linux machine, Mesa's lavapipe gives a software Vulkan device: \
             apt-get install mesa-vulkan-drivers"
        );
        return;
    }
    for (i, a) in adapters.iter().enumerate() {
        let (info, l) = (&a.info, &a.limits);
        println!("adapter {i}: {}", info.name);
        println!(
            "  backend: {:?}, device type: {:?}",
            info.backend, info.device_type
        );
        println!("  driver: {} {}", info.driver, info.driver_info);
        println!(
            "  max storage buffer binding: {} bytes, max buffer: {} bytes",
            l.max_storage_buffer_binding_size, l.max_buffer_size
        );
        println!(
            "  max workgroups per dimension: {}, max invocations per workgroup: {}, workgroup storage: {} bytes",
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size
        );
        println!(
            "  storage buffers per shader stage: {}, uniform offset alignment: {}",
            l.max_storage_buffers_per_shader_stage, l.min_uniform_buffer_offset_alignment
        );
    }
}
