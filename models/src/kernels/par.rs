//! Work split across the compute pool outside the quantised products: a pointer the pool's
//! threads write through at disjoint indices, and row-parallel loops for element-wise work.

/// A pointer that the pool's threads write through at disjoint indices.
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);

// SAFETY: every user writes indices no other thread touches during the job.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }

    /// # Safety
    /// `start..start + len` lies in the allocation and no other thread uses it meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: the caller keeps `start..start + len` in the allocation and
        // unshared (this function's contract).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Values below which [`par_rows_light`] stays on the calling thread: element-wise work this
/// small (a decode step's norms, RoPE and activations) takes less time than the pool's
/// threads take to meet at a barrier.
const LIGHT_PARALLEL_VALUES: usize = 16 * 1024;

/// [`par_rows`] for cheap element-wise rows (a few operations per value): on the calling
/// thread when `out` holds fewer than [`LIGHT_PARALLEL_VALUES`] values.
pub(crate) fn par_rows_light(
    out: &mut [f32],
    row_len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if out.len() < LIGHT_PARALLEL_VALUES && row_len > 0 {
        for (i, row) in out.chunks_exact_mut(row_len).enumerate() {
            f(i, row);
        }
        return;
    }
    par_rows(out, row_len, f);
}

/// Runs `f(row, out_row)` for every `row_len`-long row of `out`, on the compute pool when
/// there are enough rows to share.
pub(crate) fn par_rows(out: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    if rows < 4 {
        for (i, row) in out.chunks_exact_mut(row_len).enumerate() {
            f(i, row);
        }
        return;
    }
    let ptr = SyncPtr(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for i in range {
            // SAFETY: row `i` is inside `out` and belongs to this chunk alone.
            f(i, unsafe { ptr.slice(i * row_len, row_len) });
        }
    });
}
