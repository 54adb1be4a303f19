//! The CPU path's inner loops: a safe face on the `gemm` crate (packed, SIMD-dispatched
//! micro-kernels up to AVX-512), a product for the few-row case `gemm` handles slowly, weights
//! laid out for both, and a vectorisable tanh.

use multiversion::multiversion;
use ndarray::ArrayView2;

/// A row-major matrix whose rows are [`padded_stride`] floats apart: a weight matrix as the
/// step products read it.
#[derive(Clone, Debug)]
pub(crate) struct PaddedRows {
    data: Vec<f32>,
    cols: usize,
    stride: usize,
}

impl PaddedRows {
    pub(crate) fn new(a: ArrayView2<'_, f32>) -> Self {
        let stride = padded_stride(a.ncols());
        let mut data = vec![0.0f32; a.nrows() * stride];
        for (row, values) in data.chunks_exact_mut(stride).zip(a.rows()) {
            row.iter_mut().zip(values).for_each(|(o, v)| *o = *v);
        }
        PaddedRows {
            data,
            cols: a.ncols(),
            stride,
        }
    }

    /// The number of columns.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// The floats and the distance between rows, as [`matmul_acc_strided`] takes them.
    pub(crate) fn strided(&self) -> (&[f32], usize) {
        (&self.data, self.stride)
    }
}

/// The row stride for a matrix `cols` wide: `cols`, or 16 floats (one cache line) more when
/// rows would lie a multiple of 512 bytes apart. A product walks the weights down a column
/// block, and rows a power of two apart fall into the same few sets of the L1 and L2 caches,
/// which then evict each other (at 64 × 100 × 64 × 256 the padding took an LSTM forward from
/// 32.8 to 24.8 ms).
pub(crate) fn padded_stride(cols: usize) -> usize {
    if cols >= 128 && cols.is_multiple_of(128) {
        cols + 16
    } else {
        cols
    }
}

/// `dst += lhs · rhs` for row-major matrices: `lhs` is `rows` × `k` and contiguous, `rhs` is
/// `k` × `cols` and `dst` `rows` × `cols`, each with rows `stride` floats apart (a block of a
/// wider matrix, starting at the slice's first float). `parallel` lets `gemm` split the work
/// over rayon's threads; callers already running one task per core pass `false`.
///
/// # Panics
/// When a slice is shorter than its shape and stride say, or a stride is less than `cols`.
pub(crate) fn matmul_acc_strided(
    shape: (usize, usize, usize),
    dst: (&mut [f32], usize),
    lhs: &[f32],
    rhs: (&[f32], usize),
    parallel: bool,
) {
    product(shape, dst, lhs, rhs, (parallel, true));
}

/// [`matmul_acc_strided`] that overwrites `dst`: `dst = lhs · rhs`, with no pass over `dst`
/// before.
///
/// # Panics
/// As [`matmul_acc_strided`].
pub(crate) fn matmul_strided(
    shape: (usize, usize, usize),
    dst: (&mut [f32], usize),
    lhs: &[f32],
    rhs: (&[f32], usize),
    parallel: bool,
) {
    product(shape, dst, lhs, rhs, (parallel, false));
}

/// [`matmul_acc_strided`] (`accumulate`) or [`matmul_strided`].
fn product(
    (rows, k, cols): (usize, usize, usize),
    (dst, dst_stride): (&mut [f32], usize),
    lhs: &[f32],
    (rhs, rhs_stride): (&[f32], usize),
    (parallel, accumulate): (bool, bool),
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(dst_stride >= cols && rhs_stride >= cols);
    assert!(dst.len() >= (rows - 1) * dst_stride + cols && lhs.len() >= rows * k);
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_stride)
                .take(rows)
                .for_each(|row| row[..cols].fill(0.0));
        }
        return;
    }
    assert!(rhs.len() >= (k - 1) * rhs_stride + cols);
    if rows <= FEW_ROWS && few_rows_supported() {
        let shape = (rows, k, cols, accumulate);
        matmul_few_rows(shape, (dst, dst_stride), lhs, (rhs, rhs_stride));
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach (row r < rows, column
    // c < cols, depth < k) inside the three slices, and `dst` is borrowed mutably so it aliases
    // neither input.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            rhs_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Rows up to which [`matmul_few_rows`] does a product instead of `gemm`, whose packing and
/// micro-kernels are made for many rows: at one row (a batch of one, one step) `gemm` spent
/// 77 % of an LSTM forward in its vector-matrix path.
const FEW_ROWS: usize = 4;

/// Whether this CPU has fused multiply-add, which [`matmul_few_rows`] is written for (without
/// it `mul_add` is a library call, and `gemm` is faster).
fn few_rows_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "aarch64")
    }
}

