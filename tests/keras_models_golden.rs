//! Golden tests for whole Keras models against real Keras. The fixtures in
//! tests/fixtures/keras_models/ were written by generate.py beside them (pinned versions in
//! tests/fixtures/keras/requirements.txt): each case holds the model as `model.keras` and (where
//! Keras can write it) `model.h5`, the input, and what `model.predict` returned. A stateful case
//! is streamed in the listed chunks; Keras checked that this equals feeding it whole.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, context, gpu, gpu_with};
use ndarray::{ArrayD, Axis, Slice, concatenate, stack};
use wgpu_rnn::{
    Backend, Cell, GpuOptions, KerasLayer, KerasModel, KerasRunner, NpyInput, StepStrategy,
    read_npy_f32, read_npy_input,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras_models")
}

struct Case {
    name: String,
    files: Vec<String>,
    chunks: Option<Vec<usize>>,
    input_dtype: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("name").to_string(),
            files: c["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f.as_str().expect("file name").to_string())
                .collect(),
            chunks: c["chunks"].as_array().map(|a| {
                a.iter()
                    .map(|v| v.as_u64().expect("chunk") as usize)
                    .collect()
            }),
            input_dtype: c["input_dtype"].as_str().expect("input_dtype").to_string(),
        })
        .collect()
}

/// Whether a model has an LSTM, whose cell state a stateful call carries on the host.
fn has_cell_state(model: &KerasModel) -> bool {
    model.layers().iter().any(|l| match l {
        KerasLayer::SimpleRnn { layer, .. } => layer.cell().has_cell_state(),
        KerasLayer::Bidirectional { forward, .. } => forward.cell().has_cell_state(),
        _ => false,
    })
}

/// Whether a model has an LSTM or GRU.
fn has_gated_cell(model: &KerasModel) -> bool {
    model.layers().iter().any(|l| match l {
        KerasLayer::SimpleRnn { layer, .. } => layer.cell() != Cell::Simple,
        KerasLayer::Bidirectional { forward, .. } => forward.cell() != Cell::Simple,
        _ => false,
    })
}

fn run(runner: &mut KerasRunner, input: &NpyInput) -> Vec<ArrayD<f32>> {
    match input {
        NpyInput::Float(x) => runner.predict(x.view()),
        NpyInput::Int(ids) => runner.predict_ids(ids.view()),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", runner.model().name()))
    .outputs
}

/// The model's outputs on the case's input, streamed in chunks when the case says so.
fn outputs(runner: &mut KerasRunner, case: &Case) -> ArrayD<f32> {
    let input = read_npy_input(fixtures().join(&case.name).join("input.npy")).unwrap();
    let outs = match (&case.chunks, &input) {
        (Some(chunks), NpyInput::Float(x)) => {
            assert!(
                runner.model().is_stateful(),
                "{}: saved stateful",
                case.name
            );
            runner.reset_state();
            let mut pieces = Vec::new();
            let mut start = 0;
            for &c in chunks {
                let chunk = x
                    .slice_axis(Axis(1), Slice::from(start..start + c))
                    .to_owned();
                pieces.push(run(runner, &NpyInput::Float(chunk)).remove(0));
                start += c;
            }
            runner.reset_state();
            let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
            vec![concatenate(Axis(1), &views).unwrap()]
        }
        (Some(_), NpyInput::Int(_)) => panic!("{}: streaming ids is not a case", case.name),
        (None, input) => run(runner, input),
    };
    if outs.len() == 1 {
        outs.into_iter().next().unwrap()
    } else {
        // Keras recorded a model with two outputs as one stacked array.
        let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
        stack(Axis(0), &views).unwrap()
    }
}

fn check_backend(backend: &Backend) {
    let cases = cases();
    assert!(cases.len() >= 30, "the fixtures hold every case");
    let mut checked = 0;
    for case in &cases {
        let want: ArrayD<f32> =
            read_npy_f32(fixtures().join(&case.name).join("output.npy")).unwrap();
        for file in &case.files {
            let what = format!("{}/{file} on {}", case.name, backend.name());
            let model = KerasModel::load(fixtures().join(&case.name).join(file))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                model.takes_token_ids(),
                case.input_dtype.starts_with("int"),
                "{what}"
            );
            let mut runner = KerasRunner::new(model, backend).unwrap();
            let got = outputs(&mut runner, case);
            assert_close(got.view(), want.view(), &what);
            // The GPU runs every case device-resident but a stateful LSTM, whose cell state
            // is carried on the host; the CPU never does.
            let stateful_lstm = case.chunks.is_some() && has_cell_state(runner.model());
            assert_eq!(
                runner.is_device_resident(),
                matches!(backend, Backend::Gpu(_)) && !stateful_lstm,
                "{what}: resident path"
            );
            checked += 1;
        }
    }
    assert!(checked >= 55, "both formats of every case ran ({checked})");
}

#[test]
fn cpu_matches_keras_models() {
    check_backend(&Backend::Cpu);
}

#[test]
fn gpu_matches_keras_models() {
    check_backend(&Backend::Gpu(gpu().clone()));
}

#[test]
fn gpu_matches_keras_models_with_each_step_strategy() {
    // The resident path drives both recurrent kernels, reversed and flipped steps included.
    for strategy in [StepStrategy::PerStep, StepStrategy::Persistent] {
        check_backend(&Backend::Gpu(gpu_with(strategy).clone()));
    }
}

