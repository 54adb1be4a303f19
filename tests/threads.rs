//! One `GpuRnn` shared by several threads, each running its own inputs at the same time.

mod common;

use std::sync::Arc;

use common::{assert_close, gpu, random_layer, rng, uniform3};
use wgpu_rnn::{CpuRnn, GpuRnn, SimpleRnnConfig};

#[test]
fn concurrent_forwards_on_one_model_are_correct() {
    let mut r = rng(42);
    let config = SimpleRnnConfig {
        return_sequences: true,
        ..Default::default()
    };
    let layer = random_layer(&mut r, 5, 40, true, config);
    let cpu = CpuRnn::new(layer.clone());
    let model = Arc::new(GpuRnn::new(gpu(), layer).unwrap());

    let handles: Vec<_> = (0..6)
        .map(|i| {
            let model = model.clone();
            let cpu = cpu.clone();
            // Each thread has its own batch size and length, so the shared model sees
            // different shapes at once.
            let x = uniform3(&mut r, (1 + i, 3 + 2 * i, 5), 1.5);
            std::thread::spawn(move || {
                for _ in 0..4 {
                    let got = model.forward(x.view(), None).unwrap();
                    let want = cpu.forward(x.view(), None).unwrap();
                    assert_close(got.output(), want.output(), &format!("thread {i}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a thread panicked");
    }
}

#[test]
fn gpu_rnn_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GpuRnn>();
    assert_send_sync::<wgpu_rnn::GpuContext>();
}
