//! The `wgpu-rnn` command: run a whole Keras model (`.keras`, `.h5`), a Keras SimpleRNN layer
//! (`.npz`) or a PyTorch `nn.RNN` (`.safetensors`) on a `.npy` input, describe a model or list GPU
//! adapters, or (with no arguments) run the embedded demo model.

mod bench;
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ndarray::{Array2, Array3};
use wgpu_rnn::{
    Activation, Backend, Cell, GpuContext, InputArray, KerasModel, KerasRunner, Nonlinearity,
    NpyInput, OutputSet, OutputSlot, Padding, RnnError, SimpleRnnConfig, TorchRnn, TorchRnnConfig,
    load_keras_npz_as, read_npy_f32, read_npy_input, read_npy_lengths, read_npz_inputs,
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
    /// Run a Keras model (.keras, .h5), a Keras SimpleRNN layer (.npz) or a PyTorch nn.RNN
    /// (.safetensors) on a .npy input.
    Run(RunArgs),
    /// Describe a Keras model as model.summary() does; without a model, list the GPU adapters
    /// wgpu finds, with the limits that matter here.
    Info {
        /// A Keras model (.keras or .h5).
        model: Option<PathBuf>,
    },
    /// Time forwards of a random SimpleRNN layer on the GPU and the CPU: one `key=value` line per
    /// backend (median_ms, min_ms, gflops counting 2·N·T·M·(D+M) flops, us_per_step).
    Bench(bench::BenchArgs),
    /// Run the embedded demo model (what running with no arguments does).
    Demo {
        /// Which backend(s) to run it on.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// A whole Keras model (.keras, or legacy .h5 from model.save), a Keras SimpleRNN layer as .npz
    /// (arr_0 = kernel D×M, arr_1 = recurrent_kernel M×M, arr_2 = bias M, or those keys), or a
    /// PyTorch nn.RNN state_dict as .safetensors.
    weights: PathBuf,
    /// Input .npy: N×T×D float32 or float64 for Keras (integer token ids N×T for a model that
    /// starts with an Embedding); T×N×D for PyTorch (N×T×D with --batch-first). A Keras model
    /// of several inputs takes an .npz whose arrays are named by the model's input names (or
    /// arr_0, arr_1, ... in input order).
    input: PathBuf,
    /// Where to write the output (.npy, float32). A model with several outputs writes
    /// NAME_0.npy, NAME_1.npy, ... in Keras's order.
    #[arg(short, long)]
    output: PathBuf,
    /// Keras: activation name (tanh, relu, linear, gelu, softmax, ...).
    #[arg(long)]
    activation: Option<String>,
    /// Keras .npz: the layer's cell (inferred from the shapes when absent: kernel D×M SimpleRNN,
    /// D×4M LSTM, D×3M GRU; `gru` is Keras's default reset_after=True).
    #[arg(long, value_enum)]
    cell: Option<CellArg>,
    /// Keras .npz, LSTM and GRU: the gates' activation (default sigmoid).
    #[arg(long)]
    recurrent_activation: Option<String>,
    /// Keras .npz, LSTM: the initial cell state .npy, N×M (zeros when absent).
    #[arg(long)]
    initial_cell: Option<PathBuf>,
    /// Keras .npz, LSTM: also write the final cell state to this .npy file (N×M).
    #[arg(long)]
    final_cell: Option<PathBuf>,
    /// Keras: output the state after every step instead of only the last.
    #[arg(long)]
    return_sequences: bool,
    /// Keras: read the input from the last step to the first.
    #[arg(long)]
    go_backwards: bool,
    /// PyTorch: the module's nonlinearity (the file does not record it).
    #[arg(long, value_enum)]
    nonlinearity: Option<NonlinearityArg>,
    /// PyTorch: input and output are N×T×… (h_0 and h_n stay layers·dirs × N × M).
    #[arg(long)]
    batch_first: bool,
    /// PyTorch: per-sequence lengths .npy (integers, N of them, 1..=T), as pack_padded_sequence.
    #[arg(long)]
    lengths: Option<PathBuf>,
    /// PyTorch: the key prefix of the RNN when the file holds several (e.g. `encoder.rnn.`).
    #[arg(long)]
    prefix: Option<String>,
    /// Initial state .npy: N×M for Keras, layers·dirs × N × M for PyTorch (zeros when absent).
    #[arg(long)]
    initial_state: Option<PathBuf>,
    /// Also write the final state to this .npy file (N×M; PyTorch's h_n).
    #[arg(long)]
    final_state: Option<PathBuf>,
    /// gpu, cpu, or auto (a GPU when one is found, else the CPU with a note).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// PyTorch: run even when the file holds tensors the RNN does not use (refused by default,
    /// as load_state_dict(strict=True) refuses them).
    #[arg(long)]
    ignore_unused: bool,
}

/// `--cell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CellArg {
    Simple,
    Lstm,
    /// A GRU with reset_after=True (Keras's default): a 2 × 3M bias.
    Gru,
    /// A GRU with reset_after=False: a 3M bias.
    GruResetBefore,
}

