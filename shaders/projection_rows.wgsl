// The projection GEMM P = X · W + b (as projection.wgsl, same bindings and dispatches) laid out
// for devices where a value every thread of a workgroup reads at once costs one load and values
// each thread reads for itself cost one load per thread: CPU implementations such as lavapipe,
// which run a workgroup's threads in SIMD lanes.
//
// A workgroup of 64 threads owns ROWS rows and 256 columns; each thread keeps ROWS quads of sums
// in registers. For every quad of k, each thread loads the four rows of W's quad column it owns
// (its own loads) and each row's quad of X (the same address for every thread), so one load of
// W feeds ROWS multiply-adds. The register tile is copied out before the stores, whose loop the
// compiler does not unroll, so that the sums stay in registers through the k loop.

// Rows of a workgroup's tile (`plan::PROJECTION_ROWS_TILE`).
override ROWS: u32 = 16u;

const WG: u32 = 64u;
// The most rows ROWS may be.
const MAX_ROWS: u32 = 32u;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = dims.row0 + wid.y * ROWS;
    let col = (wid.x * WG + lid) * 4u;
    var acc: array<vec4<f32>, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        acc[r] = vec4<f32>(0.0);
    }
    // k_begin is a whole number of slabs of 16, k_end too unless it is k: quads never straddle
    // two dispatches.
    for (var k0 = dims.k_begin; k0 < dims.k_end; k0 = k0 + 4u) {
        let w0 = load_w(k0, col);
        let w1 = load_w(k0 + 1u, col);
        let w2 = load_w(k0 + 2u, col);
        let w3 = load_w(k0 + 3u, col);
        for (var r = 0u; r < ROWS; r = r + 1u) {
            let a = load_x(row0 + r, k0);
            acc[r] = acc[r] + a.x * w0 + a.y * w1 + a.z * w2 + a.w * w3;
        }
    }
    var sums: array<vec4<f32>, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        sums[r] = acc[r];
    }
    if (col >= dims.cols) {
        return;
    }
    let b = load_bias(col);
    for (var r = 0u; r < ROWS; r = r + 1u) {
        let row = row0 + r;
        if (row < dims.rows) {
            if (dims.accumulate != 0u) {
                store_p(row, col, load_p(row, col) + sums[r]);
            } else {
                store_p(row, col, sums[r] + b);
            }
        }
    }
}
