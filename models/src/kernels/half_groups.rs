//! How the AVX2 tiles of the packed formats ([`super::packed32_avx2`], [`super::packed_avx2`])
//! walk a matrix: group by group, each half group in turn; one activation row (a decode step)
//! reads the values straight from the packed blocks, several (a prefill) read the half group's
//! values unpacked once into plain bytes.

/// One packed group's AVX2 tile.
pub(super) trait HalfTile {
    /// Bytes one half group's values take unpacked.
    fn unpacked_bytes(&self) -> usize;

    /// Unpacks half `half` of the group into `buf` ([`Self::unpacked_bytes`] long).
    ///
    /// # Safety
    /// The tile's contract holds, `half` is 0 or 1, and the CPU has AVX2, FMA and F16C.
    unsafe fn unpack(&self, half: usize, buf: &mut [u8]);

    /// Half `half` of the group times activation row `row`, the values read from `unpacked`
    /// (what [`Self::unpack`] wrote for this half) where given, else from the packed blocks.
    ///
    /// # Safety
    /// As [`Self::unpack`], and activation row `row` exists.
    unsafe fn run(&self, half: usize, row: usize, unpacked: Option<&[u8]>);
}

/// Runs `tile(group)` for every group of `groups` against activation rows `0..rows`.
///
/// # Safety
/// Every tile `tile` gives keeps its contract for those rows, and the CPU has AVX2, FMA and
/// F16C.
pub(super) unsafe fn walk<T: HalfTile>(
    groups: std::ops::Range<usize>,
    rows: usize,
    tile: impl Fn(usize) -> T,
) {
    let mut unpacked = Vec::new();
    for group in groups {
        let t = tile(group);
        for half in 0..2 {
            // SAFETY: the caller's contract; `unpacked` is sized for the half group.
            unsafe {
                if rows > 1 {
                    unpacked.resize(t.unpacked_bytes(), 0);
                    t.unpack(half, &mut unpacked);
                    for r in 0..rows {
                        t.run(half, r, Some(&unpacked));
                    }
                } else {
                    t.run(half, 0, None);
                }
            }
        }
    }
}
