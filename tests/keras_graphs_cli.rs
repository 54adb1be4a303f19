//! The command line on functional models (tests/fixtures/keras_graphs/): several inputs from an
//! `.npz` named by the model's inputs (or `arr_0`, `arr_1`, ...), several outputs written as
//! `OUT_0.npy`, `OUT_1.npy`, ..., and `info` printing what each layer reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::ArrayD;
use ndarray_npy::NpzWriter;
use wgpu_rnn::{NpyInput, read_npy_f32, read_npy_input};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras_graphs")
        .join(name)
}

fn wgpu_rnn(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .args(args)
        .output()
        .unwrap()
}

/// An `.npz` of the case's inputs under `names`.
fn npz(path: &Path, inputs: &[NpyInput], names: &[&str]) {
    let mut writer = NpzWriter::new(std::fs::File::create(path).unwrap());
    for (x, name) in inputs.iter().zip(names) {
        match x {
            NpyInput::Float(a) => writer.add_array(*name, a).unwrap(),
            NpyInput::Int(a) => writer.add_array(*name, a).unwrap(),
        }
    }
    writer.finish().unwrap();
}

fn two_inputs() -> Vec<NpyInput> {
    (0..2)
        .map(|i| {
            read_npy_input(case("two_inputs_two_outputs").join(format!("input_{i}.npy"))).unwrap()
        })
        .collect()
}

/// `wgpu-rnn run MODEL INPUT -o OUT --backend cpu`.
fn run_cpu(model: &Path, input: &Path, out: &Path) -> std::process::Output {
    wgpu_rnn(&[
        "run".as_ref(),
        model.as_os_str(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--backend".as_ref(),
        "cpu".as_ref(),
    ])
}

#[test]
fn several_inputs_come_from_an_npz_and_several_outputs_go_to_numbered_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = case("two_inputs_two_outputs").join("model.keras");
    let inputs = two_inputs();
    // Named by the model's inputs (in either order), or positionally.
    for names in [["words", "extra"], ["arr_0", "arr_1"]] {
        let reversed: Vec<NpyInput> = inputs.iter().rev().cloned().collect();
        let reversed_names: Vec<&str> = names.iter().rev().copied().collect();
        let input = dir.path().join("inputs.npz");
        if names[0] == "words" {
            npz(&input, &reversed, &reversed_names);
        } else {
            npz(&input, &inputs, &names);
        }
        let out = dir.path().join("out.npy");
        let result = run_cpu(&model, &input, &out);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        for i in 0..2 {
            let got: ArrayD<f32> = read_npy_f32(dir.path().join(format!("out_{i}.npy"))).unwrap();
            let want: ArrayD<f32> =
                read_npy_f32(case("two_inputs_two_outputs").join(format!("output_{i}.npy")))
                    .unwrap();
            assert_eq!(got.shape(), want.shape());
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
        }
    }
}

#[test]
fn inputs_that_do_not_match_the_model_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = case("two_inputs_two_outputs").join("model.keras");
    let inputs = two_inputs();
    let out = dir.path().join("out.npy");
    let run = |input: &Path| {
        let result = run_cpu(&model, input, &out);
        assert!(!result.status.success());
        String::from_utf8_lossy(&result.stderr).to_string()
    };
    let missing = dir.path().join("missing.npz");
    npz(&missing, &inputs[..1], &["words"]);
    assert!(run(&missing).contains("\"extra\""));
    let extra = dir.path().join("extra.npz");
    npz(
        &extra,
        &[inputs[0].clone(), inputs[1].clone(), inputs[1].clone()],
        &["words", "extra", "more"],
    );
    assert!(run(&extra).contains("\"more\""));
    let single = case("two_inputs_two_outputs").join("input_0.npy");
    assert!(run(&single).contains(".npz"));
    assert!(!dir.path().join("out_0.npy").exists());
}

#[test]
fn info_shows_what_each_layer_reads() {
    let model = case("shared_layers").join("model.keras");
    let result = wgpu_rnn(&["info".as_ref(), model.as_os_str()]);
    assert!(result.status.success());
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("Connected to"), "{summary}");
    // The shared layer's two calls, each reading one input.
    assert!(summary.contains("left[0][0], right[0][0]"), "{summary}");
    assert!(summary.contains("Total params:"), "{summary}");
}
