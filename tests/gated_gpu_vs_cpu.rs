//! LSTM and GRU on the GPU against the CPU path on random layers and inputs: every direction and
//! output order, masks and lengths, initial h and c, chunked runs, long and wide shapes, under
//! every step strategy (gated cells run the per-step path under each), with ONNX's options
//! (peepholes, input_forget, a cell state activation of its own, clip).

mod common;

use common::{assert_close, context, gpu_with, rng, uniform2, uniform3};
use ndarray::{Array1, Array2};
use rand::RngExt;
use rand::rngs::StdRng;
use wgpu_rnn::{
    Activation, Cell, CpuRnn, GpuOptions, GpuRnn, OutputOrder, Padding, RnnOutput, SimpleRnn,
    SimpleRnnConfig, StepStrategy,
};

const CELLS: [Cell; 3] = [Cell::Lstm, Cell::Gru, Cell::GruResetBefore];

const STRATEGIES: [StepStrategy; 3] = [
    StepStrategy::Auto,
    StepStrategy::PerStep,
    StepStrategy::Persistent,
];

fn gated_layer(
    r: &mut StdRng,
    cell: Cell,
    (d, m): (usize, usize),
    bias: bool,
    config: SimpleRnnConfig,
) -> SimpleRnn {
    let g = cell.gates();
    let kernel = uniform2(r, (d, g * m), 1.0 / (d as f32).sqrt());
    let recurrent = uniform2(r, (m, g * m), 1.0 / (m as f32).sqrt());
    let mut vector = |len| Array1::from_shape_simple_fn(len, || r.random_range(-0.5..0.5));
    let b = bias.then(|| vector(g * m));
    let rb = (bias && cell == Cell::Gru).then(|| vector(g * m));
    SimpleRnn::gated(cell, kernel, recurrent, b, rb, config).unwrap()
}

fn same(got: &RnnOutput, want: &RnnOutput, what: &str) {
    assert_close(got.output(), want.output(), what);
    assert_close(
        got.final_state.view().into_dyn(),
        want.final_state.view().into_dyn(),
        what,
    );
    match (&got.final_cell, &want.final_cell) {
        (Some(g), Some(w)) => assert_close(g.view().into_dyn(), w.view().into_dyn(), what),
        (None, None) => {}
        _ => panic!("{what}: one backend returned a cell state, the other none"),
    }
}

#[test]
fn lstm_and_gru_match_the_cpu_in_every_direction_with_padding_and_initial_states() {
    let mut r = rng(1);
    let (n, t, d, m) = (5, 9, 4, 7);
    let lengths = [9, 1, 4, 9, 6];
    let mask = Array2::from_shape_fn((n, t), |(b, _)| b == 3 || r.random_range(0.0..1.0) < 0.7);
    for cell in CELLS {
        for (i, (go_backwards, return_sequences, order)) in [
            (false, true, OutputOrder::Processing),
            (true, true, OutputOrder::Processing),
            (true, true, OutputOrder::Input),
            (false, false, OutputOrder::Processing),
        ]
        .into_iter()
        .enumerate()
        {
            let config = SimpleRnnConfig {
                go_backwards,
                return_sequences,
                output_order: order,
                zero_output_for_mask: i == 1,
                ..Default::default()
            };
            let layer = gated_layer(&mut r, cell, (d, m), i != 3, config);
            let x = uniform3(&mut r, (n, t, d), 1.5);
            let h0 = uniform2(&mut r, (n, m), 0.8);
            let c0 = (cell == Cell::Lstm).then(|| uniform2(&mut r, (n, m), 0.8));
            let cpu = CpuRnn::new(layer.clone());
            for strategy in STRATEGIES {
                let gpu = GpuRnn::new(gpu_with(strategy), layer.clone()).unwrap();
                for padding in [
                    Padding::None,
                    Padding::Lengths(&lengths),
                    Padding::Mask(mask.view()),
                ] {
                    let what = format!("{cell} {strategy:?} {config:?} {padding:?}");
                    let c0 = c0.as_ref().map(|c| c.view());
                    let want = cpu
                        .forward_states(x.view(), Some(h0.view()), c0, padding)
                        .unwrap();
                    let got = gpu
                        .forward_states(x.view(), Some(h0.view()), c0, padding)
                        .unwrap();
                    same(&got, &want, &what);
                }
            }
        }
    }
}

