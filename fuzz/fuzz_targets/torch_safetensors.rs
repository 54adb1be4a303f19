//! PyTorch `nn.RNN` state_dicts from untrusted bytes: loaded, built on the CPU and run on a small
//! input when they load, so that what a loader accepts is also something the stack can run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgpu_rnn::{Backend, TorchRnn};

fuzz_target!(|data: &[u8]| {
    let Ok(rnn) = TorchRnn::from_bytes(data, None, Default::default()) else {
        return;
    };
    let d = rnn.input_size();
    if d > 4096 {
        return;
    }
    if let Ok(model) = rnn.build(&Backend::Cpu) {
        let x = ndarray::Array3::<f32>::zeros((2, 1, d));
        let _ = model.forward(x.view(), None, Some(&[2]));
    }
});
