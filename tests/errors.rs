//! Bad input gets a clear error, never a panic: through the library and through the command line.

mod common;

use std::path::Path;
use std::process::Command;

use common::gpu;
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use wgpu_rnn::{Activation, CpuRnn, GpuRnn, RnnError, SimpleRnn, SimpleRnnConfig};

fn layer(d: usize, m: usize) -> SimpleRnn {
    SimpleRnn::new(
        Array2::from_elem((d, m), 0.1),
        Array2::from_elem((m, m), 0.1),
        Some(Array1::zeros(m)),
        SimpleRnnConfig::default(),
    )
    .unwrap()
}

#[test]
fn inconsistent_weights_are_refused() {
    let err = SimpleRnn::new(
        Array2::zeros((3, 4)),
        Array2::zeros((4, 5)),
        None,
        Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("recurrent_kernel"), "{err}");
    let err = SimpleRnn::new(
        Array2::zeros((3, 4)),
        Array2::zeros((4, 4)),
        Some(Array1::zeros(3)),
        Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    let err = SimpleRnn::new(
        Array2::zeros((3, 0)),
        Array2::zeros((0, 0)),
        None,
        Default::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RnnError::EmptyDimension { .. }), "{err}");
}

#[test]
fn slopes_per_unit_are_refused_where_they_mean_nothing() {
    let slopes = |m| Array1::from_elem(m, 0.3);
    // The activation is not leaky_relu, whose slopes they are.
    let err = layer(3, 4).with_unit_slopes(slopes(4)).unwrap_err();
    assert!(err.to_string().contains("leaky_relu"), "{err}");
    let leaky = SimpleRnnConfig {
        activation: Activation::LeakyRelu {
            negative_slope: 0.0,
        },
        ..Default::default()
    };
    let with_slopes = layer(3, 4).with_config(leaky).unwrap();
    let err = with_slopes.clone().with_unit_slopes(slopes(3)).unwrap_err();
    assert!(matches!(err, RnnError::ShapeMismatch { .. }), "{err}");
    let sloped = with_slopes.with_unit_slopes(slopes(1)).unwrap();
    let err = sloped.with_config(SimpleRnnConfig::default()).unwrap_err();
    assert!(err.to_string().contains("tanh"), "{err}");
    // A gated cell applies one activation to every unit.
    let lstm = SimpleRnn::gated(
        wgpu_rnn::Cell::Lstm,
        Array2::zeros((3, 16)),
        Array2::zeros((4, 16)),
        None,
        None,
        leaky,
    )
    .unwrap();
    let err = lstm.with_unit_slopes(slopes(4)).unwrap_err();
    assert!(err.to_string().contains("LSTM"), "{err}");
}

#[test]
fn bad_inputs_are_errors_on_both_backends() {
    let gpu_model = GpuRnn::new(gpu(), layer(3, 4)).unwrap();
    let cpu_model = CpuRnn::new(layer(3, 4));
    let bad_inputs = [
        (Array3::<f32>::zeros((2, 5, 2)), None, "input"),
        (Array3::<f32>::zeros((0, 5, 3)), None, "batch size N"),
        (Array3::<f32>::zeros((2, 0, 3)), None, "time steps T"),
        (
            Array3::<f32>::zeros((2, 5, 3)),
            Some(Array2::<f32>::zeros((3, 4))),
            "initial state",
        ),
        (
            Array3::<f32>::zeros((2, 5, 3)),
            Some(Array2::<f32>::zeros((2, 5))),
            "initial state",
        ),
    ];
    for (x, h0, needle) in &bad_inputs {
        let h0 = h0.as_ref().map(|h| h.view());
        let e = gpu_model.forward(x.view(), h0).unwrap_err();
        assert!(e.to_string().contains(needle), "gpu: {e}");
        let e = cpu_model.forward(x.view(), h0).unwrap_err();
        assert!(e.to_string().contains(needle), "cpu: {e}");
    }
    // The model still works after refusing bad input.
    let ok = gpu_model
        .forward(Array3::zeros((2, 5, 3)).view(), None)
        .unwrap();
    assert_eq!(ok.final_state.dim(), (2, 4));
}

#[test]
fn unknown_activation_is_named() {
    let e = Activation::from_keras_name("tahn").unwrap_err();
    assert!(
        e.to_string().contains("tahn") && e.to_string().contains("tanh"),
        "{e}"
    );
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    (out.status.success(), stderr)
}

