//! Keras `.npz` weights from untrusted bytes: an error or a layer, never a panic or a huge
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgpu_rnn::load_keras_npz_bytes(data, Default::default());
});
