//! Times a whole Keras model on the GPU's two paths and on the CPU.
//!
//! `cargo run --release --example keras_model_paths [MODEL.keras INPUT.npy] [REPEATS]` (default:
//! the demo review classifier and its input). "resident" keeps every layer's data on the device
//! (one upload, one readback); "per-layer" runs layer by layer through the host
//! (`KerasRunner::set_device_resident(false)`); "cpu" is the CPU path. One `key=value` line each.

use std::time::Instant;

use wgpu_rnn::{
    Backend, GpuContext, GpuOptions, KerasModel, KerasRunner, NpyInput, read_npy_input,
};

fn main() -> wgpu_rnn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keras_models/demo_text"
    );
    let (model_path, input_path) = match &args[..] {
        [m, i, ..] => (m.clone(), i.clone()),
        _ => (
            format!("{fixture}/model.keras"),
            format!("{fixture}/input.npy"),
        ),
    };
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50);
    let input = read_npy_input(&input_path)?;

    let resident = Backend::Gpu(GpuContext::new_blocking(GpuOptions::default())?);
    let per_layer = Backend::Gpu(GpuContext::new_blocking(GpuOptions {
        max_chunk_bytes: Some(64),
        ..Default::default()
    })?);
    for (name, backend) in [
        ("resident", resident),
        ("per-layer", per_layer),
        ("cpu", Backend::Cpu),
    ] {
        let mut runner = KerasRunner::new(KerasModel::load(&model_path)?, &backend)?;
        let mut call = || match &input {
            NpyInput::Int(ids) => runner.predict_ids(ids.view()).map(drop),
            NpyInput::Float(x) => runner.predict(x.view()).map(drop),
        };
        call()?;
        let mut ms: Vec<f64> = (0..repeats)
            .map(|_| {
                let start = Instant::now();
                call().map(|()| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<wgpu_rnn::Result<_>>()?;
        ms.sort_by(f64::total_cmp);
        println!(
            "path={name} median_ms={:.3} min_ms={:.3} resident={}",
            ms[ms.len() / 2],
            ms[0],
            runner.is_device_resident()
        );
    }
    Ok(())
}
