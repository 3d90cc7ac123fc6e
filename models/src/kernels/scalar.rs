//! Portable dot products of one quantised weight row with quantised activation rows: the
//! reference the SIMD kernels are tested against, and the path on CPUs without them.
//!
//! The arithmetic is the SIMD kernels', step for step: integer products are exact, and the
//! float steps (eight lanes of fused multiply-adds for 32-blocks, then ggml's horizontal-sum
//! order; one scalar accumulator per 256-block format) happen in the same order, so both
//! paths give the same bits.

use super::act::Acts;
use super::format::{WeightFormat, f16_at, k_scale_min};

/// `out[j] = w · acts[first + j]`, `w` being one weight row in `format`.
pub fn dot_rows(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        let i = first + j;
        *o = match format {
            WeightFormat::Q4_0 | WeightFormat::Q5_0 | WeightFormat::Q8_0 => {
                dot_block32(format, w, acts, i)
            }
            WeightFormat::Q4_1 => super::q4_1::dot_scalar(w, acts, i),
            WeightFormat::Q4K | WeightFormat::Q5K => dot_k(format, w, acts, i),
            WeightFormat::Q6K => dot_q6k(w, acts, i),
        };
    }
}

/// The 32 signed values of a Q4_0/Q5_0/Q8_0 block.
pub fn decode_block32(format: WeightFormat, b: &[u8]) -> [i8; 32] {
    let mut v = [0i8; 32];
    match format {
        WeightFormat::Q8_0 => {
            for (v, &q) in v.iter_mut().zip(&b[2..34]) {
                *v = q as i8;
            }
        }
        WeightFormat::Q4_0 => {
            for j in 0..16 {
                v[j] = (b[2 + j] & 0x0f) as i8 - 8;
                v[j + 16] = (b[2 + j] >> 4) as i8 - 8;
            }
        }
        WeightFormat::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) as u8;
                let h1 = ((qh >> (j + 16)) & 1) as u8;
                v[j] = ((b[6 + j] & 0x0f) | (h0 << 4)) as i8 - 16;
                v[j + 16] = ((b[6 + j] >> 4) | (h1 << 4)) as i8 - 16;
            }
        }
        _ => {}
    }
    v
}

