//! The GPU path against the CPU reference on random inputs over many shapes, including awkward
//! ones, every activation, chunked runs, and one model shared by several threads.

mod common;

use common::{assert_close, gpu, random_layer, rng, uniform2, uniform3};
use wgpu_rnn::{Activation, CpuRnn, GpuContext, GpuOptions, GpuRnn, SimpleRnnConfig};

/// Runs one random layer and input through both backends: (N, T, D, M), then the options.
fn compare(
    (n, t, d, m): (usize, usize, usize, usize),
    config: SimpleRnnConfig,
    bias: bool,
    with_h0: bool,
    seed: u64,
) {
    let mut r = rng(seed);
    let layer = random_layer(&mut r, d, m, bias, config);
    let x = uniform3(&mut r, (n, t, d), 2.0);
    let h0 = with_h0.then(|| uniform2(&mut r, (n, m), 1.0));
    let cpu = CpuRnn::new(layer.clone())
        .forward(x.view(), h0.as_ref().map(|h| h.view()))
        .unwrap();
    let g = GpuRnn::new(gpu(), layer)
        .unwrap()
        .forward(x.view(), h0.as_ref().map(|h| h.view()))
        .unwrap();
    let what = format!("N={n} T={t} D={d} M={m} {config:?} bias={bias} h0={with_h0}");
    assert_close(g.output(), cpu.output(), &what);
    assert_close(
        g.final_state.view().into_dyn(),
        cpu.final_state.view().into_dyn(),
        &what,
    );
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
    ];
    for (i, &(n, t, d, m)) in shapes.iter().enumerate() {
        for (return_sequences, go_backwards) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let config = SimpleRnnConfig {
                activation: Activation::Tanh,
                return_sequences,
                go_backwards,
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
}

#[test]
fn every_activation() {
    for (i, &activation) in Activation::ALL.iter().enumerate() {
        let config = SimpleRnnConfig {
            activation,
            return_sequences: true,
            go_backwards: i % 2 == 1,
        };
        compare((3, 4, 5, 70), config, true, false, 1000 + i as u64);
    }
}

#[test]
fn chunked_over_time_and_batch_gives_the_same_numbers() {
    // A budget of 2 KiB per chunk buffer forces several batch chunks and many time chunks.
    let small = GpuContext::new_blocking(GpuOptions {
        max_chunk_bytes: Some(2048),
        ..Default::default()
    })
    .expect("GPU tests need a GPU adapter");
    let mut r = rng(7);
    for (return_sequences, go_backwards) in [(true, false), (false, true), (true, true)] {
        let config = SimpleRnnConfig {
            activation: Activation::Tanh,
            return_sequences,
            go_backwards,
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
        assert_close(g.output(), cpu.output(), "chunked");
        assert_close(
            g.final_state.view().into_dyn(),
            cpu.final_state.view().into_dyn(),
            "chunked",
        );
    }
}