/// [`matmul_acc_strided`] for 1 to [`FEW_ROWS`] rows: each block of `rhs`'s columns is walked
/// once down its `k` rows, with every row's sums for the block held in registers.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
fn matmul_few_rows(
    (rows, k, cols, accumulate): (usize, usize, usize, bool),
    (dst, dst_stride): (&mut [f32], usize),
    lhs: &[f32],
    (rhs, rhs_stride): (&[f32], usize),
) {
    let shape = (k, cols, accumulate);
    let (dst, rhs) = ((dst, dst_stride), (rhs, rhs_stride));
    match rows {
        1 => few_rows::<1, 128>(shape, dst, lhs, rhs),
        2 => few_rows::<2, 64>(shape, dst, lhs, rhs),
        3 => few_rows::<3, 32>(shape, dst, lhs, rhs),
        4 => few_rows::<4, 32>(shape, dst, lhs, rhs),
        _ => unreachable!("{rows} rows go to gemm"),
    }
}

/// [`matmul_few_rows`] for `R` rows: blocks of `C` columns (enough independent sums to hide
/// the multiply-add latency), then narrower blocks for what is left.
#[inline(always)]
fn few_rows<const R: usize, const C: usize>(
    (k, cols, accumulate): (usize, usize, bool),
    dst: (&mut [f32], usize),
    lhs: &[f32],
    rhs: (&[f32], usize),
) {
    let (dst, stride) = dst;
    let mut c0 = 0;
    while c0 + C <= cols {
        column_block::<R, C>((k, c0, accumulate), (&mut *dst, stride), lhs, rhs);
        c0 += C;
    }
    while c0 + 32 <= cols {
        column_block::<R, 32>((k, c0, accumulate), (&mut *dst, stride), lhs, rhs);
        c0 += 32;
    }
    while c0 + 8 <= cols {
        column_block::<R, 8>((k, c0, accumulate), (&mut *dst, stride), lhs, rhs);
        c0 += 8;
    }
    for c0 in c0..cols {
        column_block::<R, 1>((k, c0, accumulate), (&mut *dst, stride), lhs, rhs);
    }
}

/// Columns `c0 .. c0 + C` of `R` rows of `dst += lhs · rhs` (or `=` without `accumulate`).
#[inline(always)]
fn column_block<const R: usize, const C: usize>(
    (k, c0, accumulate): (usize, usize, bool),
    (dst, dst_stride): (&mut [f32], usize),
    lhs: &[f32],
    (rhs, rhs_stride): (&[f32], usize),
) {
    let mut sums = [[0.0f32; C]; R];
    for depth in 0..k {
        let b: &[f32; C] = rhs[depth * rhs_stride + c0..][..C]
            .try_into()
            .expect("C floats");
        for (r, sums) in sums.iter_mut().enumerate() {
            let a = lhs[r * k + depth];
            for (s, b) in sums.iter_mut().zip(b) {
                *s = a.mul_add(*b, *s);
            }
        }
    }
    for (r, sums) in sums.iter().enumerate() {
        let row = &mut dst[r * dst_stride + c0..][..C];
        match accumulate {
            true => row.iter_mut().zip(sums).for_each(|(d, s)| *d += s),
            false => row.copy_from_slice(sums),
        }
    }
}

/// tanh of every element, in place: a branch-free rational approximation that the compiler
/// vectorises (libm's tanhf is scalar and dominated the step time). Its error against the exact
/// tanh is under 5e-7 (checked by a test below); NaN stays NaN and ±inf gives ±1.
/// Dispatched at run time to the widest of the targets below that the CPU has, else to the
/// portable build of the same loop ([`tanh_portable`], which the tests run on every machine).
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn tanh_in_place(values: &mut [f32]) {
    tanh_portable(values);
}

