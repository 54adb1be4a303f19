//! Golden tests for functional Keras models (graphs, masks recorded as ops or built by hand,
//! several inputs and outputs, shared layers, merges, states) against real Keras. The fixtures
//! in tests/fixtures/keras_graphs/ were written by generate.py beside them (pinned versions in
//! tests/fixtures/keras/requirements.txt): each case holds model.keras, model.h5, its inputs and
//! what `model.predict` returned. Where Keras cannot load its own .h5 (a graph with op nodes),
//! the crate must refuse it too.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, context, gpu, gpu_with};
use ndarray::ArrayD;
use wgpu_rnn::{
    Backend, GpuOptions, InputArray, KerasModel, KerasRunner, NpyInput, StepStrategy, read_npy_f32,
    read_npy_input,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras_graphs")
}

struct Case {
    name: String,
    inputs: Vec<NpyInput>,
    outputs: Vec<ArrayD<f32>>,
    input_names: Vec<String>,
    h5_loads: bool,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let dir = fixtures().join(&name);
            Case {
                inputs: strings(&c["inputs"])
                    .iter()
                    .map(|f| read_npy_input(dir.join(f)).unwrap())
                    .collect(),
                outputs: strings(&c["outputs"])
                    .iter()
                    .map(|f| read_npy_f32(dir.join(f)).unwrap())
                    .collect(),
                input_names: strings(&c["input_names"]),
                h5_loads: c["h5_loads"].as_bool().expect("h5_loads"),
                name,
            }
        })
        .collect()
}

fn arrays(inputs: &[NpyInput]) -> Vec<InputArray<'_>> {
    inputs.iter().map(InputArray::from).collect()
}

/// Runs every case's model.keras (and model.h5 where Keras loads it) on `backend` and checks
/// every output; `resident` says whether GPU calls must run device-resident.
fn check(backend: &Backend, resident: Option<bool>) -> usize {
    let mut checked = 0;
    for case in cases() {
        let mut files = vec!["model.keras"];
        if case.h5_loads {
            files.push("model.h5");
        }
        for file in files {
            let what = format!("{}/{file} on {}", case.name, backend.name());
            let model = KerasModel::load(fixtures().join(&case.name).join(file))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(model.input_names(), case.input_names, "{what}");
            assert_eq!(model.output_count(), case.outputs.len(), "{what}");
            let mut runner = KerasRunner::new(model, backend).unwrap();
            if resident == Some(false) {
                runner.set_device_resident(false);
            }
            let got = runner
                .predict_inputs(&arrays(&case.inputs))
                .unwrap_or_else(|e| panic!("{what}: {e}"))
                .outputs;
            assert_eq!(got.len(), case.outputs.len(), "{what}");
            for (i, (g, want)) in got.iter().zip(&case.outputs).enumerate() {
                assert_close(g.view(), want.view(), &format!("{what} output {i}"));
            }
            if let Some(resident) = resident {
                assert_eq!(
                    runner.is_device_resident(),
                    resident,
                    "{what}: resident path"
                );
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn cpu_matches_keras_graphs() {
    assert!(check(&Backend::Cpu, None) >= 15);
}

#[test]
fn gpu_matches_keras_graphs_device_resident() {
    assert!(check(&Backend::Gpu(gpu().clone()), Some(true)) >= 15);
}

#[test]
fn gpu_matches_keras_graphs_with_each_step_strategy() {
    for strategy in [
        StepStrategy::PerStep,
        StepStrategy::Persistent,
        StepStrategy::Sliced,
    ] {
        check(&Backend::Gpu(gpu_with(strategy).clone()), Some(true));
    }
}

#[test]
fn gpu_per_layer_path_matches_keras_graphs() {
    check(&Backend::Gpu(gpu().clone()), Some(false));
    // Buffers too small for any model: every call falls back, each recurrent layer chunked.
    let tiny = Backend::Gpu(context(GpuOptions {
        max_chunk_bytes: Some(256),
        ..Default::default()
    }));
    check(&tiny, Some(false));
}

#[test]
fn h5_files_keras_cannot_load_are_refused() {
    let mut refused = 0;
    for case in cases().iter().filter(|c| !c.h5_loads) {
        let path = fixtures().join(&case.name).join("model.h5");
        let message = match KerasModel::load(&path) {
            Ok(_) => panic!("{}: model.h5 loaded where Keras refuses it", case.name),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("save the model as .keras"), "{message}");
        refused += 1;
    }
    assert!(refused >= 5);
}

#[test]
fn a_model_of_several_inputs_takes_them_all() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "two_inputs_two_outputs")
        .unwrap();
    let model = KerasModel::load(fixtures().join(&case.name).join("model.keras")).unwrap();
    let mut runner = KerasRunner::new(model, &Backend::Cpu).unwrap();
    let inputs = arrays(&case.inputs);
    let message = runner.predict_inputs(&inputs[..1]).unwrap_err().to_string();
    assert!(message.contains("takes 2 inputs"), "{message}");
    let NpyInput::Float(x) = &case.inputs[1] else {
        panic!("features")
    };
    assert!(runner.predict(x.view()).is_err());
    // Batch sizes must agree.
    let short = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..2));
    let message = runner
        .predict_inputs(&[inputs[0].clone(), InputArray::Float(short)])
        .unwrap_err()
        .to_string();
    assert!(message.contains("batch"), "{message}");
}

/// Every case's input tiled to a batch of 37 (floats nudged per copy): the device-resident
/// graph against the CPU, on a grid and layouts larger than the fixtures'.
#[test]
fn gpu_matches_cpu_on_larger_batches() {
    let gpu = Backend::Gpu(gpu().clone());
    for case in cases() {
        let inputs: Vec<NpyInput> = case
            .inputs
            .iter()
            .map(|x| match x {
                NpyInput::Float(a) => {
                    let views: Vec<_> = (0..8).map(|_| a.view()).collect();
                    let tiled = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
                    let mut i = 0.0f32;
                    NpyInput::Float(tiled.mapv(|v| {
                        i += 1.0;
                        // Padding (exact zeros and the masking values) stays as it is.
                        if v == 0.0 || v == -1.0 {
                            v
                        } else {
                            v + 0.01 * (i * 0.37).sin()
                        }
                    }))
                }
                NpyInput::Int(a) => {
                    let views: Vec<_> = (0..8).map(|_| a.view()).collect();
                    NpyInput::Int(ndarray::concatenate(ndarray::Axis(0), &views).unwrap())
                }
            })
            .map(|x| match x {
                NpyInput::Float(a) => NpyInput::Float(
                    a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..37))
                        .to_owned(),
                ),
                NpyInput::Int(a) => NpyInput::Int(
                    a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..37))
                        .to_owned(),
                ),
            })
            .collect();
        let model = KerasModel::load(fixtures().join(&case.name).join("model.keras")).unwrap();
        let mut cpu = KerasRunner::new(model.clone(), &Backend::Cpu).unwrap();
        let mut on_gpu = KerasRunner::new(model, &gpu).unwrap();
        let want = cpu.predict_inputs(&arrays(&inputs)).unwrap().outputs;
        let got = on_gpu.predict_inputs(&arrays(&inputs)).unwrap().outputs;
        assert!(on_gpu.is_device_resident(), "{}", case.name);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(
                g.view(),
                w.view(),
                &format!("{} output {i}, batch 37", case.name),
            );
        }
    }
}
