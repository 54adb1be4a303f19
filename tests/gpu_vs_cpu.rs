//! The GPU path against the CPU reference on random inputs over many shapes, including awkward
//! ones, every activation, chunked runs, and one model shared by several threads. Every
//! comparison runs under each explicit step strategy (the per-step kernel with the tile picked
//! for the device, the persistent kernel, the per-step kernel sliced for many workgroups with
//! split-K), each on its own context.

mod common;

use common::{
    assert_close, assert_same_output, context, contexts_for, gpu, random_layer, rng, uniform2,
    uniform3,
};
use ndarray::{Array1, Array2};
use rand::RngExt;
use rand::rngs::StdRng;
use wgpu_rnn::{
    Activation, CpuRnn, GpuOptions, GpuRnn, OutputOrder, Padding, SimpleRnn, SimpleRnnConfig,
    StepStrategy,
};

const STRATEGIES: [StepStrategy; 3] = [
    StepStrategy::PerStep,
    StepStrategy::Persistent,
    StepStrategy::Sliced,
];

/// Runs one random layer and input through the CPU and through the GPU under each strategy:
/// (N, T, D, M), then the options.
fn compare(
    (n, t, d, m): (usize, usize, usize, usize),
    config: SimpleRnnConfig,
    bias: bool,
    with_h0: bool,
    seed: u64,
) {
    let mut r = rng(seed);
    let layer = random_layer(&mut r, d, m, bias, config);
    compare_layer(layer, n, t, with_h0, &mut r, &format!("bias={bias}"));
}

/// [`compare`] for a given layer, on a random input of `n` rows and `t` steps.
fn compare_layer(layer: SimpleRnn, n: usize, t: usize, with_h0: bool, r: &mut StdRng, note: &str) {
    let (d, m) = (layer.input_dim(), layer.units());
    let config = *layer.config();
    let x = uniform3(r, (n, t, d), 2.0);
    let h0 = with_h0.then(|| uniform2(r, (n, m), 1.0));
    let cpu = CpuRnn::new(layer.clone())
        .forward(x.view(), h0.as_ref().map(|h| h.view()))
        .unwrap();
    for (strategy, ctx) in contexts_for(&STRATEGIES) {
        let g = GpuRnn::new(ctx, layer.clone())
            .unwrap()
            .forward(x.view(), h0.as_ref().map(|h| h.view()))
            .unwrap();
        let what = format!("{strategy} N={n} T={t} D={d} M={m} {config:?} {note} h0={with_h0}");
        assert_same_output(&g, &cpu, &what);
    }
}

#[test]
fn many_shapes_including_awkward_ones() {
    let shapes = [
        (1, 1, 1, 1),
        (1, 10, 3, 5),
        (2, 1, 4, 3),
        (3, 7, 1, 17),
        (5, 4, 2, 3),
        (17, 3, 5, 33),
        (2, 5, 16, 16),
        (4, 6, 20, 31),
        (33, 2, 3, 65),
        // Batches past 32 rows: the per-step kernel's four rows per thread, several persistent
        // workgroups with a partial last one.
        (70, 3, 8, 20),
        (37, 2, 7, 1),
        // vec4 projection loads (D and M multiples of 4) over several 64-row tiles.
        (9, 17, 12, 68),
        // More units than threads in a workgroup.
        (3, 3, 6, 300),
    ];
    for (i, &(n, t, d, m)) in shapes.iter().enumerate() {
        for (return_sequences, go_backwards) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let config = SimpleRnnConfig {
                activation: Activation::Tanh,
                return_sequences,
                go_backwards,
                ..Default::default()
            };
            compare((n, t, d, m), config, i % 3 != 0, i % 2 == 0, i as u64);
        }
    }
}

#[test]
fn a_thousand_units() {
    let config = SimpleRnnConfig {
        return_sequences: true,
        ..Default::default()
    };
    compare((2, 3, 7, 1000), config, true, true, 99);
    compare((1, 2, 8, 1000), config, false, false, 98);
}

#[test]
fn every_activation() {
    for (i, &activation) in Activation::ALL.iter().enumerate() {
        let config = SimpleRnnConfig {
            activation,
            return_sequences: true,
            go_backwards: i % 2 == 1,
            ..Default::default()
        };
        compare((3, 4, 5, 70), config, true, false, 1000 + i as u64);
    }
}

/// Keras's PReLU as the activation: leaky_relu with a slope per unit (negative, small and
/// above 1), or one for all, read by every step kernel after U, on shapes that take the scalar
/// and vec4 loads, several row tiles, split-K, and U in and out of workgroup memory.
#[test]
fn a_slope_per_unit() {
    let shapes = [
        (1, 4, 3, 5),
        (17, 3, 5, 33),
        (2, 5, 16, 16),
        (70, 3, 8, 20),
        (3, 3, 6, 300),
        (2, 3, 7, 1000),
    ];
    for (i, &(n, t, d, m)) in shapes.iter().enumerate() {
        for shared in [false, true] {
            let mut r = rng(3000 + i as u64);
            let config = SimpleRnnConfig {
                activation: Activation::LeakyRelu {
                    negative_slope: 0.0,
                },
                return_sequences: i % 2 == 0,
                go_backwards: shared,
                ..Default::default()
            };
            let slopes = if shared { 1 } else { m };
            let slopes = Array1::from_shape_simple_fn(slopes, || r.random_range(-0.5..1.5));
            let layer = random_layer(&mut r, d, m, i % 3 != 0, config)
                .with_unit_slopes(slopes)
                .unwrap();
            compare_layer(layer, n, t, i % 2 == 1, &mut r, &format!("shared={shared}"));
        }
    }
}

