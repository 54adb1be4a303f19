//! `.npy` inputs, initial states and lengths from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgpu_rnn::parse_npy_f32::<ndarray::IxDyn>(data);
    let _ = wgpu_rnn::parse_npy_f32::<ndarray::Ix3>(data);
    let _ = wgpu_rnn::parse_npy_lengths(data);
});