/// [`tanh_in_place`] without target features: what a CPU outside the list above runs. Inlined
/// into each of the dispatched versions, which compile it with their features; every operation
/// is exactly rounded (`mul_add` is fused on every target), so all versions agree bit for bit.
#[inline(always)]
fn tanh_portable(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = tanh_rational(*v);
    }
}

/// One LSTM step for one row with the default activations (sigmoid gates, tanh candidate and
/// cell output; no clip, coupling or peepholes) in one pass: `pre` + `bias` are the gates'
/// pre-activations i, f, c, o (*M* each), `out` receives o·tanh(c') and `c` becomes
/// c' = f·c + i·g. The same operations as the block-by-block path (sigmoid as ½ + ½·tanh(x/2)),
/// so both give the same bits.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn lstm_row_standard(pre: &[f32], bias: &[f32], out: &mut [f32], c: &mut [f32]) {
    let m = c.len();
    let gate = |g: usize| pre[g * m..][..m].iter().zip(&bias[g * m..][..m]);
    let gates = gate(0).zip(gate(1)).zip(gate(2).zip(gate(3)));
    for ((c, out), (((i, bi), (f, bf)), ((g, bg), (o, bo)))) in
        c.iter_mut().zip(out.iter_mut()).zip(gates)
    {
        let (i, f) = (sigmoid(i + bi), sigmoid(f + bf));
        let (g, o) = (tanh_rational(g + bg), sigmoid(o + bo));
        *c = f * *c + i * g;
        *out = o * tanh_rational(*c);
    }
}

/// The logistic function as ½ + ½·tanh(x/2), through [`tanh_rational`].
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh_rational(x * 0.5)
}