#[test]
fn every_activation_pair_of_a_gated_cell() {
    let mut r = rng(2);
    for cell in CELLS {
        for (activation, recurrent_activation) in [
            (Activation::Tanh, Activation::Sigmoid),
            (Activation::Relu, Activation::KERAS_HARD_SIGMOID),
            (Activation::Softsign, Activation::HardSilu),
            (Activation::Elu { alpha: 0.5 }, Activation::Tanh),
        ] {
            let config = SimpleRnnConfig {
                activation,
                recurrent_activation,
                return_sequences: true,
                ..Default::default()
            };
            let layer = gated_layer(&mut r, cell, (3, 5), true, config);
            let x = uniform3(&mut r, (2, 6, 3), 1.5);
            let want = CpuRnn::new(layer.clone()).forward(x.view(), None).unwrap();
            let got = GpuRnn::new(gpu_with(StepStrategy::Auto), layer)
                .unwrap()
                .forward(x.view(), None)
                .unwrap();
            same(
                &got,
                &want,
                &format!("{cell} {activation} {recurrent_activation}"),
            );
        }
    }
}

#[test]
fn long_wide_and_chunked_gated_layers_match_the_cpu() {
    let mut r = rng(3);
    let small_chunks = context(GpuOptions {
        max_chunk_bytes: Some(4096),
        ..Default::default()
    });
    for cell in CELLS {
        let config = SimpleRnnConfig {
            return_sequences: true,
            ..Default::default()
        };
        // The last two cut each step's product into two spans of its depth.
        for (n, t, d, m) in [
            (2, 2000, 3, 16),
            (4, 1200, 8, 64),
            (1, 20, 8, 300),
            (3, 5, 600, 9),
            (1, 60, 2100, 1024),
            (2, 3, 5, 2040),
        ] {
            let layer = gated_layer(&mut r, cell, (d, m), true, config);
            let x = uniform3(&mut r, (n, t, d), 1.0);
            let want = CpuRnn::new(layer.clone()).forward(x.view(), None).unwrap();
            let got = GpuRnn::new(gpu_with(StepStrategy::Auto), layer.clone())
                .unwrap()
                .forward(x.view(), None)
                .unwrap();
            same(&got, &want, &format!("{cell} N={n} T={t} D={d} M={m}"));
        }
        // Many chunks over time and batch carry h and c between them on the GPU.
        let layer = gated_layer(&mut r, cell, (4, 12), true, config);
        let x = uniform3(&mut r, (20, 30, 4), 1.0);
        let want = CpuRnn::new(layer.clone()).forward(x.view(), None).unwrap();
        let got = GpuRnn::new(&small_chunks, layer)
            .unwrap()
            .forward(x.view(), None)
            .unwrap();
        same(&got, &want, &format!("{cell} chunked"));
    }
}

