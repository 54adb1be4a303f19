//! Functional configs from strangers: cycles, dangling references, calls and outputs that do
//! not exist, nesting, huge fan-out and long chains. Each is a clear error or a model that runs,
//! never a panic or a hang. The configs are written here and packed with the (empty) weights of
//! tests/fixtures/keras_graphs/activation_only/, a model without weights.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use ndarray::Array3;
use serde_json::{Value, json};
use wgpu_rnn::{Backend, KerasModel, KerasRunner, RnnError};

/// A `.keras` archive of `config` with a weights file that holds no weights.
fn archive(config: &Value) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras_graphs/activation_only/model.keras");
    let mut source = zip::ZipArchive::new(Cursor::new(std::fs::read(path).unwrap())).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..source.len() {
        let mut member = source.by_index(i).unwrap();
        let name = member.name().to_string();
        let mut data = Vec::new();
        member.read_to_end(&mut data).unwrap();
        if name == "config.json" {
            data = serde_json::to_vec(config).unwrap();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn tensor(layer: &str, node: u64, output: u64) -> Value {
    json!({"class_name": "__keras_tensor__",
        "config": {"shape": [null, 4, 3], "dtype": "float32", "keras_history": [layer, node, output]}})
}

fn input(name: &str) -> Value {
    json!({"class_name": "InputLayer", "name": name,
        "config": {"name": name, "batch_shape": [null, 4, 3], "dtype": "float32"},
        "inbound_nodes": []})
}

/// A weightless layer reading `reads` (one call each).
fn activation(name: &str, reads: &[(&str, u64, u64)]) -> Value {
    let calls: Vec<Value> = reads
        .iter()
        .map(|(l, n, o)| json!({"args": [tensor(l, *n, *o)], "kwargs": {}}))
        .collect();
    json!({"class_name": "Activation", "name": name,
        "config": {"name": name, "activation": "tanh"}, "inbound_nodes": calls})
}

fn model(layers: Vec<Value>, inputs: Value, outputs: Value) -> Value {
    json!({"class_name": "Functional", "config": {"name": "graph", "layers": layers,
        "input_layers": inputs, "output_layers": outputs}})
}

fn error(config: &Value) -> String {
    match KerasModel::from_bytes(archive(config)) {
        Ok(_) => panic!("loaded: {config}"),
        Err(e) => {
            assert!(matches!(e, RnnError::BadFile { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn cycles_are_refused_with_a_layer_on_them() {
    let two = model(
        vec![
            input("x"),
            activation("a", &[("b", 0, 0)]),
            activation("b", &[("a", 0, 0)]),
        ],
        json!(["x", 0, 0]),
        json!(["b", 0, 0]),
    );
    assert!(error(&two).contains("cycle"));
    let own = model(
        vec![input("x"), activation("a", &[("a", 0, 0)])],
        json!(["x", 0, 0]),
        json!(["a", 0, 0]),
    );
    assert!(error(&own).contains("cycle"));
    // A cycle through a layer's second call.
    let second = model(
        vec![
            input("x"),
            activation("a", &[("x", 0, 0), ("b", 0, 0)]),
            activation("b", &[("a", 1, 0)]),
        ],
        json!(["x", 0, 0]),
        json!(["b", 0, 0]),
    );
    assert!(error(&second).contains("cycle"));
}

#[test]
fn references_to_what_the_model_does_not_have_are_named() {
    let cases = [
        (
            model(
                vec![input("x"), activation("a", &[("ghost", 0, 0)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "ghost",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 7, 0)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "call 7",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 0, 5)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "output 5",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 0, u64::MAX)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "output",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 0, 0)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 3]),
            ),
            "output 3",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 0, 0)])],
                json!(["y", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "\"y\"",
        ),
        (
            model(
                vec![input("x"), activation("a", &[])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "never called",
        ),
        (
            model(
                vec![input("x"), input("x"), activation("a", &[("x", 0, 0)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "two layers",
        ),
        (
            model(
                vec![input("x"), input("unused"), activation("a", &[("x", 0, 0)])],
                json!(["x", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "unused",
        ),
        (
            model(
                vec![input("x"), activation("a", &[("x", 0, 0)])],
                json!(["a", 0, 0]),
                json!(["a", 0, 0]),
            ),
            "not an input",
        ),
    ];
    for (config, expected) in cases {
        let message = error(&config);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn malformed_calls_are_refused() {
    let call = |node: Value| {
        model(
            vec![
                input("x"),
                json!({"class_name": "Activation", "name": "a",
                    "config": {"name": "a", "activation": "tanh"}, "inbound_nodes": [node]}),
            ],
            json!(["x", 0, 0]),
            json!(["a", 0, 0]),
        )
    };
    let mut deep = tensor("x", 0, 0);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    for (node, expected) in [
        (
            json!({"args": [tensor("x", 0, 0)], "kwargs": {"noise": 1}}),
            "noise",
        ),
        (
            json!({"args": [tensor("x", 0, 0)], "kwargs": {"training": true}}),
            "training",
        ),
        (
            json!({"args": [tensor("x", 0, 0), tensor("x", 0, 0)], "kwargs": {}}),
            "takes one tensor",
        ),
        (json!({"args": [deep], "kwargs": {}}), "nest"),
        (json!({"args": [3.5], "kwargs": {}}), "takes one tensor"),
        (json!({"args": "x", "kwargs": {}}), "not a list"),
        (
            json!({"args": [tensor("x", 0, 0)], "kwargs": {"mask": tensor("x", 0, 0)}}),
            "mask",
        ),
        (
            json!({"args": [{"class_name": "__ellipsis__", "config": {}}], "kwargs": {}}),
            "does not read",
        ),
    ] {
        let message = error(&call(node));
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn huge_fan_out_and_long_chains_load_and_run() {
    let n = 20_000;
    // Every layer reads the input; the model returns a few of them.
    let mut layers = vec![input("x")];
    layers.extend((0..n).map(|i| activation(&format!("f{i}"), &[("x", 0, 0)])));
    let outputs: Vec<Value> = (0..n)
        .step_by(4_000)
        .map(|i| json!([format!("f{i}"), 0, 0]))
        .collect();
    let wide = KerasModel::from_bytes(archive(&model(
        layers,
        json!(["x", 0, 0]),
        Value::Array(outputs),
    )))
    .unwrap();
    assert_eq!(wide.output_count(), 5);
    // One layer called n times, each call on the last one's output.
    let calls: Vec<(String, u64)> = (0..n)
        .map(|i| {
            if i == 0 {
                ("x".to_string(), 0)
            } else {
                ("a".to_string(), i as u64 - 1)
            }
        })
        .collect();
    let reads: Vec<(&str, u64, u64)> = calls.iter().map(|(l, c)| (l.as_str(), *c, 0)).collect();
    let chain = model(
        vec![input("x"), activation("a", &reads)],
        json!(["x", 0, 0]),
        json!(["a", n as u64 - 1, 0]),
    );
    let long = KerasModel::from_bytes(archive(&chain)).unwrap();
    let x = Array3::<f32>::from_elem((1, 4, 3), 0.5).into_dyn();
    for model in [wide, long] {
        let mut runner = KerasRunner::new(model, &Backend::Cpu).unwrap();
        let out = runner.predict(x.view()).unwrap();
        assert!(out.outputs.iter().all(|o| o.iter().all(|v| v.is_finite())));
    }
}

/// Configs the `keras_graph` fuzz target (fuzz/) found crashing, kept in
/// tests/fixtures/fuzz_regressions/keras_graph/ and replayed as the target runs them: an error
/// or a model that runs, never a panic.
#[test]
fn configs_the_fuzzer_found_do_not_panic() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz_regressions/keras_graph");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Ok(config) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if let Ok(model) = KerasModel::from_bytes(archive(&config)) {
            let _ = model.to_string();
            let mut runner = KerasRunner::new(model, &Backend::Cpu).unwrap();
            let x = Array3::<f32>::zeros((2, 2, 2)).into_dyn();
            let _ = runner.predict(x.view());
        }
        count += 1;
    }
    assert!(count >= 1);
}