/// ggml's horizontal sum of eight lanes: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
pub fn hsum8(l: [f32; 8]) -> f32 {
    let r = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

fn dot_block32(format: WeightFormat, w: &[u8], acts: &Acts, row: usize) -> f32 {
    let bytes = format.block_bytes();
    let nb = acts.blocks_per_row();
    let mut acc = [0f32; 8];
    for b in 0..nb {
        let wb = &w[b * bytes..(b + 1) * bytes];
        let q = decode_block32(format, wb);
        let a = &acts.qs[(row * nb + b) * 32..][..32];
        let d = f16_at(wb, 0) * acts.d[row * nb + b];
        for (lane, acc) in acc.iter_mut().enumerate() {
            let s: i32 = (0..4)
                .map(|t| i32::from(q[lane * 4 + t]) * i32::from(a[lane * 4 + t]))
                .sum();
            *acc = d.mul_add(s as f32, *acc);
        }
    }
    hsum8(acc)
}

/// The 256 unsigned values of a K-quant block and its 16 per-16 scales (for Q4K/Q5K each
/// sub-block scale is repeated twice) and 8 per-32 mins (zero for Q6K). Q6K values are stored
/// with their offset (0..63); the caller subtracts `32 · Σ scale · bsum`.
pub fn decode_k(format: WeightFormat, b: &[u8]) -> ([u8; 256], [i32; 16], [i32; 8]) {
    let mut v = [0u8; 256];
    let mut sc = [0i32; 16];
    let mut mins = [0i32; 8];
    match format {
        WeightFormat::Q4K | WeightFormat::Q5K => {
            let scales = &b[4..16];
            for j in 0..8 {
                let (s, m) = k_scale_min(scales, j);
                sc[2 * j] = i32::from(s);
                sc[2 * j + 1] = i32::from(s);
                mins[j] = i32::from(m);
            }
            let (qh, qs) = if format == WeightFormat::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            for p in 0..4 {
                for l in 0..32 {
                    let byte = qs[32 * p + l];
                    let (h0, h1) = match qh {
                        Some(qh) => ((qh[l] >> (2 * p)) & 1, (qh[l] >> (2 * p + 1)) & 1),
                        None => (0, 0),
                    };
                    v[64 * p + l] = (byte & 0x0f) | (h0 << 4);
                    v[64 * p + 32 + l] = (byte >> 4) | (h1 << 4);
                }
            }
        }
        WeightFormat::Q6K => {
            let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
            for (s, &x) in sc.iter_mut().zip(scales) {
                *s = i32::from(x as i8);
            }
            for c in 0..8 {
                let (n, t) = (c / 4, c % 4);
                for l in 0..32 {
                    let lo = ql[64 * n + (t & 1) * 32 + l];
                    let lo = if t < 2 { lo & 0x0f } else { lo >> 4 };
                    let hi = (qh[32 * n + l] >> (2 * t)) & 3;
                    v[32 * c + l] = lo | (hi << 4);
                }
            }
        }
        _ => {}
    }
    (v, sc, mins)
}

/// Integer sums of one K-quant block against one activation block: `Σ scale·q·a` over the
/// 16 groups and the correction `Σ min·bsum` (Q4K/Q5K); for Q6K the offset `32·Σ scale·bsum`
/// is already subtracted from the first and the second is 0.
pub fn k_block_sums(format: WeightFormat, wb: &[u8], a: &[i8], bsums: &[i32]) -> (i32, i32) {
    let (v, sc, _) = decode_k(format, wb);
    let mut sumi = 0i32;
    for g in 0..16 {
        let s: i32 = (0..16)
            .map(|l| i32::from(v[16 * g + l]) * i32::from(a[16 * g + l]))
            .sum();
        sumi += sc[g] * s;
    }
    k_block_sums_from(format, wb, sumi, bsums)
}

/// Pairs `sumi` (`Σ scale·q·a`) with the block's correction term, read from its scales.
#[inline(always)]
pub fn k_block_sums_from(format: WeightFormat, wb: &[u8], sumi: i32, bsums: &[i32]) -> (i32, i32) {
    let corr = match format {
        WeightFormat::Q6K => {
            let corr = 32
                * (0..16)
                    .map(|g| i32::from(wb[192 + g] as i8) * bsums[g])
                    .sum::<i32>();
            return (sumi - corr, 0);
        }
        _ => (0..8)
            .map(|j| i32::from(k_scale_min(&wb[4..16], j).1) * (bsums[2 * j] + bsums[2 * j + 1]))
            .sum(),
    };
    (sumi, corr)
}

/// Combines one K-quant block's integer sums into the row's two running float sums, in the one
/// order every path uses: `Σ (da·dw)·sumi` and `Σ (da·dmin)·corr`, subtracted at the end by
/// [`k_finish`]. Two sums, not one, because that is how ggml's AVX2 build multiplies Q4K (its
/// repacked eight-row kernels); Q5K's products follow the same order.
#[inline(always)]
pub fn k_accumulate(format: WeightFormat, wb: &[u8], da: f32, sums: (i32, i32), acc: KAcc) -> KAcc {
    let (dw, dmin) = k_scales(format, wb);
    k_accumulate_with(dw, dmin, da, sums, acc)
}

/// A Q4K/Q5K row's running sums: scaled `sumi`s and scaled corrections.
pub type KAcc = [f32; 2];

/// The block's super-scale and super-min (zero for Q6K), as f32.
#[inline(always)]
pub fn k_scales(format: WeightFormat, wb: &[u8]) -> (f32, f32) {
    match format {
        WeightFormat::Q6K => (f16_at(wb, 208), 0.0),
        _ => (f16_at(wb, 0), f16_at(wb, 2)),
    }
}

/// [`k_accumulate`] with the block's scales already read.
#[inline(always)]
pub fn k_accumulate_with(dw: f32, dmin: f32, da: f32, sums: (i32, i32), acc: KAcc) -> KAcc {
    [
        (da * dw).mul_add(sums.0 as f32, acc[0]),
        (da * dmin).mul_add(sums.1 as f32, acc[1]),
    ]
}

/// The row's dot product from its running sums.
#[inline(always)]
pub fn k_finish(acc: KAcc) -> f32 {
    acc[0] - acc[1]
}

/// Q6K's eight lane sums of one block, as ggml's AVX2 `ggml_vec_dot_q6_K_q8_K` forms them:
/// lane `l` holds `Σ scale·q·a` over bytes `4l..4l+4` of each 32-value chunk, less
/// `32·(bsum₂ₗ·scale₂ₗ + bsum₂ₗ₊₁·scale₂ₗ₊₁)`.
pub fn q6k_lanes(wb: &[u8], a: &[i8], bsums: &[i32]) -> [i32; 8] {
    let (v, sc, _) = decode_k(WeightFormat::Q6K, wb);
    let mut lanes = [0i32; 8];
    for c in 0..8 {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let scale = sc[2 * c + usize::from(l >= 4)];
            let s: i32 = (4 * l..4 * l + 4)
                .map(|i| i32::from(v[32 * c + i]) * i32::from(a[32 * c + i]))
                .sum();
            *lane += scale * s;
        }
    }
    for (l, lane) in lanes.iter_mut().enumerate() {
        *lane -= 32 * (bsums[2 * l] * sc[2 * l] + bsums[2 * l + 1] * sc[2 * l + 1]);
    }
    lanes
}

