//! Keras 3 `LSTM` and `GRU` layers against real Keras: each case in tests/fixtures/keras_gated/
//! (written by generate.py there, versions pinned in tests/fixtures/keras/requirements.txt) holds
//! the layer's `get_weights()` as `.npz`, its options (`case.json`), an input, optionally a mask
//! and initial states, and what Keras returned: the output, the final h and (LSTM) c. Each runs
//! on the CPU and on the GPU under every step strategy, the cell inferred from the weights.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use common::{assert_close, gpu_with};
use ndarray::{Array2, Array3, ArrayD};
use ndarray_npy::ReadNpyExt;
use wgpu_rnn::{
    Activation, Cell, CpuRnn, GpuRnn, Padding, RnnForward, RnnOutput, SimpleRnnConfig,
    StepStrategy, load_keras_npz, load_keras_npz_as, read_npy_f32,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras_gated")
}

struct Case {
    name: String,
    dir: PathBuf,
    spec: serde_json::Value,
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| {
            let dir = e.unwrap().path();
            let text = std::fs::read_to_string(dir.join("case.json")).ok()?;
            Some(Case {
                name: dir.file_name()?.to_string_lossy().into_owned(),
                spec: serde_json::from_str(&text).unwrap(),
                dir,
            })
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

impl Case {
    fn flag(&self, key: &str) -> bool {
        self.spec[key].as_bool().unwrap_or(false)
    }

    fn activation(&self, key: &str) -> Activation {
        Activation::from_keras_name(self.spec[key].as_str().unwrap()).unwrap()
    }

    fn array2(&self, file: &str) -> Option<Array2<f32>> {
        let path = self.dir.join(file);
        path.exists().then(|| read_npy_f32(path).unwrap())
    }

    fn config(&self) -> SimpleRnnConfig {
        SimpleRnnConfig {
            activation: self.activation("activation"),
            recurrent_activation: self.activation("recurrent_activation"),
            return_sequences: self.flag("return_sequences"),
            go_backwards: self.flag("go_backwards"),
            ..Default::default()
        }
    }

    /// The cell Keras built.
    fn cell(&self) -> Cell {
        match self.spec["cell"].as_str() {
            Some("lstm") => Cell::Lstm,
            _ if self.spec["reset_after"] == false => Cell::GruResetBefore,
            _ => Cell::Gru,
        }
    }

    /// The layer, its cell inferred from the weights.
    fn layer(&self) -> wgpu_rnn::Result<wgpu_rnn::SimpleRnn> {
        let weights = self.dir.join("weights.npz");
        if self.spec["cell"] == "gru" && !self.flag("use_bias") {
            // Without a bias the file cannot show reset_after: the caller says it.
            return load_keras_npz_as(weights, self.config(), Some(self.cell()));
        }
        load_keras_npz(weights, self.config())
    }

    fn check(&self, backend: &dyn RnnForward, what: &str) {
        let x: Array3<f32> = read_npy_f32(self.dir.join("input.npy")).unwrap();
        let mask: Option<Array2<bool>> = self.flag("mask").then(|| {
            Array2::<bool>::read_npy(File::open(self.dir.join("mask.npy")).unwrap()).unwrap()
        });
        let padding = match &mask {
            Some(mask) => Padding::Mask(mask.view()),
            None => Padding::None,
        };
        let (h0, c0) = (self.array2("h0.npy"), self.array2("c0.npy"));
        let got: RnnOutput = backend
            .forward_states(
                x.view(),
                h0.as_ref().map(|h| h.view()),
                c0.as_ref().map(|c| c.view()),
                padding,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want: ArrayD<f32> = read_npy_f32(self.dir.join("output.npy")).unwrap();
        assert_close(got.output(), want.view(), &format!("{what} output"));
        let h = self.array2("h.npy").expect("h.npy");
        assert_close(
            got.final_state.view().into_dyn(),
            h.view().into_dyn(),
            &format!("{what} h"),
        );
        match (self.array2("c.npy"), &got.final_cell) {
            (Some(c), Some(got_c)) => assert_close(
                got_c.view().into_dyn(),
                c.view().into_dyn(),
                &format!("{what} c"),
            ),
            (None, None) => {}
            (c, got_c) => panic!(
                "{what}: Keras cell state {}, ours {}",
                c.is_some(),
                got_c.is_some()
            ),
        }
    }
}

#[test]
fn keras_lstm_and_gru_layers_on_every_backend() {
    let cases = cases();
    assert!(cases.len() >= 20, "the fixtures hold every case");
    let mut checked = 0;
    for case in &cases {
        let layer = case
            .layer()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(layer.cell(), case.cell(), "{}", case.name);
        case.check(&CpuRnn::new(layer.clone()), &format!("{} cpu", case.name));
        for strategy in [StepStrategy::PerStep, StepStrategy::Persistent] {
            let gpu = GpuRnn::new(gpu_with(strategy), layer.clone()).unwrap();
            case.check(&gpu, &format!("{} gpu {strategy:?}", case.name));
        }
        checked += 1;
    }
    assert!(checked >= 18, "{checked} cases ran");
}
