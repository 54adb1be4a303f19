//! Golden tests against real PyTorch `nn.LSTM` and `nn.GRU`: layers, directions, bias,
//! batch_first, h_0 and c_0, packed lengths, a prefixed state_dict, an LSTM's proj_size, from
//! tests/fixtures/torch_gated/generate.py (versions pinned in tests/fixtures/torch/requirements.txt).
//! The module is inferred from the tensors' shapes; outputs, h_n and c_n on the CPU and the GPU
//! under each step strategy.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, gpu_with};
use ndarray::Array3;
use serde_json::Value;
use wgpu_rnn::{
    Backend, Cell, StepStrategy, TorchRnn, TorchRnnConfig, read_npy_f32, read_npy_lengths,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_gated")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["cases"].as_array().expect("cases").clone()
}

fn flag(case: &Value, key: &str) -> bool {
    case[key].as_bool().unwrap_or(false)
}

fn check(backend: &Backend) {
    let cases = cases();
    assert!(cases.len() >= 50, "the fixtures hold every case");
    assert!(cases.iter().filter(|c| c["proj_size"].is_u64()).count() >= 11);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let dir = fixtures().join(name);
        let config = TorchRnnConfig {
            batch_first: flag(case, "batch_first"),
            ..Default::default()
        };
        let rnn = TorchRnn::load(dir.join("weights.safetensors"), None, config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let cell = match case["cell"].as_str() {
            Some("lstm") => Cell::Lstm,
            _ => Cell::Gru,
        };
        assert_eq!(rnn.cell(), cell, "{name}");
        assert_eq!(
            rnn.num_layers() as u64,
            case["num_layers"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(rnn.bidirectional(), flag(case, "bidirectional"), "{name}");
        assert_eq!(rnn.has_bias(), flag(case, "bias"), "{name}");
        assert_eq!(
            rnn.proj_size().map(|p| p as u64),
            case["proj_size"].as_u64(),
            "{name}"
        );
        let model = rnn.build(backend).unwrap();
        let x: Array3<f32> = read_npy_f32(dir.join("input.npy")).unwrap();
        let state = |file: &str| -> Option<Array3<f32>> {
            let path = dir.join(file);
            (flag(case, "h0") && path.exists()).then(|| read_npy_f32(path).unwrap())
        };
        let (h0, c0) = (state("h0.npy"), state("c0.npy"));
        let lengths =
            flag(case, "lengths").then(|| read_npy_lengths(dir.join("lengths.npy")).unwrap());
        let got = model
            .forward_states(
                x.view(),
                h0.as_ref().map(|h| h.view()),
                c0.as_ref().map(|c| c.view()),
                lengths.as_deref(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let what = format!("{name} on {}", backend.name());
        let want: Array3<f32> = read_npy_f32(dir.join("output.npy")).unwrap();
        let want_h: Array3<f32> = read_npy_f32(dir.join("h_n.npy")).unwrap();
        assert_close(got.output.view().into_dyn(), want.view().into_dyn(), &what);
        assert_close(got.h_n.view().into_dyn(), want_h.view().into_dyn(), &what);
        match (cell, &got.c_n) {
            (Cell::Lstm, Some(c_n)) => {
                let want_c: Array3<f32> = read_npy_f32(dir.join("c_n.npy")).unwrap();
                assert_close(c_n.view().into_dyn(), want_c.view().into_dyn(), &what);
            }
            (Cell::Gru, None) => {}
            _ => panic!("{what}: c_n {:?}", got.c_n.is_some()),
        }
    }
}

#[test]
fn cpu_matches_pytorch_lstm_and_gru() {
    check(&Backend::Cpu);
}

#[test]
fn gpu_matches_pytorch_lstm_and_gru_under_each_strategy() {
    for strategy in [StepStrategy::PerStep, StepStrategy::Persistent] {
        check(&Backend::Gpu(gpu_with(strategy).clone()));
    }
}
