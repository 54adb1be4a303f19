// Input projection of every time step at once: P = X · W + b, one register-tiled GEMM over all
// rows. X is rows × k (rows = steps × batch, time-major), W is k × cols (Keras's kernel, D × M),
// b has cols entries (zeros for a layer without bias), P is rows × cols.
//
// Each workgroup of 16 × 16 threads computes a 64 × 64 tile of P; each thread a 4 × 4 block held
// in four vec4 accumulators, so every value read from workgroup memory feeds four multiply-adds.
// k is walked in slabs of 16, both operands staged cooperatively in workgroup memory. The
// buffers' element type and the loads live in projection_scalar.wgsl or projection_vec4.wgsl,
// prepended by `shaders::projection_module`: `load_x`, `load_w`, `load_bias`, `load_p` and
// `store_p` are theirs.
//
// One dispatch covers the rows row0 .. row0 + 64 · (workgroups in y) and the depth
// k_begin .. k_end only: the host cuts a large GEMM into such dispatches (`plan::gemm_dispatches`)
// so that no invocation loops past the loop budget and no dispatch runs long. Every span of k
// after the first adds to what P holds (`accumulate`) instead of to the bias. `Dims` and `dims`
// come from projection_dims.wgsl.

const SLAB: u32 = 16u;

// X slab, row-major: 64 rows × 4 quads of k. A thread's row reads one vec4 per quad.
var<workgroup> x_tile: array<vec4<f32>, 256>;
// W slab, row-major: 16 k × 16 quads of columns. A thread reads its 4 columns as one vec4.
var<workgroup> w_tile: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let row0 = dims.row0 + wid.y * 64u;
    let col0 = wid.x * 64u;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = vec4<f32>(0.0);
    }
    // k_begin is a whole number of slabs, and k_end one too unless it is k: a slab never
    // straddles two dispatches, and the loads' bounds stay those of the whole matrices.
    for (var k0 = dims.k_begin; k0 < dims.k_end; k0 = k0 + SLAB) {
        // 256 quads of each operand, one per thread.
        x_tile[t] = load_x(row0 + t / 4u, k0 + (t % 4u) * 4u);
        w_tile[t] = load_w(k0 + t / 16u, col0 + (t % 16u) * 4u);
        workgroupBarrier();
        for (var q = 0u; q < 4u; q = q + 1u) {
            let b0 = w_tile[(q * 4u) * 16u + tx];
            let b1 = w_tile[(q * 4u + 1u) * 16u + tx];
            let b2 = w_tile[(q * 4u + 2u) * 16u + tx];
            let b3 = w_tile[(q * 4u + 3u) * 16u + tx];
            for (var i = 0u; i < 4u; i = i + 1u) {
                let a = x_tile[(ty * 4u + i) * 4u + q];
                acc[i] = acc[i] + a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
            }
        }
        workgroupBarrier();
    }
    let col = col0 + tx * 4u;
    if (col >= dims.cols) {
        return;
    }
    let b = load_bias(col);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty * 4u + i;
        if (row < dims.rows) {
            if (dims.accumulate != 0u) {
                store_p(row, col, load_p(row, col) + acc[i]);
            } else {
                store_p(row, col, acc[i] + b);
            }
        }
    }
}
