//! `wgpu-rnn bench`: times forwards of a random SimpleRNN layer on the GPU and/or the CPU, so that
//! users can measure their own hardware. One `key=value` line per backend.

use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgpu_rnn::{
    Activation, Cell, CpuRnn, GpuContext, GpuOptions, GpuRnn, RnnError, SimpleRnn, SimpleRnnConfig,
    StepStrategy,
};

/// `wgpu-rnn bench`'s options.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// N: sequences per forward.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// T: time steps.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// D: input features.
    #[arg(long, default_value_t = 64)]
    input_dim: usize,
    /// M: units.
    #[arg(long, default_value_t = 256)]
    units: usize,
    /// gpu, cpu, or both.
    #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
    backend: BenchBackend,
    /// Timed forwards per backend (after one warm-up forward).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Output (and read back) every step's state, not only the last.
    #[arg(long)]
    return_sequences: bool,
    /// Activation, by its Keras name.
    #[arg(long, default_value = "tanh")]
    activation: String,
    /// The cell: simple (SimpleRNN), lstm, gru or gru-reset-before. Flops are counted per cell:
    /// 2·N·T·G·M·(D+M) for the gates' products (G = 1, 4, 3), gate arithmetic not counted.
    #[arg(long, value_enum, default_value_t = CellArg::Simple)]
    pub cell: CellArg,
    /// GPU: how the recurrent steps are scheduled (auto picks by shape and device limits).
    #[arg(long, value_enum, default_value_t = StrategyArg::Auto)]
    strategy: StrategyArg,
    /// GPU: whether to use the adapter's subgroup operations (true or false; by default on GPUs
    /// and not on CPU adapters), to compare the kernels that use them against their
    /// workgroup-memory fallbacks.
    #[arg(long)]
    subgroups: Option<bool>,
}

/// `--strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    Auto,
    PerStep,
    Persistent,
    Sliced,
}

impl From<StrategyArg> for StepStrategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Auto => StepStrategy::Auto,
            StrategyArg::PerStep => StepStrategy::PerStep,
            StrategyArg::Persistent => StepStrategy::Persistent,
            StrategyArg::Sliced => StepStrategy::Sliced,
        }
    }
}

/// `--cell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CellArg {
    Simple,
    Lstm,
    Gru,
    GruResetBefore,
}

impl From<CellArg> for Cell {
    fn from(c: CellArg) -> Self {
        match c {
            CellArg::Simple => Cell::Simple,
            CellArg::Lstm => Cell::Lstm,
            CellArg::Gru => Cell::Gru,
            CellArg::GruResetBefore => Cell::GruResetBefore,
        }
    }
}

/// Which backends `bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Gpu,
    Cpu,
    Both,
}

