//! ONNX node attributes as the fixture manifests record them (tests/fixtures/onnx*/).

use serde_json::Value;
use wgpu_rnn::{OnnxDirection, OnnxRnnAttributes};

/// A JSON array of numbers as floats (none when absent).
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .unwrap_or_default()
}

/// An `RNN`, `LSTM` or `GRU` node's attributes, ONNX's defaults where a key is absent.
pub fn attributes(a: &Value) -> OnnxRnnAttributes {
    let names: Vec<&str> = a["activations"]
        .as_array()
        .map(|v| v.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    OnnxRnnAttributes {
        activations: OnnxRnnAttributes::activations_from(
            &names,
            &floats(&a["activation_alpha"]),
            &floats(&a["activation_beta"]),
        )
        .unwrap(),
        clip: a["clip"].as_f64().map(|c| c as f32),
        direction: OnnxDirection::parse(a["direction"].as_str().unwrap_or("forward")).unwrap(),
        hidden_size: a["hidden_size"].as_u64().map(|h| h as usize),
        layout: a["layout"].as_u64().unwrap_or(0) as u8,
        input_forget: a["input_forget"].as_u64().unwrap_or(0) == 1,
        linear_before_reset: a["linear_before_reset"].as_u64().unwrap_or(0) == 1,
    }
}