/// Batches past 32 rows take the fused step's tile of four rows per thread (and several row
/// tiles, the last one partial); the persistent kernel at such batches too, with a mask.
#[test]
fn large_batches_match_the_cpu_under_every_strategy() {
    let mut r = rng(11);
    let config = SimpleRnnConfig {
        return_sequences: true,
        ..Default::default()
    };
    for cell in CELLS {
        for (n, t, d, m) in [(37, 30, 8, 70), (130, 12, 16, 200)] {
            let layer = gated_layer(&mut r, cell, (d, m), true, config);
            let x = uniform3(&mut r, (n, t, d), 1.0);
            let h0 = uniform2(&mut r, (n, m), 0.8);
            let mask = Array2::from_shape_fn((n, t), |(b, s)| (b * 7 + s * 3) % 5 != 0);
            let cpu = CpuRnn::new(layer.clone());
            let want = cpu
                .forward_padded(x.view(), Some(h0.view()), Padding::Mask(mask.view()))
                .unwrap();
            for strategy in STRATEGIES {
                let got = GpuRnn::new(gpu_with(strategy), layer.clone())
                    .unwrap()
                    .forward_padded(x.view(), Some(h0.view()), Padding::Mask(mask.view()))
                    .unwrap();
                same(
                    &got,
                    &want,
                    &format!("{cell} {strategy:?} N={n} T={t} M={m}"),
                );
            }
        }
    }
}

#[test]
fn bad_gated_layers_and_states_are_clear_errors() {
    let mut r = rng(4);
    // Kernel columns that are not a multiple of the gates.
    let e = SimpleRnn::gated(
        Cell::Lstm,
        uniform2(&mut r, (3, 10), 1.0),
        uniform2(&mut r, (2, 8), 1.0),
        None,
        None,
        SimpleRnnConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("4·M"), "{e}");
    // A recurrent kernel that is not M × G·M.
    let e = SimpleRnn::gated(
        Cell::Gru,
        uniform2(&mut r, (3, 12), 1.0),
        uniform2(&mut r, (4, 4), 1.0),
        None,
        None,
        SimpleRnnConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("recurrent_kernel"), "{e}");
    // Softmax on a gated cell, a recurrent bias on an LSTM.
    let softmax = SimpleRnnConfig {
        activation: Activation::Softmax,
        ..Default::default()
    };
    assert!(
        SimpleRnn::gated(
            Cell::Lstm,
            uniform2(&mut r, (3, 8), 1.0),
            uniform2(&mut r, (2, 8), 1.0),
            None,
            None,
            softmax,
        )
        .is_err()
    );
    assert!(
        SimpleRnn::gated(
            Cell::Lstm,
            uniform2(&mut r, (3, 8), 1.0),
            uniform2(&mut r, (2, 8), 1.0),
            None,
            Some(Array1::zeros(8)),
            SimpleRnnConfig::default(),
        )
        .is_err()
    );
    // A cell state for a GRU, a misshapen one for an LSTM, on both backends.
    let gru = gated_layer(&mut r, Cell::Gru, (3, 4), true, SimpleRnnConfig::default());
    let lstm = gated_layer(&mut r, Cell::Lstm, (3, 4), true, SimpleRnnConfig::default());
    let x = uniform3(&mut r, (2, 5, 3), 1.0);
    let c = uniform2(&mut r, (2, 4), 1.0);
    let bad_c = uniform2(&mut r, (2, 5), 1.0);
    for (layer, c) in [(&gru, &c), (&lstm, &bad_c)] {
        let cpu = CpuRnn::new(layer.clone()).forward_states(
            x.view(),
            None,
            Some(c.view()),
            Padding::None,
        );
        let gpu = GpuRnn::new(gpu_with(StepStrategy::Auto), layer.clone())
            .unwrap()
            .forward_states(x.view(), None, Some(c.view()), Padding::None);
        assert!(cpu.is_err() && gpu.is_err());
    }
}

