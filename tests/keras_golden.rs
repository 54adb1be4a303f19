//! Golden tests against real Keras. The fixtures in tests/fixtures/keras/ were written by
//! tests/fixtures/keras/generate.py (pinned versions in requirements.txt beside it): for each case,
//! the layer's weights as `np.savez(path, *layer.get_weights())` (or by key), the input, the
//! optional initial state, and what Keras returned for the output and the final state.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, gpu};
use ndarray::{Array2, Array3, ArrayD};
use wgpu_rnn::{
    Activation, CpuRnn, GpuRnn, RnnForward, SimpleRnnConfig, load_keras_npz, read_npy_f32,
};

struct Case {
    name: String,
    dir: PathBuf,
    config: SimpleRnnConfig,
    initial_state: bool,
    use_bias: bool,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let activation = match c["activation"].as_str() {
                Some(a) => Activation::from_keras_name(a).unwrap_or_else(|e| panic!("{name}: {e}")),
                None => Activation::Linear,
            };
            Case {
                dir: fixtures().join(&name),
                name,
                config: SimpleRnnConfig {
                    activation,
                    return_sequences: c["return_sequences"].as_bool().expect("return_sequences"),
                    go_backwards: c["go_backwards"].as_bool().expect("go_backwards"),
                    ..Default::default()
                },
                initial_state: c["initial_state"].as_bool().expect("initial_state"),
                use_bias: c["use_bias"].as_bool().expect("use_bias"),
            }
        })
        .collect()
}

fn check(model: &dyn RnnForward, case: &Case) {
    let input: Array3<f32> = read_npy_f32(case.dir.join("input.npy")).unwrap();
    let h0: Option<Array2<f32>> = case
        .initial_state
        .then(|| read_npy_f32(case.dir.join("initial_state.npy")).unwrap());
    let want: ArrayD<f32> = read_npy_f32(case.dir.join("output.npy")).unwrap();
    let want_state: Array2<f32> = read_npy_f32(case.dir.join("final_state.npy")).unwrap();
    let got = model
        .forward(input.view(), h0.as_ref().map(|h| h.view()))
        .unwrap();
    let what = format!("{} on {}", case.name, model.backend_name());
    assert_close(got.output(), want.view(), &what);
    assert_close(
        got.final_state.view().into_dyn(),
        want_state.view().into_dyn(),
        &what,
    );
}

#[test]
fn cpu_matches_keras() {
    for case in cases() {
        let layer = load_keras_npz(case.dir.join("weights.npz"), case.config).unwrap();
        assert_eq!(layer.bias().is_some(), case.use_bias, "{}", case.name);
        check(&CpuRnn::new(layer), &case);
    }
}

#[test]
fn gpu_matches_keras() {
    for case in cases() {
        let layer = load_keras_npz(case.dir.join("weights.npz"), case.config).unwrap();
        check(&GpuRnn::new(gpu(), layer).unwrap(), &case);
    }
}

#[test]
fn fixtures_cover_every_activation_and_option() {
    let cases = cases();
    // Every activation Keras names (the ONNX-only ones are checked against onnxruntime, the
    // parameterised layer objects by tests/keras_graphs_golden.rs).
    for a in Activation::ALL
        .iter()
        .filter(|a| Activation::from_keras_name(a.keras_name()).ok() == Some(**a))
    {
        assert!(
            cases.iter().any(|c| c.config.activation == *a),
            "no Keras fixture for activation {a}"
        );
    }
    for (rs, gb) in [(false, false), (true, false), (false, true), (true, true)] {
        assert!(
            cases
                .iter()
                .any(|c| c.config.return_sequences == rs && c.config.go_backwards == gb),
            "no fixture with return_sequences={rs} go_backwards={gb}"
        );
    }
    assert!(cases.iter().any(|c| !c.use_bias), "no fixture without bias");
    assert!(
        cases.iter().any(|c| c.initial_state),
        "no fixture with an initial state"
    );
    assert!(
        cases.iter().any(|c| c.name == "sum_of_three"),
        "no sum-of-three model"
    );
}
