//! The embedded demo: the "sum of three numbers" SimpleRNN trained with Keras (T=3, D=1, M=1,
//! linear), run on the GPU and the CPU, printed beside the predictions Keras recorded.

use ndarray::{Array2, Array3, Axis};
use wgpu_rnn::{
    CpuRnn, GpuContext, GpuOptions, GpuRnn, RnnError, SimpleRnnConfig, load_keras_npz_bytes,
    parse_npy_f32,
};

use crate::BackendChoice as Backend;

const WEIGHTS: &[u8] = include_bytes!("../../../tests/fixtures/keras/sum_of_three/weights.npz");
const INPUT: &[u8] = include_bytes!("../../../tests/fixtures/keras/sum_of_three/input.npy");
const KERAS_OUTPUT: &[u8] = include_bytes!("../../../tests/fixtures/keras/sum_of_three/output.npy");

pub fn run(backend: Backend) -> Result<(), RnnError> {
    let config = SimpleRnnConfig {
        activation: wgpu_rnn::Activation::Linear,
        ..Default::default()
    };
    let layer = load_keras_npz_bytes(WEIGHTS, config)?;
    let input: Array3<f32> = parse_npy_f32(INPUT)?;
    let keras: Array2<f32> = parse_npy_f32(KERAS_OUTPUT)?;

    println!(
        "wgpu-rnn demo: a SimpleRNN(1, activation=\"linear\") trained in Keras to add three numbers"
    );
    println!(
        "weights: kernel {:?}, recurrent_kernel {:?}, bias {:?}",
        layer.kernel().as_slice().unwrap_or_default(),
        layer.recurrent_kernel().as_slice().unwrap_or_default(),
        layer.bias().and_then(|b| b.as_slice()).unwrap_or_default()
    );

    let cpu = (backend != Backend::Gpu)
        .then(|| CpuRnn::new(layer.clone()).forward(input.view(), None))
        .transpose()?;
    let gpu = match backend {
        Backend::Cpu => None,
        Backend::Gpu => Some(gpu_forward(layer, &input)?),
        Backend::Auto => match gpu_forward(layer, &input) {
            Ok(out) => Some(out),
            Err(e) => {
                eprintln!("note: no GPU run: {e}");
                None
            }
        },
    };

    println!(
        "\n{:>26}  {:>9}  {:>9}  {:>9}  {:>9}",
        "input", "true sum", "Keras", "GPU", "CPU"
    );
    let mut worst = 0.0f32;
    for (i, row) in input.axis_iter(Axis(0)).enumerate() {
        let numbers: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
        let sum: f32 = row.iter().sum();
        let reference = keras[[i, 0]];
        let cell = |out: &Option<wgpu_rnn::RnnOutput>| match out {
            Some(o) => format!("{:9.5}", o.final_state[[i, 0]]),
            None => format!("{:>9}", "-"),
        };
        for o in [&gpu, &cpu].into_iter().flatten() {
            worst = worst.max((o.final_state[[i, 0]] - reference).abs());
        }
        println!(
            "{:>26}  {sum:9.5}  {reference:9.5}  {}  {}",
            numbers.join(" + "),
            cell(&gpu),
            cell(&cpu)
        );
    }
    println!("\nlargest difference from Keras: {worst:.2e}");
    Ok(())
}

fn gpu_forward(
    layer: wgpu_rnn::SimpleRnn,
    input: &Array3<f32>,
) -> Result<wgpu_rnn::RnnOutput, RnnError> {
    let ctx = GpuContext::new_blocking(GpuOptions::default())?;
    let model = GpuRnn::new(&ctx, layer)?;
    println!(
        "GPU: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    model.forward(input.view(), None)
}
