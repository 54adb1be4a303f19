//! Functional model configs (`config.json`) from untrusted bytes, packed with a weights file
//! that holds no weights: the graph reader (inbound nodes, keras_history references, masks,
//! initial states, ops) must give an error or a model, never a panic, a hang or a huge
//! allocation; a model that loads also runs on small inputs of its inputs' shapes.
#![no_main]

use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wgpu_rnn::{Backend, InputArray, KerasModel, KerasRunner};

/// The members of a weightless model's archive, but its config.
fn members() -> &'static Vec<(String, Vec<u8>)> {
    static MEMBERS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    MEMBERS.get_or_init(|| {
        let bytes = include_bytes!("../../tests/fixtures/keras_graphs/activation_only/model.keras");
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut member = archive.by_index(i).unwrap();
                let mut data = Vec::new();
                member.read_to_end(&mut data).unwrap();
                (member.name().to_string(), data)
            })
            .filter(|(name, _)| name != "config.json")
            .collect()
    })
}

fuzz_target!(|config: &[u8]| {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    out.start_file("config.json", options).unwrap();
    out.write_all(config).unwrap();
    for (name, data) in members() {
        out.start_file(name.as_str(), options).unwrap();
        out.write_all(data).unwrap();
    }
    let archive = out.finish().unwrap().into_inner();
    let Ok(model) = KerasModel::from_bytes(archive) else {
        return;
    };
    let _ = model.to_string();
    // Inputs of each input's shape, open sizes 2, every size capped so that a forged shape
    // cannot ask for much.
    let shapes: Vec<Vec<usize>> = model
        .input_shapes()
        .iter()
        .map(|s| s.iter().map(|d| d.unwrap_or(2).min(8)).collect())
        .collect();
    let ids: Vec<ndarray::ArrayD<i64>> = shapes
        .iter()
        .map(|s| ndarray::ArrayD::from_elem(ndarray::IxDyn(s), 1))
        .collect();
    let inputs: Vec<InputArray<'_>> = ids.iter().map(|a| InputArray::Int(a.view())).collect();
    if let Ok(mut runner) = KerasRunner::new(model, &Backend::Cpu) {
        let _ = runner.predict_inputs(&inputs);
    }
});
