//! Runs a PyTorch `nn.RNN` from its `state_dict` (saved with safetensors) on a padded batch with
//! per-sequence lengths, as `pack_padded_sequence` / `pad_packed_sequence` would.
//!
//! `cargo run --release --example torch_packed`: a two-layer bidirectional tanh RNN from
//! `tests/fixtures/torch/l2_bi_tanh_bias_tf_noh0_packed`, compared with what PyTorch returned.

use wgpu_rnn::{Backend, Nonlinearity, TorchRnn, TorchRnnConfig, read_npy_f32, read_npy_lengths};

fn main() -> wgpu_rnn::Result<()> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch/l2_bi_tanh_bias_tf_noh0_packed"
    );
    // `num_layers`, `bidirectional`, `hidden_size` and `bias` come from the file; the
    // nonlinearity and the layout (time-major here, as `batch_first=False`) from the caller.
    let config = TorchRnnConfig {
        nonlinearity: Nonlinearity::Tanh,
        ..Default::default()
    };
    let (backend, note) = Backend::auto();
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let model =
        TorchRnn::load(format!("{dir}/weights.safetensors"), None, config)?.build(&backend)?;

    let x: ndarray::Array3<f32> = read_npy_f32(format!("{dir}/input.npy"))?; // T × N × D
    let lengths = read_npy_lengths(format!("{dir}/lengths.npy"))?;
    let out = model.forward(x.view(), None, Some(&lengths))?;
    println!(
        "input {:?}, lengths {lengths:?} on {}: output {:?} (zeros past each length), h_n {:?}",
        x.shape(),
        backend.name(),
        out.output.shape(),
        out.h_n.shape()
    );

    for (name, got) in [
        ("output", out.output.view().into_dyn()),
        ("h_n", out.h_n.view().into_dyn()),
    ] {
        let torch: ndarray::ArrayD<f32> = read_npy_f32(format!("{dir}/{name}.npy"))?;
        let worst = got
            .iter()
            .zip(torch.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{name}: largest difference from PyTorch {worst:.2e}");
        assert!(worst < 1e-4, "{name} disagrees with PyTorch");
    }
    Ok(())
}
