//! Keras model files (`.keras` archives, legacy `.h5`) from untrusted bytes: an error or a
//! model, never a panic or a huge allocation; a model that loads also runs on a small input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = wgpu_rnn::KerasModel::from_bytes(data.to_vec()) {
        let _ = model.to_string();
        if let Ok(mut runner) = wgpu_rnn::KerasRunner::new(model, &wgpu_rnn::Backend::Cpu) {
            let ids = ndarray::Array2::<i64>::ones((2, 3)).into_dyn();
            let _ = runner.predict_ids(ids.view());
        }
    }
});
