// One dispatch's parameters of the projection GEMMs (projection.wgsl, projection_rows.wgsl):
// `Dims` in src/gpu/projection.rs. The whole GEMM is rows × k × cols; this dispatch covers the
// rows row0 .. row0 + (its workgroups in y) · (rows per workgroup) over the depth
// k_begin .. k_end, adding to P (accumulate) or to the bias.

struct Dims {
    rows: u32,
    k: u32,
    cols: u32,
    row0: u32,
    k_begin: u32,
    k_end: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(4) var<uniform> dims: Dims;
