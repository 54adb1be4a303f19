//! The GPU path on long and wide inputs, where a kernel that loops too long in one invocation or
//! one dispatch goes wrong: lavapipe silently leaves any shader loop once an invocation has run
//! about 65,536 iterations in all, and real drivers reset a GPU whose dispatch runs too long.
//! Every shape runs under every step strategy against the CPU path, and the tanh ones against a
//! float64 reference computed here; the sizes cross the old limits (T in the thousands at N = 1..4,
//! M = 1024, D ≥ 2·M) at small cost.

mod common;

use common::{
    assert_close, assert_same_output, contexts_for, gpu_with, random_layer, rng, uniform2, uniform3,
};
use ndarray::{Array2, Array3, ArrayD};
use rand::RngExt;
use wgpu_rnn::{
    Activation, Backend, CpuRnn, GpuRnn, KerasModel, KerasRunner, NpyInput, Padding, SimpleRnn,
    SimpleRnnConfig, StepStrategy, read_npy_f32, read_npy_input,
};

const EVERY_STRATEGY: [StepStrategy; 4] = [
    StepStrategy::Auto,
    StepStrategy::PerStep,
    StepStrategy::Persistent,
    StepStrategy::Sliced,
];

/// `h_t = tanh(x_t · kernel + bias + h_{t-1} · recurrent_kernel)` in float64: the sequence
/// (*N* × *T* × *M*) and the final state.
fn tanh_reference_f64(
    layer: &SimpleRnn,
    x: &Array3<f32>,
    h0: Option<&Array2<f32>>,
) -> (Array3<f64>, Array2<f64>) {
    let (n, t, d) = x.dim();
    let m = layer.units();
    let w = layer.kernel().mapv(f64::from);
    let u = layer.recurrent_kernel().mapv(f64::from);
    let b: Vec<f64> = match layer.bias() {
        Some(b) => b.iter().map(|v| f64::from(*v)).collect(),
        None => vec![0.0; m],
    };
    let mut seq = Array3::<f64>::zeros((n, t, m));
    let mut state = match h0 {
        Some(h) => h.mapv(f64::from),
        None => Array2::zeros((n, m)),
    };
    for row in 0..n {
        let mut h: Vec<f64> = state.row(row).to_vec();
        for s in 0..t {
            let mut next = b.clone();
            for k in 0..d {
                let xv = f64::from(x[[row, s, k]]);
                for (c, v) in next.iter_mut().enumerate() {
                    *v += xv * w[[k, c]];
                }
            }
            for (k, hk) in h.iter().enumerate() {
                for (c, v) in next.iter_mut().enumerate() {
                    *v += hk * u[[k, c]];
                }
            }
            next.iter_mut().for_each(|v| *v = v.tanh());
            seq.slice_mut(ndarray::s![row, s, ..])
                .iter_mut()
                .zip(&next)
                .for_each(|(o, v)| *o = *v);
            h = next;
        }
        state
            .row_mut(row)
            .iter_mut()
            .zip(&h)
            .for_each(|(o, v)| *o = *v);
    }
    (seq, state)
}

/// One random tanh layer with `return_sequences` on a random (N, T, D, M) input: the CPU path
/// against float64, then the GPU under every strategy against the CPU path and float64.
fn long_case((n, t, d, m): (usize, usize, usize, usize), seed: u64) {
    let mut r = rng(seed);
    let config = SimpleRnnConfig {
        return_sequences: true,
        ..Default::default()
    };
    let layer = random_layer(&mut r, d, m, true, config);
    let x = uniform3(&mut r, (n, t, d), 1.5);
    let h0 = uniform2(&mut r, (n, m), 1.0);
    let (seq64, state64) = tanh_reference_f64(&layer, &x, Some(&h0));
    let (seq64, state64) = (seq64.mapv(|v| v as f32), state64.mapv(|v| v as f32));
    let cpu = CpuRnn::new(layer.clone())
        .forward(x.view(), Some(h0.view()))
        .unwrap();
    let shape = format!("N={n} T={t} D={d} M={m}");
    assert_close(
        cpu.output(),
        seq64.view().into_dyn(),
        &format!("cpu {shape}"),
    );
    for (strategy, ctx) in contexts_for(&EVERY_STRATEGY) {
        let what = format!("{strategy} {shape}");
        let g = GpuRnn::new(ctx, layer.clone())
            .unwrap()
            .forward(x.view(), Some(h0.view()))
            .unwrap();
        assert_same_output(&g, &cpu, &what);
        assert_close(
            g.output(),
            seq64.view().into_dyn(),
            &format!("{what} vs f64"),
        );
        assert_close(
            g.final_state.view().into_dyn(),
            state64.view().into_dyn(),
            &format!("{what} final state vs f64"),
        );
    }
}

