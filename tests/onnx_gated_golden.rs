//! Golden tests of the ONNX `LSTM` and `GRU` operators against the ONNX package's own test cases
//! and onnxruntime: every direction, layout, `sequence_lens`, initial states, `clip`, peepholes,
//! `input_forget`, `linear_before_reset` and activation list, on the CPU and on the GPU under
//! each step strategy. Fixtures come from tests/fixtures/onnx_gated/generate.py (pinned versions
//! in tests/fixtures/onnx_gated/requirements.txt).

mod common;

use std::path::{Path, PathBuf};

use common::onnx::attributes;
use common::{assert_close, gpu_with};
use ndarray::{Array2, Array3, ArrayD};
use serde_json::Value;
use wgpu_rnn::{Backend, OnnxRnn, OnnxRnnAttributes, StepStrategy, read_npy_f32, read_npy_lengths};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_gated")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["cases"].as_array().expect("cases").clone()
}

/// Runs every case on `backend`; returns how many ran of each operator.
fn check(backend: &Backend) -> (usize, usize) {
    let mut counts = (0, 0);
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let dir = fixtures().join(name);
        let has = |input: &str| {
            case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == input)
        };
        let load3 =
            |f: &str| -> Array3<f32> { read_npy_f32(dir.join(format!("{f}.npy"))).unwrap() };
        let load2 = |f: &str| -> Option<Array2<f32>> {
            has(f).then(|| read_npy_f32(dir.join(format!("{f}.npy"))).unwrap())
        };
        let (w, r, x) = (load3("W"), load3("R"), load3("X"));
        let (b, p) = (load2("B"), load2("P"));
        let lens =
            has("sequence_lens").then(|| read_npy_lengths(dir.join("sequence_lens.npy")).unwrap());
        let h0 = has("initial_h").then(|| load3("initial_h"));
        let c0 = has("initial_c").then(|| load3("initial_c"));
        let attributes = attributes(&case["attributes"]);
        let b = b.as_ref().map(|b| b.view());
        let node = match case["op"].as_str().unwrap() {
            "LSTM" => {
                counts.0 += 1;
                OnnxRnn::lstm(
                    w.view(),
                    r.view(),
                    b,
                    p.as_ref().map(|p| p.view()),
                    &attributes,
                    backend,
                )
            }
            _ => {
                counts.1 += 1;
                OnnxRnn::gru(w.view(), r.view(), b, &attributes, backend)
            }
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = node
            .forward_states(
                x.view(),
                lens.as_deref(),
                h0.as_ref().map(|h| h.view()),
                c0.as_ref().map(|c| c.view()),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let what = format!("{name} on {}", backend.name());
        for output in case["outputs"].as_array().unwrap() {
            let output = output.as_str().unwrap();
            let want: ArrayD<f32> = read_npy_f32(dir.join(format!("{output}.npy"))).unwrap();
            let got = match output {
                "Y" => got.y.view().into_dyn(),
                "Y_h" => got.y_h.view().into_dyn(),
                _ => got.y_c.as_ref().expect("an LSTM has Y_c").view().into_dyn(),
            };
            assert_close(got, want.view(), &format!("{what} {output}"));
        }
    }
    counts
}

#[test]
fn cpu_matches_onnx_lstm_and_gru() {
    let (lstm, gru) = check(&Backend::Cpu);
    assert!(lstm >= 90 && gru >= 120, "{lstm} LSTM and {gru} GRU cases");
}

#[test]
fn gpu_matches_onnx_lstm_and_gru_under_each_strategy() {
    for strategy in [StepStrategy::PerStep, StepStrategy::Persistent] {
        check(&Backend::Gpu(gpu_with(strategy).clone()));
    }
}

#[test]
fn bad_onnx_nodes_are_clear_errors() {
    let w = Array3::<f32>::zeros((1, 8, 3));
    let r = Array3::<f32>::zeros((1, 8, 2));
    let cpu = Backend::Cpu;
    let plain = OnnxRnnAttributes::default();
    // An LSTM's W has 4·hidden_size rows.
    let e = OnnxRnn::lstm(w.view(), r.view(), None, None, &plain, &cpu).unwrap();
    let x = Array3::<f32>::zeros((2, 1, 3));
    assert!(node_runs(&e, &x));
    let w6 = Array3::<f32>::zeros((1, 6, 3));
    let e = OnnxRnn::lstm(w6.view(), r.view(), None, None, &plain, &cpu).unwrap_err();
    assert!(e.to_string().contains("4·hidden_size"), "{e}");
    // Peepholes are 3·hidden_size.
    let p = Array2::<f32>::zeros((1, 5));
    let e = OnnxRnn::lstm(w.view(), r.view(), None, Some(p.view()), &plain, &cpu).unwrap_err();
    assert!(e.to_string().contains("P"), "{e}");
    // Attributes of the other operator, and activation lists of the wrong length.
    let forget = OnnxRnnAttributes {
        input_forget: true,
        ..Default::default()
    };
    let w3 = Array3::<f32>::zeros((1, 6, 3));
    let r3 = Array3::<f32>::zeros((1, 6, 2));
    let e = OnnxRnn::gru(w3.view(), r3.view(), None, &forget, &cpu).unwrap_err();
    assert!(e.to_string().contains("input_forget"), "{e}");
    let two = OnnxRnnAttributes {
        activations: vec![wgpu_rnn::Activation::Sigmoid, wgpu_rnn::Activation::Tanh],
        ..Default::default()
    };
    let e = OnnxRnn::lstm(w.view(), r.view(), None, None, &two, &cpu).unwrap_err();
    assert!(e.to_string().contains("3 per direction"), "{e}");
    // initial_c belongs to an LSTM.
    let gru = OnnxRnn::gru(w3.view(), r3.view(), None, &plain, &cpu).unwrap();
    let c0 = Array3::<f32>::zeros((1, 1, 2));
    let e = gru
        .forward_states(x.view(), None, None, Some(c0.view()))
        .unwrap_err();
    assert!(e.to_string().contains("cell state"), "{e}");
}

fn node_runs(node: &OnnxRnn, x: &Array3<f32>) -> bool {
    let out = node.forward(x.view(), None, None).unwrap();
    out.y_c.is_some() && out.y.shape() == [2, 1, 1, 2]
}
