//! Runs a functional Keras model of two inputs and two outputs: token ids through an
//! `Embedding(mask_zero=True)` and a SimpleRNN (the mask Keras records as a `NotEqual` op in the
//! graph), features through another SimpleRNN, a head on each. The inputs go in the order of
//! `model.input_names()`; the outputs come back in Keras's order.
//!
//! `cargo run --release --example keras_functional`: the fixture
//! `tests/fixtures/keras_graphs/two_inputs_two_outputs`, compared with what Keras predicted.

use wgpu_rnn::{
    Backend, InputArray, KerasModel, KerasRunner, NpyInput, read_npy_f32, read_npy_input,
};

fn main() -> wgpu_rnn::Result<()> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keras_graphs/two_inputs_two_outputs"
    );
    let model = KerasModel::load(format!("{dir}/model.keras"))?;
    print!("{model}"); // layers and ops with what each reads, as model.summary() prints them
    println!("inputs: {:?}", model.input_names());

    let inputs: Vec<NpyInput> = (0..model.input_count())
        .map(|i| read_npy_input(format!("{dir}/input_{i}.npy")))
        .collect::<wgpu_rnn::Result<_>>()?;
    let arrays: Vec<InputArray<'_>> = inputs.iter().map(InputArray::from).collect();

    let (backend, note) = Backend::auto();
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let mut runner = KerasRunner::new(model, &backend)?;
    let out = runner.predict_inputs(&arrays)?;
    for (i, output) in out.outputs.iter().enumerate() {
        let keras: ndarray::ArrayD<f32> = read_npy_f32(format!("{dir}/output_{i}.npy"))?;
        let worst = output
            .iter()
            .zip(keras.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "output {i} {:?} on {}: largest difference from Keras {worst:.2e}",
            output.shape(),
            backend.name()
        );
    }
    Ok(())
}