/// `--nonlinearity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NonlinearityArg {
    Tanh,
    Relu,
}

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
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
        None => demo::run(BackendChoice::Auto),
        Some(Command::Demo { backend }) => demo::run(backend),
        Some(Command::Info { model: None }) => {
            info();
            Ok(())
        }
        Some(Command::Info { model: Some(path) }) => {
            KerasModel::load(path).map(|model| print!("{model}"))
        }
        Some(Command::Run(args)) => run(args),
        Some(Command::Bench(args)) => bench::run(args),
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
    let extension = args
        .weights
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    match extension {
        "npz" => run_keras(args),
        "safetensors" => run_torch(args),
        "keras" | "h5" | "hdf5" => run_model(args),
        _ => Err(RnnError::InvalidOption(format!(
            "{}: weights must be a Keras model (.keras, .h5), a Keras layer (.npz) or a PyTorch \
             nn.RNN (.safetensors)",
            args.weights.display()
        ))),
    }
}

/// The `.npz`-layer flags for the cell: refused for models and PyTorch files, whose files say
/// what their cells are (and whose LSTMs and GRUs are not run yet).
fn refuse_layer_cell_flags(args: &RunArgs, kind: &str) -> Result<(), RnnError> {
    refuse("--cell", args.cell.is_some(), kind)?;
    refuse(
        "--recurrent-activation",
        args.recurrent_activation.is_some(),
        kind,
    )?;
    refuse("--initial-cell", args.initial_cell.is_some(), kind)?;
    refuse("--final-cell", args.final_cell.is_some(), kind)
}

fn refuse(flag: &str, given: bool, kind: &str) -> Result<(), RnnError> {
    if given {
        return Err(RnnError::InvalidOption(format!(
            "{flag} does not apply to {kind} weights"
        )));
    }
    Ok(())
}

fn run_keras(args: RunArgs) -> Result<(), RnnError> {
    refuse(
        "--nonlinearity",
        args.nonlinearity.is_some(),
        "Keras (.npz)",
    )?;
    refuse("--batch-first", args.batch_first, "Keras (.npz)")?;
    refuse("--lengths", args.lengths.is_some(), "Keras (.npz)")?;
    refuse("--prefix", args.prefix.is_some(), "Keras (.npz)")?;
    // Extra arrays in a .npz are always refused: which array is the layer's would be a guess.
    refuse("--ignore-unused", args.ignore_unused, "Keras (.npz)")?;
    let config = SimpleRnnConfig {
        activation: Activation::from_keras_name(args.activation.as_deref().unwrap_or("tanh"))?,
        recurrent_activation: Activation::from_keras_name(
            args.recurrent_activation.as_deref().unwrap_or("sigmoid"),
        )?,
        return_sequences: args.return_sequences,
        go_backwards: args.go_backwards,
        ..Default::default()
    };
    let cell = args.cell.map(|c| match c {
        CellArg::Simple => Cell::Simple,
        CellArg::Lstm => Cell::Lstm,
        CellArg::Gru => Cell::Gru,
        CellArg::GruResetBefore => Cell::GruResetBefore,
    });
    let (mut outputs, output, final_state) = output_and_final_state(&args)?;
    let final_cell = optional_output(&mut outputs, &args.final_cell)?;
    let layer = load_keras_npz_as(&args.weights, config, cell)?;
    let gated = layer.cell() != Cell::Simple;
    let kind = layer.cell().to_string();
    refuse(
        "--recurrent-activation",
        args.recurrent_activation.is_some() && !gated,
        &kind,
    )?;
    let lstm = layer.cell().has_cell_state();
    refuse(
        "--initial-cell",
        args.initial_cell.is_some() && !lstm,
        &kind,
    )?;
    refuse("--final-cell", args.final_cell.is_some() && !lstm, &kind)?;
    let input: Array3<f32> = read_npy_f32(&args.input)?;
    let initial_state: Option<Array2<f32>> =
        args.initial_state.as_ref().map(read_npy_f32).transpose()?;
    let initial_cell: Option<Array2<f32>> =
        args.initial_cell.as_ref().map(read_npy_f32).transpose()?;
    // Shapes are checked before any GPU work starts, so a bad input fails fast on every backend.
    layer.check_input(
        &input.view(),
        initial_state.as_ref().map(|h| h.view()).as_ref(),
    )?;
    layer.check_initial_cell(
        input.dim().0,
        initial_cell.as_ref().map(|c| c.view()).as_ref(),
    )?;

    let model = backend_for(args.backend)?.build(layer)?;
    let out = model.forward_states(
        input.view(),
        initial_state.as_ref().map(|h| h.view()),
        initial_cell.as_ref().map(|c| c.view()),
        Padding::None,
    )?;
    outputs.write_npy_f32(output, &out.output())?;
    if let Some(slot) = final_state {
        outputs.write_npy_f32(slot, &out.final_state)?;
    }
    if let (Some(slot), Some(c)) = (final_cell, &out.final_cell) {
        outputs.write_npy_f32(slot, c)?;
    }
    outputs.commit()
}

