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

pub fn run(choice: BackendChoice) -> Result<(), RnnError> {
    let model = KerasModel::from_bytes(MODEL.to_vec())?;
    let NpyInput::Int(ids) = parse_npy_input(INPUT)? else {
        return Err(RnnError::InvalidInput(
            "the demo input holds token ids".into(),
        ));
    };
    let keras: Array2<f32> = parse_npy_f32(KERAS_OUTPUT)?;
    let vocabulary: serde_json::Value = serde_json::from_str(WORDS)
        .map_err(|e| RnnError::InvalidInput(format!("demo words.json: {e}")))?;
    let words: Vec<&str> = vocabulary["words"]
        .as_array()
        .map(|w| w.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();

    println!("wgpu-rnn demo: a review classifier trained with Keras, run from its .keras file\n");
    print!("{model}");

    let cpu = (choice != BackendChoice::Gpu)
        .then(|| predict(&model, &Backend::Cpu, &ids))
        .transpose()?;
    let gpu = match choice {
        BackendChoice::Cpu => None,
        BackendChoice::Gpu => Some(gpu_predict(&model, &ids)?),
        BackendChoice::Auto => match gpu_predict(&model, &ids) {
            Ok(out) => Some(out),
            Err(e) => {
                eprintln!("note: no GPU run: {e}");
                None
            }
        },
    };

    println!(
        "\n{:<66}  {:>8}  {:>8}  {:>8}",
        "review", "Keras", "GPU", "CPU"
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
        let reference = keras[[i, 1]];
        let cell = |out: &Option<ArrayD<f32>>| match out {
            Some(o) => format!("{:8.5}", o[[i, 1]]),
            None => format!("{:>8}", "-"),
        };
        for o in [&gpu, &cpu].into_iter().flatten() {
            for c in 0..2 {
                worst = worst.max((o[[i, c]] - keras[[i, c]]).abs());
            }
        }
        let verdict = if reference > 0.5 { "+" } else { "-" };
        println!(
            "{verdict} {:<64}  {reference:8.5}  {}  {}",
            text.join(" "),
            cell(&gpu),
            cell(&cpu)
        );
    }
    println!("\nlargest difference from Keras: {worst:.2e}");
    Ok(())
}

fn predict(
    model: &KerasModel,
    backend: &Backend,
    ids: &ArrayD<i64>,
) -> Result<ArrayD<f32>, RnnError> {
    let mut runner = KerasRunner::new(model.clone(), backend)?;
    Ok(runner.predict_ids(ids.view())?.outputs.remove(0))
}

fn gpu_predict(model: &KerasModel, ids: &ArrayD<i64>) -> Result<ArrayD<f32>, RnnError> {
    let backend = Backend::gpu()?;
    if let Backend::Gpu(ctx) = &backend {
        println!(
            "\nGPU: {} ({:?})",
            ctx.adapter_info().name,
            ctx.adapter_info().backend
        );
    }
    predict(model, &backend, ids)
}