/// The rational approximation of tanh that Eigen uses (and so XLA and TensorFlow on the CPU),
/// on [-7.9, 7.9]; past that tanh is within 2.5e-7 of ±1.
#[inline(always)]
fn tanh_rational(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6];
    let small = x.abs() < 4e-4;
    let c = x.clamp(-CLAMP, CLAMP);
    let c2 = c * c;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p.mul_add(c2, *a);
    }
    let p = p * c;
    let q = BETA[3]
        .mul_add(c2, BETA[2])
        .mul_add(c2, BETA[1])
        .mul_add(c2, BETA[0]);
    if small {
        x
    } else if x.abs() >= CLAMP {
        1.0f32.copysign(x)
    } else {
        p / q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_tanh_is_within_5e7_of_exact() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let mut v = [x];
            tanh_in_place(&mut v);
            let exact = f64::from(x).tanh();
            worst = worst.max((f64::from(v[0]) - exact).abs());
            x += 1.0e-4;
        }
        assert!(worst < 5e-7, "worst error {worst}");
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-30];
        tanh_in_place(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(&special[1..], &[1.0, -1.0, 0.0, -0.0, 1e-30]);
    }

    /// The portable loop, forced, gives the same bits as the version this CPU dispatches to
    /// (AVX-512, AVX2+FMA or NEON where the machine has them), so the vectorised builds cannot
    /// drift from the one other CPUs run.
    #[test]
    fn portable_tanh_matches_the_dispatched_one_bit_for_bit() {
        let inputs: Vec<f32> = (-130_000..130_000)
            .map(|i| i as f32 * 1.0e-4)
            .chain([
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
                1e-30,
                3.9e-4,
                7.9053,
            ])
            .collect();
        let mut dispatched = inputs.clone();
        tanh_in_place(&mut dispatched);
        let mut portable = inputs.clone();
        tanh_portable(&mut portable);
        for ((x, d), p) in inputs.iter().zip(&dispatched).zip(&portable) {
            let same = d.to_bits() == p.to_bits() || (d.is_nan() && p.is_nan());
            assert!(same, "tanh({x}): dispatched {d}, portable {p}");
        }
    }

    /// Every row count (the few-row product up to [`FEW_ROWS`], `gemm` past it), column counts
    /// with and without full blocks and tails, padded strides, and accumulation onto `dst`.
    #[test]
    fn products_accumulate_or_overwrite_at_every_shape() {
        let value = |i: usize| ((i * 37) % 23) as f32 * 0.25 - 2.5;
        for rows in 1..=6 {
            for (k, cols) in [(1, 1), (7, 5), (33, 64), (20, 75), (128, 200), (3, 515)] {
                for pad in [0, 16] {
                    let (ds, rs) = (cols + pad + 1, padded_stride(cols) + pad);
                    let lhs: Vec<f32> = (0..rows * k).map(value).collect();
                    let rhs: Vec<f32> = (0..k * rs).map(|i| value(i + 5)).collect();
                    let mut dst: Vec<f32> = (0..rows * ds).map(|i| value(i + 11)).collect();
                    let before = dst.clone();
                    let shape = (rows, k, cols);
                    let mut overwritten = dst.clone();
                    matmul_acc_strided(shape, (&mut dst, ds), &lhs, (&rhs, rs), rows % 2 == 0);
                    matmul_strided(shape, (&mut overwritten, ds), &lhs, (&rhs, rs), false);
                    for r in 0..rows {
                        for c in 0..ds {
                            let got = dst[r * ds + c];
                            let want = if c < cols {
                                (0..k).fold(f64::from(before[r * ds + c]), |acc, d| {
                                    acc + f64::from(lhs[r * k + d]) * f64::from(rhs[d * rs + c])
                                })
                            } else {
                                // Past the block: untouched.
                                f64::from(before[r * ds + c])
                            };
                            let tolerance = 1e-5 * (k as f64 + 1.0);
                            let alone = f64::from(overwritten[r * ds + c]);
                            let want_alone = match c < cols {
                                true => want - f64::from(before[r * ds + c]),
                                false => want,
                            };
                            assert!(
                                (alone - want_alone).abs() <= tolerance,
                                "{rows}×{k}×{cols}, pad {pad}, overwritten: [{r}, {c}]"
                            );
                            assert!(
                                (f64::from(got) - want).abs() <= tolerance,
                                "{rows}×{k}×{cols}, pad {pad}: [{r}, {c}] {got} against {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn padded_rows_keep_the_values_and_break_power_of_two_strides() {
        assert_eq!(padded_stride(100), 100);
        assert_eq!(padded_stride(64), 64);
        assert_eq!(padded_stride(1024), 1040);
        let a = ndarray::Array2::from_shape_fn((3, 256), |(i, j)| (i * 1000 + j) as f32);
        let padded = PaddedRows::new(a.view());
        let (data, stride) = padded.strided();
        assert_eq!(stride, 272);
        for ((i, j), v) in a.indexed_iter() {
            assert_eq!(data[i * stride + j], *v);
        }
    }

    /// The one-pass LSTM row gives the bits of the block-by-block definition.
    #[test]
    fn standard_lstm_row_matches_its_definition() {
        let m = 37;
        let pre: Vec<f32> = (0..4 * m).map(|i| (i as f32 * 0.731).sin() * 6.0).collect();
        let c0: Vec<f32> = (0..m).map(|i| (i as f32 * 0.37).cos() * 3.0).collect();
        let bias: Vec<f32> = (0..4 * m).map(|i| (i as f32 * 0.3).cos()).collect();
        let (mut c, mut out) = (c0.clone(), vec![0.0f32; m]);
        lstm_row_standard(&pre, &bias, &mut out, &mut c);
        let pre: Vec<f32> = pre.iter().zip(&bias).map(|(p, b)| p + b).collect();
        let sig = |x: f32| {
            let mut v = [x * 0.5];
            tanh_in_place(&mut v);
            0.5 + 0.5 * v[0]
        };
        let tanh = |x: f32| {
            let mut v = [x];
            tanh_in_place(&mut v);
            v[0]
        };
        for j in 0..m {
            let (i, f) = (sig(pre[j]), sig(pre[m + j]));
            let (g, o) = (tanh(pre[2 * m + j]), sig(pre[3 * m + j]));
            let cj = f * c0[j] + i * g;
            assert_eq!(c[j].to_bits(), cj.to_bits());
            assert_eq!(out[j].to_bits(), (o * tanh(cj)).to_bits());
        }
    }
}