/// Runs the benchmark and prints one line per backend.
pub fn run(args: BenchArgs) -> Result<(), RnnError> {
    let (n, t, d, m) = (args.batch, args.steps, args.input_dim, args.units);
    if args.repeats == 0 {
        return Err(RnnError::InvalidInput(
            "--repeats must be at least 1".into(),
        ));
    }
    let cell = Cell::from(args.cell);
    let g = cell.gates();
    check_sizes(n, t, d, g.saturating_mul(m))?;
    let config = SimpleRnnConfig {
        activation: args.activation.parse::<Activation>()?,
        return_sequences: args.return_sequences,
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut uniform = |shape: (usize, usize), scale: f32| {
        Array2::from_shape_simple_fn(shape, || rng.random_range(-scale..=scale))
    };
    let kernel = uniform((d, g * m), 1.0 / (d.max(1) as f32).sqrt());
    let recurrent_kernel = uniform((m, g * m), 1.0 / (m.max(1) as f32).sqrt());
    let mut vector = || -> Result<Array1<f32>, RnnError> {
        uniform((1, g * m), 0.1)
            .into_shape_with_order(g * m)
            .map_err(|e| RnnError::InvalidInput(format!("bias of {m} units: {e}")))
    };
    let bias = vector()?;
    let recurrent_bias = cell.has_recurrent_bias().then(&mut vector).transpose()?;
    let layer = SimpleRnn::gated(
        cell,
        kernel,
        recurrent_kernel,
        Some(bias),
        recurrent_bias,
        config,
    )?;
    let input = Array3::from_shape_simple_fn((n, t, d), || rng.random_range(-1.0f32..=1.0));
    let flops = 2.0 * n as f64 * t as f64 * (g * m) as f64 * (d as f64 + m as f64);
    let shape = format!(
        "cell={} n={n} t={t} d={d} m={m} repeats={}",
        match args.cell {
            CellArg::Simple => "simple",
            CellArg::Lstm => "lstm",
            CellArg::Gru => "gru",
            CellArg::GruResetBefore => "gru-reset-before",
        },
        args.repeats
    );

    if args.backend != BenchBackend::Cpu {
        let ctx = GpuContext::new_blocking(GpuOptions {
            strategy: args.strategy.into(),
            subgroups: args.subgroups,
            ..Default::default()
        })?;
        let info = ctx.adapter_info();
        println!(
            "# gpu: {} ({:?}, {:?}, driver {} {})",
            info.name, info.backend, info.device_type, info.driver, info.driver_info
        );
        let gpu = GpuRnn::new(&ctx, layer.clone())?;
        let times = time(args.repeats, || gpu.forward(input.view(), None).map(drop))?;
        let name = match args.strategy {
            StrategyArg::Auto => "auto",
            StrategyArg::PerStep => "per-step",
            StrategyArg::Persistent => "persistent",
            StrategyArg::Sliced => "sliced",
        };
        let strategy = format!("{shape} strategy={name}");
        report("gpu", &strategy, &times, flops, t);
    }
    if args.backend != BenchBackend::Gpu {
        println!("# cpu: {} threads", rayon::current_num_threads());
        let cpu = CpuRnn::new(layer);
        let times = time(args.repeats, || cpu.forward(input.view(), None).map(drop))?;
        report("cpu", &shape, &times, flops, t);
    }
    Ok(())
}

/// The most elements one benchmark array may hold (16 GiB of float32): past it the allocation
/// would fail, or take the machine's memory, before anything is timed.
const MAX_ELEMENTS: u128 = 1 << 32;

/// Refuses sizes whose arrays (kernel D×M, recurrent kernel M×M, input N×T×D, output N×T×M)
/// would overflow or not fit in memory, before anything is allocated.
fn check_sizes(n: usize, t: usize, d: usize, m: usize) -> Result<(), RnnError> {
    let count = |sizes: &[usize]| {
        sizes
            .iter()
            .try_fold(1u128, |acc, &x| acc.checked_mul(x as u128))
            .filter(|&c| c <= MAX_ELEMENTS)
    };
    let arrays = [
        ("the kernel (--input-dim × --units)", count(&[d, m])),
        ("the recurrent kernel (--units × --units)", count(&[m, m])),
        (
            "the input (--batch × --steps × --input-dim)",
            count(&[n, t, d]),
        ),
        (
            "the output (--batch × --steps × --units)",
            count(&[n, t, m]),
        ),
    ];
    if let Some((what, _)) = arrays.iter().find(|(_, count)| count.is_none()) {
        return Err(RnnError::InvalidOption(format!(
            "{what} would hold more than the {MAX_ELEMENTS} values a benchmark allocates \
             (n={n} t={t} d={d} m={m})"
        )));
    }
    Ok(())
}

/// One warm-up call, then `repeats` timed calls. `forward` returns after the readback, so the GPU
/// has finished when the clock stops.
fn time(
    repeats: usize,
    mut forward: impl FnMut() -> Result<(), RnnError>,
) -> Result<Vec<Duration>, RnnError> {
    forward()?;
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            forward().map(|()| start.elapsed())
        })
        .collect()
}

fn report(backend: &str, shape: &str, times: &[Duration], flops: f64, steps: usize) {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    println!(
        "backend={backend} {shape} median_ms={} min_ms={} gflops={} us_per_step={}",
        significant(median),
        significant(ms[0]),
        significant(flops / (median * 1e6)),
        significant(median * 1e3 / steps as f64)
    );
}

/// Four significant digits, so that small values of tiny runs do not print as 0.
fn significant(v: f64) -> String {
    let digits = if v > 0.0 && v.is_finite() {
        (3 - v.log10().floor() as i32).clamp(0, 12) as usize
    } else {
        2
    };
    format!("{v:.digits$}")
}
