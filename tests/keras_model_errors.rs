//! Model files from strangers: truncated or corrupt archives, configs that lie, layers and
//! dtypes this crate does not run, bad inputs. Each is a clear error, never a panic.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array2, Array3};
use wgpu_rnn::{Backend, KerasModel, KerasRunner, RnnError};

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras_models")
        .join(case)
        .join(file)
}

fn bytes(case: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixture(case, file)).unwrap()
}

/// The `.keras` archive of `case` with each member passed through `edit(name, data)`.
fn with_members(case: &str, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes(case, "model.keras"))).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).unwrap();
        let name = member.name().to_string();
        let mut data = Vec::new();
        member.read_to_end(&mut data).unwrap();
        let data = edit(&name, data);
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// The `.keras` archive of `case` with its config.json passed through `edit`.
fn with_config(case: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    with_members(case, |name, data| {
        if name == "config.json" {
            edit(String::from_utf8(data).unwrap()).into_bytes()
        } else {
            data
        }
    })
}

fn load_error(bytes: Vec<u8>) -> String {
    match KerasModel::from_bytes(bytes) {
        Ok(model) => panic!("{} loaded", model.name()),
        Err(e) => {
            assert!(matches!(e, RnnError::BadFile { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn truncated_and_corrupt_files_are_errors() {
    for file in ["model.keras", "model.h5"] {
        let whole = bytes("text_post", file);
        for cut in [
            0,
            3,
            8,
            100,
            whole.len() / 3,
            whole.len() / 2,
            whole.len() - 1,
        ] {
            load_error(whole[..cut].to_vec());
        }
        // Flip bytes all through the file: an error or a model, never a panic.
        for at in (0..whole.len()).step_by(97) {
            let mut broken = whole.clone();
            broken[at] ^= 0x5a;
            let _ = KerasModel::from_bytes(broken);
        }
    }
    assert!(load_error(b"not a model at all".to_vec()).contains("neither"));
}

#[test]
fn configs_that_lie_about_shapes_are_refused() {
    // masking_rs1's SimpleRNN has 6 units; the weights say so too.
    let lying = with_config("masking_rs1", |c| {
        c.replacen("\"units\": 6", "\"units\": 7", 1)
    });
    let message = load_error(lying);
    assert!(message.contains("shape"), "{message}");
    let huge = with_config("masking_rs1", |c| {
        c.replacen("\"units\": 6", "\"units\": 2000000000", 1)
    });
    let message = load_error(huge);
    assert!(message.contains("shape"), "{message}");
}

#[test]
fn unsupported_layers_dtypes_and_graphs_are_named() {
    let conv = with_config("masking_rs1", |c| {
        c.replace("\"SimpleRNN\"", "\"ConvLSTM1D\"")
    });
    assert!(load_error(conv).contains("ConvLSTM1D"));
    // A SimpleRNN's weights under a config that says LSTM: an LSTM's weights are not there.
    let lstm = with_config("masking_rs1", |c| c.replace("\"SimpleRNN\"", "\"LSTM\""));
    let message = load_error(lstm);
    assert!(message.contains("layers/lstm"), "{message}");
    // A config that says GRU (either reset_after) over a SimpleRNN's weights: the GRU's are
    // missing, and the message names them.
    for reset_after in ["true", "false"] {
        let gru = with_config("masking_rs1", |c| {
            c.replace("\"SimpleRNN\"", "\"GRU\"").replacen(
                "\"units\": 6",
                &format!("\"units\": 6, \"reset_after\": {reset_after}"),
                1,
            )
        });
        let message = load_error(gru);
        assert!(message.contains("gru"), "{message}");
    }
    let half = with_config("masking_rs1", |c| {
        c.replace("\"name\": \"float32\"", "\"name\": \"mixed_float16\"")
    });
    assert!(load_error(half).contains("mixed_float16"));
    let branch = with_config("functional_chain", |c| {
        // The Dense reads the input as well as the layer before it.
        c.replacen(
            "\"keras_history\": [\"bidirectional",
            "\"keras_history\": [\"input_layer_29\", 0, 0]}}, {\"config\": {\"keras_history\": [\"bidirectional",
            1,
        )
    });
    // Dense takes one tensor: a call with two is refused as Keras refuses it.
    assert!(load_error(branch).contains("takes one tensor"));
    let not_json = with_config("masking_rs1", |c| c[..c.len() / 2].to_string());
    assert!(load_error(not_json).contains("JSON"));
}

/// An archive with `config` from one case and the members of another (`None` drops a member).
fn mixed(config_case: &str, weights_case: Option<&str>) -> Vec<u8> {
    let member = |case: &str, name: &str| {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes(case, "model.keras"))).unwrap();
        let mut data = Vec::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        data
    };
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    out.start_file("config.json", options).unwrap();
    out.write_all(&member(config_case, "config.json")).unwrap();
    if let Some(case) = weights_case {
        out.start_file("model.weights.h5", options).unwrap();
        out.write_all(&member(case, "model.weights.h5")).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn weights_missing_from_the_file_are_named() {
    assert!(load_error(mixed("masking_rs1", None)).contains("model.weights.h5"));
    // Another model's weights: its layers are not where this config looks, or not its shapes.
    let message = load_error(mixed("masking_rs1", Some("text_post")));
    assert!(message.contains("weight"), "{message}");
    let message = load_error(mixed("stack3", Some("masking_rs1")));
    assert!(message.contains("weight"), "{message}");
}

#[test]
fn bad_inputs_are_errors_on_both_backends() {
    let text = KerasModel::load(fixture("text_post", "model.keras")).unwrap();
    let masking = KerasModel::load(fixture("masking_rs1", "model.keras")).unwrap();
    let mut backends = vec![Backend::Cpu];
    if let Ok(gpu) = Backend::gpu() {
        backends.push(gpu);
    }
    for backend in &backends {
        let mut runner = KerasRunner::new(text.clone(), backend).unwrap();
        let vocabulary = match &text.layers()[0] {
            wgpu_rnn::KerasLayer::Embedding { table, .. } => table.nrows() as i64,
            other => panic!("{other:?}"),
        };
        for id in [-1, vocabulary] {
            let ids = Array2::from_elem((2, 3), id).into_dyn();
            let e = runner.predict_ids(ids.view()).unwrap_err();
            assert!(matches!(e, RnnError::InvalidInput(_)), "{e}");
        }
        let ids = Array3::<i64>::ones((1, 2, 3)).into_dyn();
        assert!(runner.predict_ids(ids.view()).is_err());
        let nan = Array2::from_elem((1, 3), f32::NAN).into_dyn();
        assert!(runner.predict(nan.view()).is_err());

        let mut runner = KerasRunner::new(masking.clone(), backend).unwrap();
        let wrong_features = Array3::<f32>::zeros((2, 4, 5)).into_dyn();
        let e = runner.predict(wrong_features.view()).unwrap_err();
        assert!(matches!(e, RnnError::ShapeMismatch { .. }), "{e}");
        let empty = Array3::<f32>::zeros((0, 4, 3)).into_dyn();
        assert!(runner.predict(empty.view()).is_err());
        let flat = Array2::<f32>::zeros((2, 3)).into_dyn();
        assert!(runner.predict(flat.view()).is_err());
    }
}

#[test]
fn the_cli_reports_bad_models_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.keras");
    let whole = bytes("text_post", "model.keras");
    std::fs::write(&broken, &whole[..whole.len() / 2]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .args(["info"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.keras"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .args(["run", "--backend", "cpu"])
        .arg(fixture("text_post", "model.keras"))
        .arg(fixture("masking_rs1", "input.npy"))
        .arg("-o")
        .arg(dir.path().join("out.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path().join("out.npy").exists());
}

#[test]
fn the_cli_runs_models_and_prints_their_summary() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.keras", "model.h5"] {
        let output = dir.path().join(format!("{file}.npy"));
        let status = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
            .args(["run", "--backend", "cpu"])
            .arg(fixture("text_pre", file))
            .arg(fixture("text_pre", "input.npy"))
            .arg("-o")
            .arg(&output)
            .status()
            .unwrap();
        assert!(status.success());
        let got: ndarray::ArrayD<f32> = wgpu_rnn::read_npy_f32(&output).unwrap();
        let want: ndarray::ArrayD<f32> =
            wgpu_rnn::read_npy_f32(fixture("text_pre", "output.npy")).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .arg("info")
        .arg(fixture("demo_text", "model.h5"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "embedding (Embedding)",
        "(None, 12, 8)",
        "Total params: 650",
    ] {
        assert!(summary.contains(expected), "{summary}");
    }
}

#[test]
fn weights_the_model_would_ignore_are_refused() {
    // The config says use_bias=False but the file holds the SimpleRNN's bias.
    let no_bias = with_config("masking_rs1", |c| {
        c.replacen("\"use_bias\": true", "\"use_bias\": false", 1)
    });
    let message = load_error(no_bias);
    assert!(
        message.contains("layers/simple_rnn/cell/vars/2") && message.contains("not used"),
        "{message}"
    );
}

#[test]
fn bytes_past_the_hdf5_end_are_refused() {
    // 64 MB of zeros after the weights: refused from the sizes alone, before they are inflated.
    let padded = with_members("masking_rs1", |name, mut data| {
        if name == "model.weights.h5" {
            data.resize(data.len() + (64 << 20), 0);
        }
        data
    });
    assert!(padded.len() < 1 << 20);
    let message = load_error(padded);
    assert!(message.contains("trailing data"), "{message}");

    let mut legacy = bytes("masking_rs1", "model.h5");
    legacy.extend_from_slice(b"appended");
    let message = load_error(legacy);
    assert!(message.contains("8 bytes of trailing data"), "{message}");
}

/// Activation objects whose parameters no activation of the crate computes are refused with the
/// parameter named, never run with it dropped (tests/fixtures/keras_models/activation_objects.py
/// saved them with Keras).
#[test]
fn activation_objects_with_parameters_the_crate_cannot_honour_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras_models/activation_objects_refused");
    for (file, names) in [
        // PReLU as a gated cell's activation or gate activation (one slope per unit there).
        ("lstm_prelu.keras", &["PReLU", "LSTM"][..]),
        ("gru_prelu_gates.keras", &["PReLU", "GRU"]),
        // Saved before it ran: Keras draws its alpha at random on the first call.
        ("prelu_random_alpha.keras", &["PReLU", "GlorotUniform"]),
        // A SimpleRNN's softmax across the batch, a slope shared along an axis a step lacks.
        ("rnn_softmax_axis_0.keras", &["Softmax", "axis [0]"]),
        ("rnn_prelu_shared_2.keras", &["PReLU", "[2]"]),
        // TimeDistributed's inner softmax across its batch of every row of every step.
        ("td_softmax_axis_0.keras", &["Softmax", "axis 0"]),
    ] {
        let message = match KerasModel::load(dir.join(file)) {
            Ok(_) => panic!("{file} loaded"),
            Err(e) => e.to_string(),
        };
        for name in names {
            assert!(message.contains(name), "{file}: {message}");
        }
    }
}
