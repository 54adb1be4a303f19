//! Opening a model file: a `.keras` zip archive or a legacy HDF5 file, told apart by their
//! first bytes, not by their names. Sizes come from the archive, which a stranger controls, so
//! every read is bounded.

use std::io::{Cursor, Read};
use std::path::Path;

use serde_json::Value;

use crate::error::{Result, RnnError};
use crate::keras::weights::{WeightStore, attr_strings};

/// The largest `config.json` we read; real ones are a few kilobytes per layer.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The largest weights file we read from an archive.
const MAX_WEIGHTS_BYTES: u64 = 8 << 30;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// A model file's parsed config and its weights.
pub(crate) struct OpenedModel {
    pub config: Value,
    pub weights: WeightStore,
}

/// Opens a model file from its bytes; `origin` names it in errors.
pub(crate) fn open(bytes: Vec<u8>, origin: &Path) -> Result<OpenedModel> {
    let bad = |message: String| RnnError::bad_file(origin, message);
    if bytes.starts_with(ZIP_MAGIC) {
        open_keras_archive(bytes).map_err(bad)
    } else if bytes.starts_with(HDF5_MAGIC) {
        open_legacy_h5(bytes).map_err(bad)
    } else {
        Err(bad(
            "neither a .keras archive (zip) nor a legacy HDF5 model (.h5)".to_string(),
        ))
    }
}

fn read_member(
    archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>,
    name: &str,
    limit: u64,
) -> std::result::Result<Vec<u8>, String> {
    let member = archive
        .by_name(name)
        .map_err(|e| format!("the archive has no {name}: {e}"))?;
    if member.size() > limit {
        return Err(format!(
            "{name} claims {} bytes, more than the {limit} this reader accepts",
            member.size()
        ));
    }
    // The declared size may be forged: grow from a modest start rather than trust it.
    let mut out = Vec::with_capacity(member.size().min(64 << 20) as usize);
    member
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name} cannot be read: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("{name} is larger than {limit} bytes"));
    }
    Ok(out)
}

fn open_keras_archive(bytes: Vec<u8>) -> std::result::Result<OpenedModel, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable .keras archive: {e}"))?;
    let config_bytes = read_member(&mut archive, "config.json", MAX_CONFIG_BYTES)?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| format!("config.json is not valid JSON: {e}"))?;
    let weights = read_member(&mut archive, "model.weights.h5", MAX_WEIGHTS_BYTES)?;
    let file = open_h5(weights).map_err(|e| format!("model.weights.h5: {e}"))?;
    Ok(OpenedModel {
        config,
        weights: WeightStore::Keras3(file),
    })
}

/// Opens an HDF5 image, refusing one shorter than its superblock says (as libhdf5 does).
fn open_h5(bytes: Vec<u8>) -> std::result::Result<hdf5_pure::File, String> {
    let len = bytes.len() as u64;
    let file =
        hdf5_pure::File::from_bytes(bytes).map_err(|e| format!("not a readable HDF5 file: {e}"))?;
    let eof = file.superblock().eof_address;
    if eof > len {
        return Err(format!(
            "truncated HDF5 file: {len} bytes where its superblock says {eof}"
        ));
    }
    Ok(file)
}

fn open_legacy_h5(bytes: Vec<u8>) -> std::result::Result<OpenedModel, String> {
    let file = open_h5(bytes)?;
    let attrs = file
        .root()
        .attrs()
        .map_err(|e| format!("the file's attributes cannot be read: {e}"))?;
    let text = attrs
        .get("model_config")
        .and_then(attr_strings)
        .and_then(|v| v.into_iter().next())
        .ok_or(
            "the HDF5 file has no model_config attribute; it holds weights only \
             (save the whole model with model.save(\"model.h5\"))",
        )?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format!("model_config is not valid JSON: {e}"))?;
    Ok(OpenedModel {
        config,
        weights: WeightStore::Legacy(file),
    })
}