fn write_npz(path: &Path, arrays: &[(&str, ndarray::ArrayD<f32>)]) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    for (name, a) in arrays {
        npz.add_array(*name, a).unwrap();
    }
    npz.finish().unwrap();
}

fn write_npy<T: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    a: &ndarray::Array<T, D>,
) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn the_cli_reports_bad_files_and_shapes_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let good = [
        ("arr_0", Array2::<f32>::zeros((3, 4)).into_dyn()),
        ("arr_1", Array2::<f32>::zeros((4, 4)).into_dyn()),
        ("arr_2", Array1::<f32>::zeros(4).into_dyn()),
    ];
    write_npz(Path::new(&p("good.npz")), &good);
    write_npz(
        Path::new(&p("not_square.npz")),
        &[
            ("arr_0", Array2::<f32>::zeros((3, 4)).into_dyn()),
            ("arr_1", Array2::<f32>::zeros((4, 3)).into_dyn()),
        ],
    );
    write_npz(
        Path::new(&p("bias.npz")),
        &[
            good[0].clone(),
            good[1].clone(),
            ("arr_2", Array1::<f32>::zeros(5).into_dyn()),
        ],
    );
    write_npz(Path::new(&p("incomplete.npz")), &[good[0].clone()]);
    let bytes = std::fs::read(p("good.npz")).unwrap();
    std::fs::write(p("truncated.npz"), &bytes[..bytes.len() / 2]).unwrap();
    write_npy(Path::new(&p("x.npy")), &Array3::<f32>::zeros((2, 5, 3)));
    write_npy(Path::new(&p("x64.npy")), &Array3::<f64>::zeros((2, 5, 3)));
    write_npy(
        Path::new(&p("x_wrong_d.npy")),
        &Array3::<f32>::zeros((2, 5, 2)),
    );
    write_npy(Path::new(&p("x_int.npy")), &Array3::<i32>::zeros((2, 5, 3)));
    write_npy(Path::new(&p("x_2d.npy")), &Array2::<f32>::zeros((5, 3)));
    write_npy(
        Path::new(&p("x_empty.npy")),
        &Array3::<f32>::zeros((0, 5, 3)),
    );
    write_npy(Path::new(&p("h0_wrong.npy")), &Array2::<f32>::zeros((3, 4)));
    let out = p("out.npy");

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![p("missing.npz"), p("x.npy")], "missing.npz"),
        (vec![p("truncated.npz"), p("x.npy")], "not a readable .npz"),
        (vec![p("incomplete.npz"), p("x.npy")], "expected arrays"),
        (vec![p("not_square.npz"), p("x.npy")], "recurrent_kernel"),
        (vec![p("bias.npz"), p("x.npy")], "bias"),
        (
            vec![p("good.npz"), p("x_wrong_d.npy")],
            "input has shape [2, 5, 2]",
        ),
        (vec![p("good.npz"), p("x_int.npy")], "dtype"),
        (vec![p("good.npz"), p("x_2d.npy")], "axes"),
        (vec![p("good.npz"), p("x_empty.npy")], "batch size N"),
        (
            vec![
                p("good.npz"),
                p("x.npy"),
                "--activation".into(),
                "tahn".into(),
            ],
            "unknown activation",
        ),
        (
            vec![
                p("good.npz"),
                p("x.npy"),
                "--initial-state".into(),
                p("h0_wrong.npy"),
            ],
            "initial state",
        ),
    ];
    for (args, needle) in cases {
        for backend in ["cpu", "gpu"] {
            let mut full = vec!["run".to_string()];
            full.extend(args.iter().cloned());
            full.extend(["-o".into(), out.clone(), "--backend".into(), backend.into()]);
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            let (ok, stderr) = cli(&refs);
            assert!(!ok, "{full:?} succeeded");
            assert!(
                stderr.contains(needle),
                "{full:?}: expected {needle:?} in {stderr:?}"
            );
        }
    }

    // float64 input is accepted and converted.
    let (ok, stderr) = cli(&[
        "run",
        &p("good.npz"),
        &p("x64.npy"),
        "-o",
        &out,
        "--backend",
        "cpu",
    ]);
    assert!(ok, "{stderr}");
}