#[test]
fn streaming_in_chunks_equals_feeding_whole_for_any_model() {
    // A model saved without stateful=True streams too once asked to, masks included.
    let dir = fixtures().join("masking_rs1");
    let model = KerasModel::load(dir.join("model.keras")).unwrap();
    assert!(!model.is_stateful());
    let x: ArrayD<f32> = read_npy_f32(dir.join("input.npy")).unwrap();
    let want: ArrayD<f32> = read_npy_f32(dir.join("output.npy")).unwrap();
    let t = x.shape()[1];
    for backend in [Backend::Cpu, Backend::Gpu(gpu().clone())] {
        let mut runner = KerasRunner::new(model.clone(), &backend).unwrap();
        runner.set_stateful(true);
        for bounds in [vec![0, 1, t], vec![0, 2, 3, t - 1, t]] {
            let pieces: Vec<ArrayD<f32>> = bounds
                .windows(2)
                .map(|w| {
                    let chunk = x.slice_axis(Axis(1), Slice::from(w[0]..w[1]));
                    let out = runner.predict(chunk).unwrap().outputs.remove(0);
                    // On the GPU the state stays on the device between the chunks.
                    assert_eq!(
                        runner.is_device_resident(),
                        matches!(backend, Backend::Gpu(_))
                    );
                    out
                })
                .collect();
            let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
            let got = concatenate(Axis(1), &views).unwrap();
            assert_close(
                got.view(),
                want.view(),
                &format!("{} {bounds:?}", backend.name()),
            );
            runner.reset_state();
        }
        // Without reset the state carries over, so a second pass differs.
        runner.predict(x.view()).unwrap();
        let carried = runner.predict(x.view()).unwrap().outputs.remove(0);
        assert!(
            carried
                .iter()
                .zip(want.iter())
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "state carried between calls"
        );
        // A stateful runner refuses another batch size until reset.
        let one = x.slice_axis(Axis(0), Slice::from(0..1));
        assert!(runner.predict(one.view()).is_err());
        runner.reset_state();
        runner.predict(one).unwrap();
    }
}

#[test]
fn models_too_large_for_one_buffer_fall_back_to_the_per_layer_path() {
    // 64-byte buffers (256 for LSTM and GRU, one of whose rows of gates takes up to 160
    // bytes): no model's intermediates fit, so every call runs layer by layer, each recurrent
    // layer chunking its work, and still matches Keras.
    let tiny = |bytes| {
        Backend::Gpu(context(GpuOptions {
            max_chunk_bytes: Some(bytes),
            ..Default::default()
        }))
    };
    let (backend, gated_backend) = (tiny(64), tiny(256));
    let mut checked = 0;
    for case in cases() {
        let want: ArrayD<f32> =
            read_npy_f32(fixtures().join(&case.name).join("output.npy")).unwrap();
        let file = &case.files[0];
        let what = format!("{}/{file} on the per-layer path", case.name);
        let model = KerasModel::load(fixtures().join(&case.name).join(file)).unwrap();
        let backend = if has_gated_cell(&model) {
            &gated_backend
        } else {
            &backend
        };
        let mut runner = KerasRunner::new(model, backend).unwrap();
        let got = outputs(&mut runner, &case);
        assert_close(got.view(), want.view(), &what);
        assert!(!runner.is_device_resident(), "{what}: fell back");
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn the_per_layer_path_can_be_chosen_and_matches_keras() {
    let backend = Backend::Gpu(gpu().clone());
    for case in cases().iter().filter(|c| c.chunks.is_none()) {
        let want: ArrayD<f32> =
            read_npy_f32(fixtures().join(&case.name).join("output.npy")).unwrap();
        let model = KerasModel::load(fixtures().join(&case.name).join(&case.files[0])).unwrap();
        let mut runner = KerasRunner::new(model, &backend).unwrap();
        runner.set_device_resident(false);
        let got = outputs(&mut runner, case);
        assert_close(got.view(), want.view(), &format!("{} per layer", case.name));
        assert!(
            !runner.is_device_resident(),
            "{}: per-layer path",
            case.name
        );
        runner.set_device_resident(true);
        outputs(&mut runner, case);
        assert!(runner.is_device_resident(), "{}: resident again", case.name);
    }
}

#[test]
fn stateful_streaming_moves_between_the_resident_and_per_layer_paths() {
    // A first chunk small enough to run resident, a second too large for the device buffers
    // allowed, a third small again: the state follows the call to the host and back.
    let dir = fixtures().join("masking_rs1");
    let model = KerasModel::load(dir.join("model.keras")).unwrap();
    let x: ArrayD<f32> = read_npy_f32(dir.join("input.npy")).unwrap();
    let want: ArrayD<f32> = read_npy_f32(dir.join("output.npy")).unwrap();
    let t = x.shape()[1];
    assert!(t >= 4, "the case has steps to split");
    // The smallest power-of-two buffer bound under which one step runs resident: every buffer
    // of the model grows with the steps, so t - 2 ≥ 2 steps then do not.
    let backend = (6..24)
        .map(|k| {
            Backend::Gpu(context(GpuOptions {
                max_chunk_bytes: Some(1 << k),
                ..Default::default()
            }))
        })
        .find(|backend| {
            let mut probe = KerasRunner::new(model.clone(), backend).unwrap();
            probe
                .predict(x.slice_axis(Axis(1), Slice::from(0..1)))
                .unwrap();
            probe.is_device_resident()
        })
        .expect("one step fits some bound");
    let mut runner = KerasRunner::new(model, &backend).unwrap();
    runner.set_stateful(true);
    let mut pieces = Vec::new();
    let mut paths = Vec::new();
    for w in [0, 1, t - 1, t].windows(2) {
        let chunk = x.slice_axis(Axis(1), Slice::from(w[0]..w[1]));
        pieces.push(runner.predict(chunk).unwrap().outputs.remove(0));
        paths.push(runner.is_device_resident());
    }
    let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
    let got = concatenate(Axis(1), &views).unwrap();
    assert_close(got.view(), want.view(), "resident, per-layer, resident");
    assert_eq!(paths, [true, false, true]);
}