/// The output files of a single-output run, checked before anything is read or computed.
fn output_and_final_state(
    args: &RunArgs,
) -> Result<(OutputSet, OutputSlot, Option<OutputSlot>), RnnError> {
    let mut outputs = OutputSet::new();
    let output = outputs.add(&args.output)?;
    let final_state = optional_output(&mut outputs, &args.final_state)?;
    Ok((outputs, output, final_state))
}

/// Adds an output the user may have asked for (`--final-state`, `--final-cell`) to the set.
fn optional_output(
    outputs: &mut OutputSet,
    path: &Option<PathBuf>,
) -> Result<Option<OutputSlot>, RnnError> {
    path.as_ref().map(|p| outputs.add(p)).transpose()
}

fn run_model(args: RunArgs) -> Result<(), RnnError> {
    let kind = "a whole Keras model (its file holds them)";
    refuse("--activation", args.activation.is_some(), kind)?;
    refuse("--return-sequences", args.return_sequences, kind)?;
    refuse("--go-backwards", args.go_backwards, kind)?;
    refuse("--nonlinearity", args.nonlinearity.is_some(), kind)?;
    refuse("--batch-first", args.batch_first, kind)?;
    refuse("--lengths", args.lengths.is_some(), kind)?;
    refuse("--prefix", args.prefix.is_some(), kind)?;
    refuse("--initial-state", args.initial_state.is_some(), kind)?;
    refuse("--final-state", args.final_state.is_some(), kind)?;
    refuse_layer_cell_flags(&args, kind)?;
    // Keras itself refuses a file with weights a layer does not take.
    refuse("--ignore-unused", args.ignore_unused, kind)?;
    let model = KerasModel::load(&args.weights)?;
    // Every output path is checked before the input is read or anything runs.
    let count = model.output_count();
    let paths = if count == 1 {
        vec![args.output.clone()]
    } else {
        let stem = args.output.with_extension("");
        (0..count)
            .map(|i| PathBuf::from(format!("{}_{i}.npy", stem.display())))
            .collect()
    };
    let mut files = OutputSet::new();
    let slots = paths
        .iter()
        .map(|p| files.add(p))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = model_inputs(&model, &args.input)?;
    let mut runner = KerasRunner::new(model, &backend_for(args.backend)?)?;
    let arrays: Vec<InputArray<'_>> = inputs.iter().map(InputArray::from).collect();
    let outputs = runner.predict_inputs(&arrays)?.outputs;
    if outputs.len() != slots.len() {
        return Err(RnnError::InvalidOption(format!(
            "the model gave {} outputs where its config declares {}",
            outputs.len(),
            slots.len()
        )));
    }
    for (&slot, out) in slots.iter().zip(&outputs) {
        files.write_npy_f32(slot, out)?;
    }
    files.commit()?;
    if count > 1 {
        for (i, path) in paths.iter().enumerate() {
            eprintln!("output {i}: {}", path.display());
        }
    }
    Ok(())
}

/// The model's inputs from `path`: one `.npy` for a model of one input, else an `.npz` whose
/// arrays are named by the inputs (or `arr_0`, `arr_1`, ... in input order); an array that no
/// input takes is an error, as a guess would be.
fn model_inputs(model: &KerasModel, path: &std::path::Path) -> Result<Vec<NpyInput>, RnnError> {
    let names = model.input_names();
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        if names.len() != 1 {
            return Err(RnnError::InvalidOption(format!(
                "{}: the model takes {} inputs ({}); give them as an .npz of arrays named so \
                 (or arr_0, arr_1, ... in that order)",
                path.display(),
                names.len(),
                names.join(", ")
            )));
        }
        return Ok(vec![read_npy_input(path)?]);
    }
    let mut arrays = read_npz_inputs(path)?;
    let mut inputs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let positional = format!("arr_{i}");
        let at = arrays
            .iter()
            .position(|(n, _)| n == name)
            .or_else(|| arrays.iter().position(|(n, _)| *n == positional))
            .ok_or_else(|| {
                RnnError::InvalidOption(format!(
                    "{}: no array named {name:?} (or {positional}) for the model's input {i}",
                    path.display()
                ))
            })?;
        inputs.push(arrays.remove(at).1);
    }
    if let Some((extra, _)) = arrays.first() {
        return Err(RnnError::InvalidOption(format!(
            "{}: array {extra:?} is none of the model's inputs ({})",
            path.display(),
            names.join(", ")
        )));
    }
    Ok(inputs)
}