/// Q6K rows keep eight float lanes, `lane += (da·dw)·sum`, folded at the end by [`hsum8`].
#[inline(always)]
pub fn q6k_accumulate(d: f32, lanes: [i32; 8], acc: [f32; 8]) -> [f32; 8] {
    std::array::from_fn(|l| d.mul_add(lanes[l] as f32, acc[l]))
}

fn dot_q6k(w: &[u8], acts: &Acts, row: usize) -> f32 {
    let bytes = WeightFormat::Q6K.block_bytes();
    let nb = acts.blocks_per_row();
    let tiled = acts.order(row).q6k_tiled;
    let (mut lanes_acc, mut acc) = ([0f32; 8], 0f32);
    for b in 0..nb {
        let wb = &w[b * bytes..(b + 1) * bytes];
        let blk = row * nb + b;
        let lanes = q6k_lanes(
            wb,
            &acts.qs[blk * 256..][..256],
            &acts.bsums[blk * 16..][..16],
        );
        let (dw, da) = (f16_at(wb, 208), acts.d[blk]);
        if tiled {
            acc = q6k_tiled_accumulate(dw, da, lanes.iter().sum(), acc);
        } else {
            lanes_acc = q6k_accumulate(da * dw, lanes, lanes_acc);
        }
    }
    if tiled { acc } else { hsum8(lanes_acc) }
}

/// Q6K in llama.cpp's tiled order: `acc + (dw·sumi)·da`, `sumi` the block's whole sum.
#[inline(always)]
pub fn q6k_tiled_accumulate(dw: f32, da: f32, sumi: i32, acc: f32) -> f32 {
    (dw * sumi as f32).mul_add(da, acc)
}

/// Q4K integer sums of one block per 64 values (sub-blocks `2s` and `2s+1`): `Σ scale·q·a` and
/// `Σ min·bsum`, the pieces llama.cpp's repacked 4-row kernel multiplies one at a time.
pub fn q4k_sb_sums(wb: &[u8], a: &[i8], bsums: &[i32]) -> [(i32, i32); 4] {
    let (v, sc, mins) = decode_k(WeightFormat::Q4K, wb);
    std::array::from_fn(|sb| {
        let sumi = (4 * sb..4 * sb + 4)
            .map(|g| {
                sc[g]
                    * (0..16)
                        .map(|l| i32::from(v[16 * g + l]) * i32::from(a[16 * g + l]))
                        .sum::<i32>()
            })
            .sum();
        let corr = (2 * sb..2 * sb + 2)
            .map(|j| mins[j] * (bsums[2 * j] + bsums[2 * j + 1]))
            .sum();
        (sumi, corr)
    })
}

fn dot_k(format: WeightFormat, w: &[u8], acts: &Acts, row: usize) -> f32 {
    let bytes = format.block_bytes();
    let nb = acts.blocks_per_row();
    let groups = format == WeightFormat::Q4K && acts.order(row).q4k_groups;
    let mut acc = [0f32; 2];
    for b in 0..nb {
        let wb = &w[b * bytes..(b + 1) * bytes];
        let blk = row * nb + b;
        let (a, bs) = (&acts.qs[blk * 256..][..256], &acts.bsums[blk * 16..][..16]);
        if groups {
            let (dw, dmin) = k_scales(format, wb);
            for part in q4k_sb_sums(wb, a, bs) {
                acc = k_accumulate_with(dw, dmin, acts.d[blk], part, acc);
            }
        } else {
            acc = k_accumulate(
                format,
                wb,
                acts.d[blk],
                k_block_sums(format, wb, a, bs),
                acc,
            );
        }
    }
    k_finish(acc)
}
