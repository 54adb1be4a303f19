//! Inputs kept from fuzzing the loaders (fuzz/, `cargo +nightly fuzz run <target>`), replayed on
//! stable: each must give a value or an error, never a panic. A crash the fuzzer finds goes into
//! tests/fixtures/fuzz_regressions/<target>/ and is checked here from then on.

use std::path::Path;

use wgpu_rnn::{Backend, TorchRnn};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz_regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

#[test]
fn keras_npz_inputs_do_not_panic() {
    for (name, data) in inputs("keras_npz") {
        let _ = wgpu_rnn::load_keras_npz_bytes(&data, Default::default());
        eprintln!("ok: {name}");
    }
}

#[test]
fn npy_inputs_do_not_panic() {
    for (name, data) in inputs("npy_arrays") {
        let _ = wgpu_rnn::parse_npy_f32::<ndarray::IxDyn>(&data);
        let _ = wgpu_rnn::parse_npy_f32::<ndarray::Ix3>(&data);
        let _ = wgpu_rnn::parse_npy_lengths(&data);
        eprintln!("ok: {name}");
    }
}

#[test]
fn torch_safetensors_inputs_do_not_panic() {
    for (name, data) in inputs("torch_safetensors") {
        if let Ok(rnn) = TorchRnn::from_bytes(&data, None, Default::default()) {
            let d = rnn.input_size();
            if let Ok(model) = rnn.build(&Backend::Cpu) {
                let x = ndarray::Array3::<f32>::zeros((2, 1, d));
                let _ = model.forward(x.view(), None, Some(&[2]));
            }
        }
        eprintln!("ok: {name}");
    }
}

#[test]
fn keras_model_inputs_do_not_panic() {
    for (name, data) in inputs("keras_model") {
        if let Ok(model) = wgpu_rnn::KerasModel::from_bytes(data) {
            let _ = model.to_string();
            if let Ok(mut runner) = wgpu_rnn::KerasRunner::new(model, &Backend::Cpu) {
                let ids = ndarray::Array2::<i64>::ones((2, 3)).into_dyn();
                let _ = runner.predict_ids(ids.view());
            }
        }
        eprintln!("ok: {name}");
    }
}