#[test]
fn onnx_options_of_a_gated_cell_match_the_cpu() {
    let mut r = rng(5);
    let (n, t, d, m) = (3, 40, 5, 70);
    let lengths = [40, 1, 23];
    for cell in CELLS {
        for (i, clip) in [None, Some(0.6)].into_iter().enumerate() {
            let lstm = cell == Cell::Lstm;
            let config = SimpleRnnConfig {
                clip,
                return_sequences: true,
                go_backwards: i == 1,
                output_order: OutputOrder::Input,
                input_forget: lstm && i == 1,
                output_activation: lstm.then_some(Activation::Softsign),
                recurrent_activation: Activation::HardSigmoid {
                    alpha: 0.3,
                    beta: 0.4,
                },
                ..Default::default()
            };
            let mut layer = gated_layer(&mut r, cell, (d, m), true, config);
            if lstm {
                let p = Array1::from_shape_simple_fn(3 * m, || r.random_range(-0.7..0.7));
                layer = layer.with_peepholes(p).unwrap();
            }
            let x = uniform3(&mut r, (n, t, d), 1.5);
            let h0 = uniform2(&mut r, (n, m), 0.8);
            let c0 = lstm.then(|| uniform2(&mut r, (n, m), 0.8));
            let c0 = c0.as_ref().map(|c| c.view());
            let padding = Padding::Lengths(&lengths);
            let want = CpuRnn::new(layer.clone())
                .forward_states(x.view(), Some(h0.view()), c0, padding)
                .unwrap();
            for strategy in STRATEGIES {
                let got = GpuRnn::new(gpu_with(strategy), layer.clone())
                    .unwrap()
                    .forward_states(x.view(), Some(h0.view()), c0, padding)
                    .unwrap();
                same(&got, &want, &format!("{cell} {strategy:?} {config:?}"));
            }
        }
    }
}

#[test]
fn a_projected_lstm_matches_the_cpu() {
    let mut r = rng(6);
    let mask = Array2::from_shape_fn((3, 50), |(b, _)| b == 0 || r.random_range(0.0..1.0) < 0.7);
    let lengths = [50, 1, 31];
    // The last shape cuts the projection's product (depth M) into two spans.
    for (n, t, d, m, p) in [(3, 50, 5, 24, 7), (2, 1500, 4, 64, 16), (2, 3, 5, 2040, 9)] {
        let config = SimpleRnnConfig {
            return_sequences: true,
            go_backwards: m == 24,
            ..Default::default()
        };
        let kernel = uniform2(&mut r, (d, 4 * m), 1.0 / (d as f32).sqrt());
        let recurrent = uniform2(&mut r, (p, 4 * m), 1.0 / (p as f32).sqrt());
        let projection = uniform2(&mut r, (m, p), 1.5 / (m as f32).sqrt());
        let bias = Array1::from_shape_simple_fn(4 * m, || r.random_range(-0.5..0.5));
        let layer =
            SimpleRnn::projected_lstm(kernel, recurrent, Some(bias), projection, config).unwrap();
        assert_eq!((layer.units(), layer.state_size()), (m, p));
        let x = uniform3(&mut r, (n, t, d), 1.0);
        let h0 = uniform2(&mut r, (n, p), 0.8);
        let c0 = uniform2(&mut r, (n, m), 0.8);
        let paddings = if t == 50 {
            vec![
                Padding::None,
                Padding::Mask(mask.view()),
                Padding::Lengths(&lengths),
            ]
        } else {
            vec![Padding::None]
        };
        for padding in paddings {
            let want = CpuRnn::new(layer.clone())
                .forward_states(x.view(), Some(h0.view()), Some(c0.view()), padding)
                .unwrap();
            assert_eq!(want.final_state.dim(), (n, p));
            assert_eq!(want.final_cell.as_ref().unwrap().dim(), (n, m));
            for strategy in STRATEGIES {
                let got = GpuRnn::new(gpu_with(strategy), layer.clone())
                    .unwrap()
                    .forward_states(x.view(), Some(h0.view()), Some(c0.view()), padding)
                    .unwrap();
                same(
                    &got,
                    &want,
                    &format!("projected LSTM {n}×{t}×{d}, M={m}, P={p} {strategy:?} {padding:?}"),
                );
            }
        }
    }
    // Shapes that do not fit are errors naming what is wrong.
    let e = SimpleRnn::projected_lstm(
        Array2::zeros((3, 16)),
        Array2::zeros((4, 16)),
        None,
        Array2::zeros((4, 2)),
        SimpleRnnConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("recurrent_kernel"), "{e}");
}
