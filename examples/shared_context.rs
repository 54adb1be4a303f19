//! Shares one `GpuContext` (one device, one set of compiled pipelines) across threads: each
//! thread builds its own layer on it, and all of them also call one `GpuRnn` they share.
//!
//! `cargo run --release --example shared_context`: four Keras SimpleRNN layers from
//! `tests/fixtures/keras` (weights saved with `np.savez`), each checked against the CPU path.
//! Needs a GPU adapter (a software one such as lavapipe will do).

use std::thread;

use ndarray::Array3;
use wgpu_rnn::{
    Activation, CpuRnn, GpuContext, GpuOptions, GpuRnn, SimpleRnnConfig, load_keras_npz,
};

/// A deterministic 3 × 40 × `features` input.
fn input(features: usize) -> Array3<f32> {
    Array3::from_shape_fn((3, 40, features), |(n, t, d)| {
        ((n * 7 + t * 3 + d) as f32 * 0.37).sin()
    })
}

fn main() -> wgpu_rnn::Result<()> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras");
    // One context per program: it is cheap to clone (a handle) and Send + Sync.
    let ctx = GpuContext::new_blocking(GpuOptions::default())?;
    println!("adapter: {}", ctx.adapter_info().name);

    let layer = |activation: &str| {
        let config = SimpleRnnConfig {
            activation: Activation::from_keras_name(activation)?,
            return_sequences: true,
            ..Default::default()
        };
        load_keras_npz(format!("{fixtures}/act_{activation}/weights.npz"), config)
    };
    let shared = GpuRnn::new(&ctx, layer("elu")?)?;

    thread::scope(|scope| {
        let handles: Vec<_> = ["celu", "gelu", "hard_sigmoid", "leaky_relu"]
            .into_iter()
            .map(|activation| {
                let (ctx, shared, layer) = (&ctx, &shared, &layer);
                scope.spawn(move || -> wgpu_rnn::Result<String> {
                    let own_layer = layer(activation)?;
                    let own = GpuRnn::new(ctx, own_layer.clone())?; // built on the shared device
                    let x = input(own_layer.input_dim());
                    let on_gpu = own.forward(x.view(), None)?;
                    let on_cpu = CpuRnn::new(own_layer).forward(x.view(), None)?;
                    let worst = on_gpu
                        .output()
                        .iter()
                        .zip(on_cpu.output().iter())
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0f32, f32::max);
                    assert!(worst < 1e-4, "{activation}: GPU and CPU differ by {worst}");
                    // The shared model, called from every thread at once.
                    let x = input(shared.layer().input_dim());
                    let from_shared = shared.forward(x.view(), None)?;
                    Ok(format!(
                        "{activation}: GPU within {worst:.1e} of the CPU; shared model gave {:?}",
                        from_shared.output().shape()
                    ))
                })
            })
            .collect();
        for handle in handles {
            println!("{}", handle.join().expect("thread panicked")?);
        }
        Ok(())
    })
}