#[test]
fn row_wise_activations_on_wide_and_narrow_rows() {
    for (i, activation) in [Activation::Softmax, Activation::LogSoftmax]
        .into_iter()
        .enumerate()
    {
        for (j, shape) in [(1, 5, 3, 1), (40, 3, 4, 6), (2, 3, 5, 300)]
            .into_iter()
            .enumerate()
        {
            let config = SimpleRnnConfig {
                activation,
                return_sequences: j != 1,
                ..Default::default()
            };
            compare(shape, config, true, true, 2000 + (i * 10 + j) as u64);
        }
    }
}

#[test]
fn auto_gives_the_same_numbers_on_small_and_large_batches() {
    let mut r = rng(5);
    let config = SimpleRnnConfig {
        return_sequences: true,
        ..Default::default()
    };
    // Auto picks the persistent kernel for the first and the per-step kernel for the second.
    for (n, t, d, m) in [(2, 6, 4, 24), (40, 3, 4, 300)] {
        let layer = random_layer(&mut r, d, m, true, config);
        let x = uniform3(&mut r, (n, t, d), 1.0);
        let cpu = CpuRnn::new(layer.clone()).forward(x.view(), None).unwrap();
        let g = GpuRnn::new(gpu(), layer)
            .unwrap()
            .forward(x.view(), None)
            .unwrap();
        assert_close(g.output(), cpu.output(), "auto");
    }
}

#[test]
fn chunked_over_time_and_batch_gives_the_same_numbers() {
    let mut r = rng(7);
    for strategy in STRATEGIES {
        // A budget of 2 KiB per chunk buffer forces several batch chunks and many time chunks.
        let small = context(GpuOptions {
            max_chunk_bytes: Some(2048),
            strategy,
            ..Default::default()
        });
        for (return_sequences, go_backwards) in [(true, false), (false, true), (true, true)] {
            let config = SimpleRnnConfig {
                activation: Activation::Tanh,
                return_sequences,
                go_backwards,
                ..Default::default()
            };
            let layer = random_layer(&mut r, 6, 24, true, config);
            let x = uniform3(&mut r, (40, 23, 6), 1.5);
            let h0 = uniform2(&mut r, (40, 24), 1.0);
            let cpu = CpuRnn::new(layer.clone())
                .forward(x.view(), Some(h0.view()))
                .unwrap();
            let g = GpuRnn::new(&small, layer)
                .unwrap()
                .forward(x.view(), Some(h0.view()))
                .unwrap();
            let what = format!("chunked {strategy:?} {config:?}");
            assert_same_output(&g, &cpu, &what);
        }
    }
}

#[test]
fn padded_sequences_lengths_and_masks_in_every_direction_and_order() {
    let mut r = rng(11);
    let (n, t, d, m) = (6, 7, 3, 20);
    let lengths = [7, 1, 4, 7, 2, 5];
    let mask = Array2::from_shape_fn((n, t), |(b, _)| {
        b == 3 || (b != 2 && r.random_range(0.0..1.0) < 0.6)
    });
    let x = uniform3(&mut r, (n, t, d), 1.5);
    let h0 = uniform2(&mut r, (n, m), 1.0);
    let contexts = contexts_for(&STRATEGIES);
    for activation in [Activation::Tanh, Activation::Softmax] {
        for go_backwards in [false, true] {
            for output_order in [OutputOrder::Processing, OutputOrder::Input] {
                for (return_sequences, zero_output_for_mask) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let config = SimpleRnnConfig {
                        activation,
                        return_sequences,
                        go_backwards,
                        output_order,
                        clip: None,
                        zero_output_for_mask,
                        ..Default::default()
                    };
                    let layer = random_layer(&mut r, d, m, true, config);
                    let cpu = CpuRnn::new(layer.clone());
                    for (strategy, ctx) in &contexts {
                        let g = GpuRnn::new(ctx, layer.clone()).unwrap();
                        for padding in [Padding::Lengths(&lengths), Padding::Mask(mask.view())] {
                            let what = format!("{strategy} {config:?} {padding:?}");
                            let want = cpu
                                .forward_padded(x.view(), Some(h0.view()), padding)
                                .unwrap();
                            let got = g
                                .forward_padded(x.view(), Some(h0.view()), padding)
                                .unwrap();
                            assert_same_output(&got, &want, &what);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn clipped_pre_activations() {
    for clip in [0.3, 2.0] {
        for activation in [
            Activation::Affine {
                alpha: 1.0,
                beta: 0.0,
            },
            Activation::Softmax,
        ] {
            let config = SimpleRnnConfig {
                activation,
                return_sequences: true,
                clip: Some(clip),
                ..Default::default()
            };
            compare((3, 5, 4, 9), config, true, true, 77);
        }
    }
}
