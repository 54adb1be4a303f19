//! Golden tests against real PyTorch (`torch.nn.RNN`), the ONNX package's own RNN test cases,
//! and onnxruntime. Fixtures come from tests/fixtures/torch/generate.py (pinned versions in
//! tests/fixtures/torch/requirements.txt).

mod common;

use std::path::{Path, PathBuf};

use common::onnx::attributes;
use common::{assert_close, gpu};
use ndarray::{Array2, Array3, ArrayD};
use serde_json::Value;
use wgpu_rnn::{
    Backend, Nonlinearity, OnnxRnn, TorchRnn, TorchRnnConfig, read_npy_f32, read_npy_lengths,
};

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn manifest(kind: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(fixtures(kind).join("manifest.json")).expect("manifest.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["cases"].as_array().expect("cases").clone()
}

fn check_torch(backend: &Backend) {
    let cases = manifest("torch");
    assert_eq!(cases.len(), 192, "every combination of the generator");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = fixtures("torch").join(name);
        let config = TorchRnnConfig {
            nonlinearity: match case["nonlinearity"].as_str().unwrap() {
                "tanh" => Nonlinearity::Tanh,
                _ => Nonlinearity::Relu,
            },
            batch_first: case["batch_first"].as_bool().unwrap(),
            ..Default::default()
        };
        // The prefix is found by the loader; the manifest's is only checked against it.
        let rnn = TorchRnn::load(dir.join("weights.safetensors"), None, config).unwrap();
        assert_eq!(
            rnn.num_layers() as u64,
            case["num_layers"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            rnn.bidirectional(),
            case["bidirectional"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(rnn.has_bias(), case["bias"].as_bool().unwrap(), "{name}");
        let model = rnn.build(backend).unwrap();
        let x: Array3<f32> = read_npy_f32(dir.join("input.npy")).unwrap();
        let h0: Option<Array3<f32>> = case["h0"]
            .as_bool()
            .unwrap()
            .then(|| read_npy_f32(dir.join("h0.npy")).unwrap());
        let lengths = case["lengths"]
            .as_bool()
            .unwrap()
            .then(|| read_npy_lengths(dir.join("lengths.npy")).unwrap());
        let got = model
            .forward(x.view(), h0.as_ref().map(|h| h.view()), lengths.as_deref())
            .unwrap();
        let want: Array3<f32> = read_npy_f32(dir.join("output.npy")).unwrap();
        let want_h: Array3<f32> = read_npy_f32(dir.join("h_n.npy")).unwrap();
        let what = format!("{name} on {}", backend.name());
        assert_close(got.output.view().into_dyn(), want.view().into_dyn(), &what);
        assert_close(got.h_n.view().into_dyn(), want_h.view().into_dyn(), &what);
    }
}

#[test]
fn cpu_matches_pytorch() {
    check_torch(&Backend::Cpu);
}

#[test]
fn gpu_matches_pytorch() {
    check_torch(&Backend::Gpu(gpu().clone()));
}

fn check_onnx(backend: &Backend) {
    let cases = manifest("onnx");
    assert!(cases.iter().filter(|c| c["source"] == "onnx-node").count() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = fixtures("onnx").join(name);
        let a = &case["attributes"];
        let attributes = attributes(a);
        let has = |input: &str| {
            case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == input)
        };
        let load3 =
            |f: &str| -> Array3<f32> { read_npy_f32(dir.join(format!("{f}.npy"))).unwrap() };
        let (w, r, x) = (load3("W"), load3("R"), load3("X"));
        let b: Option<Array2<f32>> = has("B").then(|| read_npy_f32(dir.join("B.npy")).unwrap());
        let lens =
            has("sequence_lens").then(|| read_npy_lengths(dir.join("sequence_lens.npy")).unwrap());
        let h0 = has("initial_h").then(|| load3("initial_h"));
        let node = OnnxRnn::new(
            w.view(),
            r.view(),
            b.as_ref().map(|b| b.view()),
            &attributes,
            backend,
        )
        .unwrap();
        let got = node
            .forward(x.view(), lens.as_deref(), h0.as_ref().map(|h| h.view()))
            .unwrap();
        let what = format!("{name} on {}", backend.name());
        for output in case["outputs"].as_array().unwrap() {
            let want: ArrayD<f32> =
                read_npy_f32(dir.join(format!("{}.npy", output.as_str().unwrap()))).unwrap();
            match output.as_str().unwrap() {
                "Y" => assert_close(got.y.view().into_dyn(), want.view(), &what),
                _ => assert_close(got.y_h.view().into_dyn(), want.view(), &what),
            }
        }
    }
}

#[test]
fn cpu_matches_onnx() {
    check_onnx(&Backend::Cpu);
}

#[test]
fn gpu_matches_onnx() {
    check_onnx(&Backend::Gpu(gpu().clone()));
}