fn run_torch(args: RunArgs) -> Result<(), RnnError> {
    // The file says the module; an LSTM's cell state is the one cell flag that applies.
    refuse("--cell", args.cell.is_some(), "PyTorch (.safetensors)")?;
    refuse(
        "--recurrent-activation",
        args.recurrent_activation.is_some(),
        "PyTorch (.safetensors)",
    )?;
    refuse(
        "--activation",
        args.activation.is_some(),
        "PyTorch (.safetensors)",
    )?;
    refuse(
        "--return-sequences",
        args.return_sequences,
        "PyTorch (.safetensors)",
    )?;
    refuse(
        "--go-backwards",
        args.go_backwards,
        "PyTorch (.safetensors)",
    )?;
    let nonlinearity = match args.nonlinearity {
        Some(NonlinearityArg::Relu) => Nonlinearity::Relu,
        Some(NonlinearityArg::Tanh) | None => Nonlinearity::Tanh,
    };
    let config = TorchRnnConfig {
        nonlinearity,
        batch_first: args.batch_first,
        ignore_unused: args.ignore_unused,
    };
    let (mut outputs, output, final_state) = output_and_final_state(&args)?;
    let final_cell = optional_output(&mut outputs, &args.final_cell)?;
    let rnn = TorchRnn::load(&args.weights, args.prefix.as_deref(), config)?;
    match (rnn.cell(), args.nonlinearity.is_some()) {
        (Cell::Simple, false) => {
            return Err(RnnError::InvalidOption(
                "a .safetensors state_dict does not record nn.RNN's nonlinearity: pass \
                 --nonlinearity tanh|relu"
                    .into(),
            ));
        }
        (Cell::Simple, true) => {}
        (_, given) => refuse(
            "--nonlinearity",
            given,
            "nn.LSTM or nn.GRU (it belongs to nn.RNN)",
        )?,
    }
    let lstm = rnn.cell().has_cell_state();
    refuse(
        "--initial-cell",
        args.initial_cell.is_some() && !lstm,
        "nn.RNN or nn.GRU",
    )?;
    refuse(
        "--final-cell",
        args.final_cell.is_some() && !lstm,
        "nn.RNN or nn.GRU",
    )?;
    let input: Array3<f32> = read_npy_f32(&args.input)?;
    let h0: Option<Array3<f32>> = args.initial_state.as_ref().map(read_npy_f32).transpose()?;
    let c0: Option<Array3<f32>> = args.initial_cell.as_ref().map(read_npy_f32).transpose()?;
    let lengths = args.lengths.as_ref().map(read_npy_lengths).transpose()?;
    let model = rnn.build(&backend_for(args.backend)?)?;
    let out = model.forward_states(
        input.view(),
        h0.as_ref().map(|h| h.view()),
        c0.as_ref().map(|c| c.view()),
        lengths.as_deref(),
    )?;
    outputs.write_npy_f32(output, &out.output)?;
    if let Some(slot) = final_state {
        outputs.write_npy_f32(slot, &out.h_n)?;
    }
    if let (Some(slot), Some(c_n)) = (final_cell, &out.c_n) {
        outputs.write_npy_f32(slot, c_n)?;
    }
    outputs.commit()
}

/// The backend the user chose; `auto` falls back to the CPU with a note.
pub fn backend_for(choice: BackendChoice) -> Result<Backend, RnnError> {
    match choice {
        BackendChoice::Cpu => Ok(Backend::Cpu),
        BackendChoice::Gpu => Backend::gpu(),
        BackendChoice::Auto => {
            let (backend, why) = Backend::auto();
            if let Some(note) = why {
                eprintln!("note: {note}");
            }
            Ok(backend)
        }
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
        let software = if info.device_type == wgpu::DeviceType::Cpu {
            " (software: `--backend auto` runs the CPU path instead)"
        } else {
            ""
        };
        println!("adapter {i}: {}{software}", info.name);
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
        println!(
            "  subgroup operations: {}",
            if a.subgroups { "yes" } else { "no" }
        );
    }
}
