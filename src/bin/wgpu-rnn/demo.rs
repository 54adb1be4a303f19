//! The embedded demo: a review classifier trained with Keras (Embedding with mask_zero →
//! SimpleRNN(16) → Dense(2, softmax), saved with `model.save("model.keras")`), loaded from its own
//! file, run on the GPU and the CPU, and printed beside the predictions Keras recorded.
//! tests/fixtures/keras_models/train_demo.py trained it.

use ndarray::{Array2, ArrayD, Axis};
use wgpu_rnn::{
    Backend, KerasModel, KerasRunner, NpyInput, RnnError, parse_npy_f32, parse_npy_input,
};

use crate::BackendChoice;

const MODEL: &[u8] = include_bytes!("../../../tests/fixtures/keras_models/demo_text/model.keras");
const INPUT: &[u8] = include_bytes!("../../../tests/fixtures/keras_models/demo_text/input.npy");
const KERAS_OUTPUT: &[u8] =
    include_bytes!("../../../tests/fixtures/keras_models/demo_text/output.npy");
const WORDS: &str = include_str!("../../../tests/fixtures/keras_models/demo_text/words.json");
/// Four reviews of 4,000 token ids and what Keras predicted for them (demo_long.py).
const LONG_INPUT: &[u8] =
    include_bytes!("../../../tests/fixtures/keras_models/demo_long/input.npy");
const LONG_KERAS_OUTPUT: &[u8] =
    include_bytes!("../../../tests/fixtures/keras_models/demo_long/output.npy");

pub fn run(choice: BackendChoice) -> Result<(), RnnError> {
    let model = KerasModel::from_bytes(MODEL.to_vec())?;
    let ids = token_ids(INPUT)?;
    let long_ids = token_ids(LONG_INPUT)?;
    let keras: Array2<f32> = parse_npy_f32(KERAS_OUTPUT)?;
    let long_keras: Array2<f32> = parse_npy_f32(LONG_KERAS_OUTPUT)?;
    let vocabulary: serde_json::Value = serde_json::from_str(WORDS)
        .map_err(|e| RnnError::InvalidInput(format!("demo words.json: {e}")))?;
    let words: Vec<&str> = vocabulary["words"]
        .as_array()
        .map(|w| w.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();

    println!("wgpu-rnn demo: a review classifier trained with Keras, run from its .keras file\n");
    print!("{model}");

    let cpu_backend = (choice != BackendChoice::Gpu).then_some(Backend::Cpu);
    let gpu_backend = match choice {
        BackendChoice::Cpu => None,
        BackendChoice::Gpu => Some(gpu_backend()?),
        BackendChoice::Auto => match gpu_backend() {
            Ok(backend) => Some(backend),
            Err(e) => {
                eprintln!("note: no GPU run: {e}");
                None
            }
        },
    };
    let software = matches!(&gpu_backend, Some(Backend::Gpu(ctx)) if ctx.is_software());
    let run_on = |backend: &Option<Backend>, ids: &ArrayD<i64>| {
        backend
            .as_ref()
            .map(|b| predict(&model, b, ids))
            .transpose()
    };
    let (gpu, cpu) = (run_on(&gpu_backend, &ids)?, run_on(&cpu_backend, &ids)?);
    let (long_gpu, long_cpu) = (
        run_on(&gpu_backend, &long_ids)?,
        run_on(&cpu_backend, &long_ids)?,
    );

    let gpu_title = if software { "GPU (sw)" } else { "GPU" };
    println!(
        "\n{:<66}  {:>8}  {:>8}  {:>8}",
        "review", "Keras", gpu_title, "CPU"
    );
    println!(
        "{:<66}  {:>8}  {:>8}  {:>8}",
        "", "P(pos)", "P(pos)", "P(pos)"
    );
    let mut worst = 0.0f32;
    for (i, row) in ids.axis_iter(Axis(0)).enumerate() {
        let text: Vec<&str> = row
            .iter()
            .filter(|&&id| id != 0)
            .map(|&id| words.get(id as usize).copied().unwrap_or("?"))
            .collect();
        worst = worst.max(print_row(&text.join(" "), i, &keras, &gpu, &cpu));
    }
    println!(
        "\nthe same model on four reviews of 4,000 tokens each (tests/fixtures/keras_models/demo_long):"
    );
    for i in 0..long_ids.shape()[0] {
        let real = long_ids
            .index_axis(Axis(0), i)
            .iter()
            .filter(|&&id| id != 0)
            .count();
        let label = format!("review {} ({real} words, {} padding)", i + 1, 4000 - real);
        worst = worst.max(print_row(&label, i, &long_keras, &long_gpu, &long_cpu));
    }
    println!("\nlargest difference from Keras: {worst:.2e}");
    Ok(())
}

/// Prints one review's P(positive) from Keras and each backend that ran, with Keras's class;
/// returns the largest difference from Keras in the row.
fn print_row(
    label: &str,
    i: usize,
    keras: &Array2<f32>,
    gpu: &Option<ArrayD<f32>>,
    cpu: &Option<ArrayD<f32>>,
) -> f32 {
    let reference = keras[[i, 1]];
    let cell = |out: &Option<ArrayD<f32>>| match out {
        Some(o) => format!("{:8.5}", o[[i, 1]]),
        None => format!("{:>8}", "-"),
    };
    let mut worst = 0.0f32;
    for o in [gpu, cpu].into_iter().flatten() {
        for c in 0..2 {
            worst = worst.max((o[[i, c]] - keras[[i, c]]).abs());
        }
    }
    let verdict = if reference > 0.5 { "+" } else { "-" };
    println!(
        "{verdict} {label:<64}  {reference:8.5}  {}  {}",
        cell(gpu),
        cell(cpu)
    );
    worst
}

/// Token ids from an embedded `.npy`.
fn token_ids(npy: &[u8]) -> Result<ArrayD<i64>, RnnError> {
    match parse_npy_input(npy)? {
        NpyInput::Int(ids) => Ok(ids),
        NpyInput::Float(_) => Err(RnnError::InvalidInput(
            "the demo input holds token ids".into(),
        )),
    }
}

/// A GPU backend, announced with its adapter. The demo shows the GPU column even on a software
/// adapter, labelled as such; `run` with `--backend auto` would take the CPU path there.
fn gpu_backend() -> Result<Backend, RnnError> {
    let backend = Backend::gpu()?;
    if let Backend::Gpu(ctx) = &backend {
        let kind = if ctx.is_software() {
            ", a software adapter: slower than the CPU path, which `run` takes on it by default"
        } else {
            ""
        };
        println!(
            "\nGPU: {} ({:?}{kind})",
            ctx.adapter_info().name,
            ctx.adapter_info().backend
        );
    }
    Ok(backend)
}

fn predict(
    model: &KerasModel,
    backend: &Backend,
    ids: &ArrayD<i64>,
) -> Result<ArrayD<f32>, RnnError> {
    let mut runner = KerasRunner::new(model.clone(), backend)?;
    Ok(runner.predict_ids(ids.view())?.outputs.remove(0))
}
