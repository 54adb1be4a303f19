//! Streams a long sequence through a stateful Keras model in chunks: the state one call ends
//! with is where the next begins, so the chunks' outputs, side by side, are the whole
//! sequence's.
//!
//! `cargo run --release --example stateful_stream`: the model `tests/fixtures/keras_models/
//! stateful_stream` (saved with `stateful=True`), fed its 12 steps as chunks of 5, 4 and 3,
//! compared with what Keras predicted for the whole sequence.

use ndarray::{ArrayD, Axis, Slice, concatenate};
use wgpu_rnn::{Backend, KerasModel, KerasRunner, read_npy_f32};

fn main() -> wgpu_rnn::Result<()> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keras_models/stateful_stream"
    );
    let model = KerasModel::load(format!("{dir}/model.keras"))?;
    let (backend, note) = Backend::auto();
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let mut runner = KerasRunner::new(model, &backend)?;
    runner.set_stateful(true); // already so for this model; any model streams once asked to

    let x: ArrayD<f32> = read_npy_f32(format!("{dir}/input.npy"))?; // N × T × D
    let mut pieces = Vec::new();
    let mut start = 0;
    for steps in [5, 4, 3] {
        let chunk = x.slice_axis(Axis(1), Slice::from(start..start + steps));
        let out = runner.predict(chunk)?;
        println!(
            "steps {start}..{}: output {:?}",
            start + steps,
            out.outputs[0].shape()
        );
        pieces.push(out.outputs.into_iter().next().expect("one output"));
        start += steps;
    }
    runner.reset_state(); // the next call starts a new sequence

    let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
    let streamed = concatenate(Axis(1), &views).expect("chunks of one batch");
    let keras: ArrayD<f32> = read_npy_f32(format!("{dir}/output.npy"))?;
    let worst = streamed
        .iter()
        .zip(keras.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{} steps in 3 chunks on {}: largest difference from Keras on the whole sequence {worst:.2e}",
        start,
        backend.name()
    );
    assert!(worst < 1e-4, "the streamed output disagrees with Keras");
    Ok(())
}
