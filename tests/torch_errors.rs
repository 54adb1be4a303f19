//! Bad PyTorch input gets a clear error, never a panic: malformed safetensors files, missing or
//! misshapen tensors, inconsistent layers, bad lengths, wrong dtypes; through the library and the
//! command line.

use std::process::Command;

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::WriteNpyExt;
use safetensors::{Dtype, tensor::TensorView};
use wgpu_rnn::{Backend, RnnError, TorchRnn, TorchRnnConfig};

/// A state_dict image: (name, shape, values as f32, or as f16 bits when `half`).
fn safetensors_bytes(tensors: &[(&str, Vec<usize>)], half: bool) -> Vec<u8> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let count: usize = shape.iter().product();
            let bytes = if half {
                vec![0u8; count * 2]
            } else {
                bytemuck::cast_slice(&vec![0.1f32; count]).to_vec()
            };
            (name.to_string(), shape.clone(), bytes)
        })
        .collect();
    let views = data.iter().map(|(name, shape, bytes)| {
        let dtype = if half { Dtype::F16 } else { Dtype::F32 };
        (
            name.clone(),
            TensorView::new(dtype, shape.clone(), bytes).unwrap(),
        )
    });
    safetensors::tensor::serialize(views, None).unwrap()
}

fn rnn(prefix: &str, layers: usize, d: usize, m: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for k in 0..layers {
        let input = if k == 0 { d } else { m };
        out.push((format!("{prefix}weight_ih_l{k}"), vec![m, input]));
        out.push((format!("{prefix}weight_hh_l{k}"), vec![m, m]));
        out.push((format!("{prefix}bias_ih_l{k}"), vec![m]));
        out.push((format!("{prefix}bias_hh_l{k}"), vec![m]));
    }
    out
}