#[test]
fn thousands_of_steps_at_small_batches() {
    long_case((1, 3000, 4, 64), 1);
    long_case((2, 4000, 3, 16), 2);
    long_case((4, 1200, 5, 64), 3);
    // The widest layer whose U the persistent kernel keeps in registers, over three of its
    // dispatches, with an input twice as wide; and a width of no whole slice or quad.
    long_case((1, 2500, 260, 128), 11);
    long_case((3, 2000, 7, 101), 12);
}

#[test]
fn hundreds_of_steps_at_wider_states() {
    long_case((1, 300, 6, 256), 4);
    long_case((2, 600, 4, 128), 5);
}

#[test]
fn a_thousand_and_twenty_four_units_at_one_row() {
    long_case((1, 40, 8, 1024), 6);
}

#[test]
fn inputs_wider_than_twice_the_units() {
    long_case((2, 40, 2048, 1024), 7);
    long_case((3, 300, 200, 64), 8);
    long_case((2, 20, 20_000, 8), 9);
}

#[test]
fn an_input_of_over_a_million_features() {
    // 75,000 slabs of K: past lavapipe's loop cap in one invocation unless K is split.
    long_case((1, 2, 1_200_000, 4), 10);
}

#[test]
fn long_row_wise_softmax_and_masks_under_every_strategy() {
    let mut r = rng(20);
    let (n, t, d, m) = (3, 2500, 3, 24);
    for activation in [Activation::Softmax, Activation::Tanh] {
        let config = SimpleRnnConfig {
            activation,
            return_sequences: true,
            ..Default::default()
        };
        let layer = random_layer(&mut r, d, m, true, config);
        let x = uniform3(&mut r, (n, t, d), 1.5);
        let lengths = [t, 1700, 2333];
        let mask = Array2::from_shape_fn((n, t), |_| r.random_range(0.0..1.0) < 0.8);
        let cpu = CpuRnn::new(layer.clone());
        for (strategy, ctx) in contexts_for(&EVERY_STRATEGY) {
            let g = GpuRnn::new(ctx, layer.clone()).unwrap();
            for padding in [
                Padding::None,
                Padding::Lengths(&lengths),
                Padding::Mask(mask.view()),
            ] {
                let what = format!("{strategy} {activation:?} {padding:?}");
                let want = cpu.forward_padded(x.view(), None, padding).unwrap();
                let got = g.forward_padded(x.view(), None, padding).unwrap();
                assert_same_output(&got, &want, &what);
            }
        }
    }
}

/// The demo model (Embedding with mask_zero → SimpleRNN(16) → Dense(2, softmax)) on four reviews
/// of 4,000 token ids (one post-padded, one pre-padded), whole-model on the device and layer by
/// layer, under every strategy, against what Keras predicted and a float64 evaluation of the same
/// weights (tests/fixtures/keras_models/demo_long.py wrote both).
#[test]
fn the_demo_model_on_four_thousand_tokens_matches_keras_on_every_path() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras_models");
    let model = KerasModel::load(dir.join("demo_text/model.keras")).unwrap();
    let ids: ArrayD<i64> = match read_npy_input(dir.join("demo_long/input.npy")).unwrap() {
        NpyInput::Int(ids) => ids,
        NpyInput::Float(_) => panic!("the demo input holds token ids"),
    };
    assert_eq!(ids.shape(), &[4, 4000]);
    let keras: ArrayD<f32> = read_npy_f32(dir.join("demo_long/output.npy")).unwrap();
    let exact: ArrayD<f32> = read_npy_f32(dir.join("demo_long/output_f64.npy")).unwrap();
    let predict = |runner: &mut KerasRunner| -> ArrayD<f32> {
        runner.predict_ids(ids.view()).unwrap().outputs.remove(0)
    };
    let cpu = predict(&mut KerasRunner::new(model.clone(), &Backend::Cpu).unwrap());
    assert_close(cpu.view(), keras.view(), "demo, 4,000 tokens, cpu vs Keras");
    assert_close(cpu.view(), exact.view(), "demo, 4,000 tokens, cpu vs f64");
    for strategy in EVERY_STRATEGY {
        let backend = Backend::Gpu(gpu_with(strategy).clone());
        for resident in [true, false] {
            let mut runner = KerasRunner::new(model.clone(), &backend).unwrap();
            runner.set_device_resident(resident);
            let got = predict(&mut runner);
            assert_eq!(runner.is_device_resident(), resident);
            let what = format!("demo, 4,000 tokens, {strategy:?}, resident {resident}");
            assert_close(got.view(), keras.view(), &format!("{what} vs Keras"));
            assert_close(got.view(), exact.view(), &format!("{what} vs f64"));
        }
    }
}
