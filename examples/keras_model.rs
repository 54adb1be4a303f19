//! Runs a Keras model file: the demo review classifier (Embedding with `mask_zero`, SimpleRNN,
//! Dense with softmax) that `model.save("model.keras")` wrote, on the fastest backend here.
//!
//! `cargo run --release --example keras_model [MODEL.keras|MODEL.h5 INPUT.npy]`: without
//! arguments, the fixture `tests/fixtures/keras_models/demo_text`, whose outputs are compared
//! with the probabilities Keras recorded.

use wgpu_rnn::{Backend, KerasModel, KerasRunner, NpyInput, read_npy_f32, read_npy_input};

fn main() -> wgpu_rnn::Result<()> {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keras_models/demo_text"
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_path, input_path) = match &args[..] {
        [model, input, ..] => (model.clone(), input.clone()),
        _ => (
            format!("{fixture}/model.keras"),
            format!("{fixture}/input.npy"),
        ),
    };

    let model = KerasModel::load(&model_path)?;
    print!("{model}"); // the layers, as model.summary() prints them

    // A hardware GPU when there is one, else the CPU (with a note saying why).
    let (backend, note) = Backend::auto();
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let mut runner = KerasRunner::new(model, &backend)?;
    let out = match read_npy_input(&input_path)? {
        NpyInput::Float(x) => runner.predict(x.view())?,
        NpyInput::Int(ids) => runner.predict_ids(ids.view())?,
    };
    let probabilities = &out.outputs[0];
    println!("output {:?} on {}", probabilities.shape(), backend.name());
    for (i, row) in probabilities.outer_iter().enumerate() {
        println!("  sample {i}: {row:.4}");
    }

    if args.is_empty() {
        let keras: ndarray::ArrayD<f32> = read_npy_f32(format!("{fixture}/output.npy"))?;
        let worst = probabilities
            .iter()
            .zip(keras.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("largest difference from Keras's predictions: {worst:.2e}");
        assert!(worst < 1e-4, "the example's model disagrees with Keras");
    }
    Ok(())
}