fn load(tensors: &[(String, Vec<usize>)]) -> Result<TorchRnn, RnnError> {
    let refs: Vec<(&str, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    TorchRnn::from_bytes(
        &safetensors_bytes(&refs, false),
        None,
        TorchRnnConfig::default(),
    )
}

fn expect_error(result: Result<TorchRnn, RnnError>, needle: &str) {
    match result {
        Ok(_) => panic!("expected an error containing {needle:?}"),
        Err(e) => assert!(e.to_string().contains(needle), "expected {needle:?} in {e}"),
    }
}

#[test]
fn malformed_files_and_tensors_are_refused() {
    let good = rnn("", 2, 3, 4);
    let rnn_ok = load(&good).unwrap();
    assert_eq!(
        (
            rnn_ok.num_layers(),
            rnn_ok.hidden_size(),
            rnn_ok.input_size()
        ),
        (2, 4, 3)
    );

    let bytes = safetensors_bytes(&[("weight_ih_l0", vec![4, 3])], false);
    expect_error(
        TorchRnn::from_bytes(&bytes[..bytes.len() - 3], None, Default::default()),
        "not a readable safetensors",
    );
    expect_error(
        TorchRnn::from_bytes(
            b"\xff\xff\xff\xff\xff\xff\xff\x7f{}",
            None,
            Default::default(),
        ),
        "not a readable",
    );
    expect_error(
        TorchRnn::from_bytes(b"", None, Default::default()),
        "not a readable",
    );

    expect_error(
        load(&[("linear.weight".into(), vec![2, 2])]),
        "no nn.RNN weights",
    );
    let mut two = rnn("a.", 1, 3, 4);
    two.extend(rnn("b.", 1, 3, 4));
    expect_error(load(&two), "several RNNs");
    let refs: Vec<(&str, Vec<usize>)> = two.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    let chosen = TorchRnn::from_bytes(
        &safetensors_bytes(&refs, false),
        Some("b."),
        Default::default(),
    )
    .unwrap();
    assert_eq!(chosen.num_layers(), 1);
    expect_error(
        TorchRnn::from_bytes(
            &safetensors_bytes(&refs, false),
            Some("c."),
            Default::default(),
        ),
        "no c.weight_ih_l0",
    );

    let mut missing = good.clone();
    missing.retain(|(n, _)| n != "weight_hh_l1");
    expect_error(load(&missing), "missing tensor weight_hh_l1");

    let mut lstm = good.clone();
    lstm[1].1 = vec![16, 4];
    expect_error(load(&lstm), "LSTM");

    let mut wrong_cols = good.clone();
    wrong_cols[4].1 = vec![4, 5];
    expect_error(
        load(&wrong_cols),
        "weight_ih_l1 has shape [4, 5], expected [4, 4]",
    );

    let mut extra_layer = good.clone();
    extra_layer.push(("bias_ih_l2".into(), vec![4]));
    expect_error(load(&extra_layer), "unexpected tensor bias_ih_l2");

    let mut half_reverse = good.clone();
    half_reverse.push(("weight_ih_l0_reverse".into(), vec![4, 3]));
    expect_error(load(&half_reverse), "missing tensor weight_hh_l0_reverse");

    let mut bad_bias = good.clone();
    bad_bias[2].1 = vec![5];
    expect_error(load(&bad_bias), "bias_ih_l0 has shape [5]");

    let refs: Vec<(&str, Vec<usize>)> = good.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    expect_error(
        TorchRnn::from_bytes(&safetensors_bytes(&refs, true), None, Default::default()),
        "float32",
    );
}

#[test]
fn bad_shapes_and_lengths_at_run_time() {
    let model = load(&rnn("", 2, 3, 4))
        .unwrap()
        .build(&Backend::Cpu)
        .unwrap();
    let x = Array3::<f32>::zeros((5, 2, 3)); // T × N × D
    assert!(model.forward(x.view(), None, Some(&[5, 3])).is_ok());
    for (lengths, needle) in [
        (&[0usize, 3][..], "lengths[0] is 0"),
        (&[6, 3][..], "lengths[0] is 6"),
        (&[5][..], "lengths"),
    ] {
        let e = model.forward(x.view(), None, Some(lengths)).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let h0 = Array3::<f32>::zeros((1, 2, 4));
    let e = model.forward(x.view(), Some(h0.view()), None).unwrap_err();
    assert!(e.to_string().contains("h_0"), "{e}");
    let e = model
        .forward(Array3::<f32>::zeros((5, 2, 7)).view(), None, None)
        .unwrap_err();
    assert!(e.to_string().contains("input"), "{e}");
}

#[test]
fn the_cli_runs_pytorch_models_and_reports_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let tensors = rnn("", 1, 3, 4);
    let refs: Vec<(&str, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    std::fs::write(p("m.safetensors"), safetensors_bytes(&refs, false)).unwrap();
    Array3::<f32>::zeros((5, 2, 3))
        .write_npy(std::fs::File::create(p("x.npy")).unwrap())
        .unwrap();
    Array1::from(vec![5i64, 2])
        .write_npy(std::fs::File::create(p("len.npy")).unwrap())
        .unwrap();
    Array1::from(vec![5i64, 9])
        .write_npy(std::fs::File::create(p("len_bad.npy")).unwrap())
        .unwrap();
    Array2::<f32>::zeros((2, 4))
        .write_npy(std::fs::File::create(p("h0_bad.npy")).unwrap())
        .unwrap();
    std::fs::write(p("junk.safetensors"), b"not a safetensors file").unwrap();

    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.success(), stderr)
    };
    let base = [
        "run",
        &p("m.safetensors"),
        &p("x.npy"),
        "-o",
        &p("y.npy"),
        "--backend",
        "cpu",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let ok = with(&[
        "--nonlinearity",
        "relu",
        "--lengths",
        &p("len.npy"),
        "--final-state",
        &p("h.npy"),
    ]);
    let (success, stderr) = run(&ok.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(success, "{stderr}");
    let out: Array3<f32> = wgpu_rnn::read_npy_f32(p("y.npy")).unwrap();
    assert_eq!(out.dim(), (5, 2, 4));
    let h_n: Array3<f32> = wgpu_rnn::read_npy_f32(p("h.npy")).unwrap();
    assert_eq!(h_n.dim(), (1, 2, 4));

    for (extra, needle) in [
        (vec![], "--nonlinearity"),
        (
            vec!["--nonlinearity", "tanh", "--activation", "relu"],
            "does not apply",
        ),
        (
            vec!["--nonlinearity", "tanh", "--lengths", &p("len_bad.npy")],
            "lengths[1] is 9",
        ),
        (
            vec![
                "--nonlinearity",
                "tanh",
                "--initial-state",
                &p("h0_bad.npy"),
            ],
            "axes",
        ),
    ] {
        let args = with(&extra);
        let (success, stderr) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!success, "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
    let (success, stderr) = run(&[
        "run",
        &p("junk.safetensors"),
        &p("x.npy"),
        "-o",
        &p("y.npy"),
        "--nonlinearity",
        "tanh",
    ]);
    assert!(
        !success && stderr.contains("junk.safetensors") && stderr.contains("not a readable"),
        "{stderr}"
    );
}

/// A float32 safetensors image of owned (name, shape) pairs.
fn file_of(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let refs: Vec<(&str, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    safetensors_bytes(&refs, false)
}

fn load_with(
    tensors: &[(String, Vec<usize>)],
    prefix: Option<&str>,
    ignore_unused: bool,
) -> Result<TorchRnn, RnnError> {
    let config = TorchRnnConfig {
        ignore_unused,
        ..Default::default()
    };
    TorchRnn::from_bytes(&file_of(tensors), prefix, config)
}

#[test]
fn a_weight_the_model_would_drop_is_refused() {
    // bias_hh without bias_ih: not a bias-free model.
    let mut half_bias = rnn("", 1, 3, 4);
    half_bias.retain(|(n, _)| n != "bias_ih_l0");
    expect_error(load(&half_bias), "missing tensor bias_ih_l0");
    let mut only_ih = rnn("", 1, 3, 4);
    only_ih.retain(|(n, _)| n != "bias_hh_l0");
    expect_error(load(&only_ih), "missing tensor bias_hh_l0");
    // Biases in layer 1 only: layer 0 says bias=False, so they would be dropped.
    let mut late_bias = rnn("", 2, 3, 4);
    late_bias.retain(|(n, _)| n != "bias_ih_l0" && n != "bias_hh_l0");
    expect_error(load(&late_bias), "bias_hh_l1");

    // A tensor that is no part of an nn.RNN: refused, unless asked to ignore it.
    let mut extra = rnn("", 1, 3, 4);
    extra.push(("linear.weight".into(), vec![2, 4]));
    expect_error(load(&extra), "unexpected tensor linear.weight");
    assert!(load_with(&extra, None, true).is_ok());

    // A found prefix with other modules beside it: only the RNN would run, so refused; naming
    // the prefix reads the RNN as one submodule (as load_state_dict on it after filtering the
    // keys by prefix), and other modules' tensors are theirs.
    let mut model = rnn("encoder.rnn.", 1, 3, 4);
    model.push(("decoder.weight".into(), vec![2, 4]));
    expect_error(load(&model), "--prefix");
    assert!(load_with(&model, Some("encoder.rnn."), false).is_ok());
    assert!(load_with(&model, None, true).is_ok());
    // Under the named prefix, strict still applies.
    model.push(("encoder.rnn.extra".into(), vec![1]));
    expect_error(
        load_with(&model, Some("encoder.rnn."), false),
        "unexpected tensor encoder.rnn.extra",
    );
}

#[test]
fn many_layers_load_in_linear_time() {
    // 20,000 layers of one unit: 80,000 tensors. A scan of every name per layer (as before)
    // takes minutes here; a lookup per tensor takes a fraction of a second.
    let layers = 20_000;
    let tensors = rnn("", layers, 1, 1);
    let model = load(&tensors).unwrap();
    assert_eq!(model.num_layers(), layers);
    let mut extra = tensors;
    extra.push(("bias_ih_l20000".into(), vec![1]));
    expect_error(load(&extra), "unexpected tensor bias_ih_l20000");
}

#[test]
fn shape_messages_name_the_real_fault() {
    // A weight_hh that is not square: the shape itself is wrong, whatever M is.
    let mut not_square = rnn("", 1, 3, 4);
    not_square[1].1 = vec![4, 5];
    let err = load(&not_square).unwrap_err().to_string();
    assert!(
        err.contains("weight_hh_l0 has shape [4, 5]") && err.contains("square"),
        "{err}"
    );
    assert!(!err.contains("expected [5, 5]"), "{err}");

    // A reverse direction that takes another input size than the forward one.
    let mut bi = rnn("", 1, 3, 4);
    bi.push(("weight_ih_l0_reverse".into(), vec![4, 5]));
    bi.push(("weight_hh_l0_reverse".into(), vec![4, 4]));
    bi.push(("bias_ih_l0_reverse".into(), vec![4]));
    bi.push(("bias_hh_l0_reverse".into(), vec![4]));
    expect_error(
        load(&bi),
        "weight_ih_l0_reverse has shape [4, 5], expected [4, 3]",
    );

    // The input is quoted in the caller's order (time-first here), not transposed.
    let model = load(&rnn("", 1, 3, 4))
        .unwrap()
        .build(&Backend::Cpu)
        .unwrap();
    let err = model
        .forward(Array3::<f32>::zeros((5, 2, 7)).view(), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[5, 2, 7]") && err.contains("T × N × D"),
        "{err}"
    );
}

#[test]
fn the_cli_refuses_unused_tensors_unless_told_to_ignore_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let mut tensors = rnn("", 1, 3, 4);
    tensors.push(("head.weight".into(), vec![2, 4]));
    std::fs::write(p("m.safetensors"), file_of(&tensors)).unwrap();
    Array3::<f32>::zeros((5, 2, 3))
        .write_npy(std::fs::File::create(p("x.npy")).unwrap())
        .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
            .args(["run", &p("m.safetensors"), &p("x.npy"), "-o", &p("y.npy")])
            .args(["--nonlinearity", "tanh", "--backend", "cpu"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(&[]);
    assert!(!ok && stderr.contains("head.weight"), "{stderr}");
    let (ok, stderr) = run(&["--ignore-unused"]);
    assert!(ok, "{stderr}");
}
