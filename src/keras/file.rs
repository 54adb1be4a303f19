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
/// The largest weights file we read from an archive (an Embedding of a million tokens by 1,000
/// features takes 4 GB).
const MAX_WEIGHTS_BYTES: u64 = 4 << 30;
/// Bytes enough for any HDF5 superblock's fields up to its end-of-file address.
const SUPERBLOCK_PREFIX: u64 = 64;

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

/// Reads an archive member, refusing one that declares more than `limit` bytes or inflates past
/// what it declares (the declared size is what bounds every allocation).
fn read_member(
    archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>,
    name: &str,
    limit: u64,
) -> std::result::Result<Vec<u8>, String> {
    let mut member = archive
        .by_name(name)
        .map_err(|e| format!("the archive has no {name}: {e}"))?;
    let declared = member.size();
    if declared > limit {
        return Err(format!(
            "{name} claims {declared} bytes, more than the {limit} this reader accepts"
        ));
    }
    // The declared size bounds the read; still grow from a modest start, as it may be forged.
    let mut out = Vec::with_capacity(declared.min(64 << 20) as usize);
    let unreadable = |e: std::io::Error| format!("{name} cannot be read: {e}");
    // An HDF5 image records where it ends: read its superblock first, so that trailing bytes
    // (which libhdf5 would ignore) are refused before they are inflated.
    if name.ends_with(".h5") {
        (&mut member)
            .take(SUPERBLOCK_PREFIX.min(declared))
            .read_to_end(&mut out)
            .map_err(unreadable)?;
        let end = hdf5_end(&out).map_err(|e| format!("{name}: {e}"))?;
        if end != declared {
            return Err(format!(
                "{name}: its archive entry holds {declared} bytes where the HDF5 superblock \
                 says the file ends at {end} ({})",
                if end < declared {
                    "trailing data"
                } else {
                    "truncated"
                }
            ));
        }
    }
    let have = out.len() as u64;
    (&mut member)
        .take(declared + 1 - have)
        .read_to_end(&mut out)
        .map_err(unreadable)?;
    if out.len() as u64 > declared {
        return Err(format!(
            "{name} inflates past the {declared} bytes its archive entry declares"
        ));
    }
    Ok(out)
}

/// Where an HDF5 image ends, from its superblock (at offset 0): the base address plus the
/// end-of-file address. Superblock versions 0 and 1 put the addresses after 16 (20) bytes of
/// versions, sizes and tree parameters; 2 and 3 after 4.
fn hdf5_end(prefix: &[u8]) -> std::result::Result<u64, String> {
    if !prefix.starts_with(HDF5_MAGIC) || prefix.len() < 16 {
        return Err("not an HDF5 file (no superblock at its start)".into());
    }
    let (offset_size, addresses_at) = match prefix[8] {
        0 => (prefix[13], 24),
        1 => (prefix[13], 28),
        2 | 3 => (prefix[9], 12),
        v => return Err(format!("unknown HDF5 superblock version {v}")),
    };
    let size = usize::from(offset_size);
    if !matches!(size, 2 | 4 | 8) {
        return Err(format!("HDF5 superblock with {size}-byte addresses"));
    }
    // Base address, then free-space (v0/1) or extension (v2/3) address, then end of file.
    let address = |i: usize| -> std::result::Result<u64, String> {
        let at = addresses_at + i * size;
        let bytes = prefix
            .get(at..at + size)
            .ok_or("truncated HDF5 superblock")?;
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(raw))
    };
    address(0)?
        .checked_add(address(2)?)
        .ok_or_else(|| "HDF5 superblock addresses overflow".to_string())
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

/// Opens an HDF5 image, refusing one shorter than its superblock says (as libhdf5 does), or
/// longer: bytes past the end would be data that nothing reads.
fn open_h5(bytes: Vec<u8>) -> std::result::Result<hdf5_pure::File, String> {
    let len = bytes.len() as u64;
    let file =
        hdf5_pure::File::from_bytes(bytes).map_err(|e| format!("not a readable HDF5 file: {e}"))?;
    let superblock = file.superblock();
    let end = superblock
        .base_address
        .get()
        .checked_add(superblock.eof_address)
        .ok_or("HDF5 superblock addresses overflow")?;
    if end > len {
        return Err(format!(
            "truncated HDF5 file: {len} bytes where its superblock says {end}"
        ));
    }
    if end < len {
        return Err(format!(
            "{} bytes of trailing data after the HDF5 file's end at {end} (as its superblock \
             records it)",
            len - end
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
