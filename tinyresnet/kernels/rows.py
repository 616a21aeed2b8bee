"""Batch norm's, ReLU's and the add's memory passes, in cache-sized chunks dealt out to the kernels' threads.

A map after a convolution is channels-last in memory: its values are rows of W·C numbers (one row of
the image, every channel of each pixel in turn). Seen that way, as a 2-D (N·H, W·C) array, a
per-channel step is a row-by-row step with a vector of W·C numbers (the C per-channel values
repeated W times, ``tile``), which NumPy runs at full speed; against the (C,) vector itself the inner
loop would only be C long (16 in a CIFAR ResNet's first stage, 2–3× slower per value). The rows are
cut into chunks of about ``CHUNK_VALUES`` numbers, so that the two or three arrays a step touches stay
in the core's cache between its operations, and the compute threads take the chunks in turn
(``kernels.for_each_item``; NumPy releases the GIL inside each operation).

A per-channel sum is a product with a vector of ones (BLAS's gemv, which reads the chunk once at
memory speed, several times faster than NumPy's ``sum(axis=0)`` over short rows), then the W·C
numbers folded to C (``fold``).
"""

import numpy as np

from .threads import for_each_item

# Numbers per chunk: 512 KiB of float32; the two or three arrays a step touches still fit in a 2 MiB L2 cache.
# Smaller chunks mean more, shorter NumPy calls, and two threads then spend their time handing the GIL to each
# other between calls: on 2 threads a 128×16×32×32 batch norm forward and backward took 18 ms in 128 KiB
# chunks against 12.3 ms in these, and ResNet-20's step at batch 128 884 against 940 ms (5 alternating rounds).
CHUNK_VALUES = 1 << 17
# Numbers per float32 partial sum: a chunk's rows are summed in groups of about this many numbers (one NumPy
# call for the whole chunk), and the groups' sums added in float64. Summed in float32 over whole chunks of
# 1 << 17 numbers, a float32 ResNet-20 run on the digits left the float64 run at the 4th step (3e-4 against
# 2e-7 relative), since training at lr 0.1 amplifies the last bits of batch norm's sums.
SUM_VALUES = 1 << 15


def pixel_rows(a):
    """The memory of a channels-last (N, C, H, W) NumPy array as a (N·H, W·C) view; None for any other layout,
    a GPU array, or an array that is not 4-D."""
    if not isinstance(a, np.ndarray) or a.ndim != 4:
        return None
    last = a.transpose(0, 2, 3, 1)                                  # (N, H, W, C)
    if not last.flags.c_contiguous:
        return None
    N, H, W, C = last.shape
    return last.reshape(N * H, W * C)


def flat_values(a):
    """The memory of a C-contiguous or channels-last NumPy array as a 1-D view (the values in memory
    order); None otherwise."""
    if not isinstance(a, np.ndarray):
        return None
    if a.flags.c_contiguous:
        return a.reshape(-1)
    rows = pixel_rows(a)
    return None if rows is None else rows.reshape(-1)


def memory_order(a):
    """"C" for a C-contiguous NumPy array, "NHWC" for a channels-last one, else None: two arrays of one shape
    and one memory order have their values in the same order in ``flat_values``."""
    if not isinstance(a, np.ndarray):
        return None
    if a.flags.c_contiguous:
        return "C"
    return "NHWC" if pixel_rows(a) is not None else None


def as_map(rows, shape):
    """(N·H, W·C) rows back to the (N, C, H, W) view they came from (``shape`` is the map's)."""
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def chunks(n_rows, row_length, multiple=1):
    """Slices of ``n_rows`` rows of ``row_length`` numbers each, about CHUNK_VALUES numbers a chunk (one row
    at least), each a whole number of ``multiple`` rows but the last."""
    step = multiple * max(1, CHUNK_VALUES // (multiple * max(1, row_length)))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)] or [slice(0, 0)]


def tile(per_channel, width, dtype):
    """A (C,) vector repeated ``width`` times: (W·C,), to go with each row of ``pixel_rows``."""
    return np.tile(np.asarray(per_channel, dtype=dtype), width)


def fold(row_sums, channels):
    """(W·C,) sums of the rows' columns to (C,) per-channel sums."""
    return row_sums.reshape(-1, channels).sum(axis=0)


def group_rows(row_length):
    """Rows per float32 partial sum: about SUM_VALUES numbers (one row at least)."""
    return max(1, SUM_VALUES // max(1, row_length))


def grouped(block, group):
    """A chunk of rows as (groups, group, row length) plus the rows left over (maybe none): views, no copy."""
    whole = block.shape[0] // group * group
    return block[:whole].reshape(-1, group, block.shape[1]), block[whole:]


def column_sums(block, group, other=None):
    """Σ over a chunk's rows of block (or of block·other, with no product array), each group of ``group`` rows
    summed in float32 in one call (a stacked gemv, or einsum), the groups' sums added in float64: (row length,)."""
    stacked, rest = grouped(block, group)
    total = np.zeros(block.shape[1])
    if other is None:
        ones = np.ones(group, dtype=block.dtype)
        if stacked.size:
            total += (ones @ stacked).sum(axis=0, dtype=np.float64)     # one gemv per group (gemv: memory speed)
        if rest.size:
            total += ones[:rest.shape[0]] @ rest
        return total
    stacked_other, rest_other = grouped(other, group)
    if stacked.size:
        total += np.einsum("kij,kij->kj", stacked, stacked_other).sum(axis=0, dtype=np.float64)
    if rest.size:
        total += np.einsum("ij,ij->j", rest, rest_other)
    return total


def centred_sums(rows, centre_t, channels, weights=None):
    """Per-channel Σ c and Σ c² for c = rows − centre, or with ``weights`` (an array of the rows' shape)
    Σ weights and Σ weights·c: two float64 (C,) arrays, from one pass over the memory on the compute threads.
    Each chunk's c is made in a chunk-sized buffer (in cache, never written to memory); ``centre_t`` is the
    centre ``tile``'d. Each chunk's sums are float32 partial sums of SUM_VALUES numbers (``column_sums``),
    added in float64."""
    group = group_rows(rows.shape[1])
    parts = chunks(*rows.shape, multiple=group)                         # whole groups in every chunk but the last

    def sums(part, buffer):                             # one chunk's Σ c and Σ c² (or Σ weights, Σ weights·c)
        centred = np.subtract(rows[part], centre_t, out=buffer[:part.stop - part.start])
        weight = centred if weights is None else weights[part]
        return column_sums(weight, group), column_sums(weight, group, centred)    # no product array

    results = for_each_item(sums, parts, setup=chunk_buffer(parts, rows.shape[1], rows.dtype))
    return [fold(sum(r[k] for r in results), channels) for k in range(2)]    # the chunks' sums, in their order


def sample_mean(rows, channels):
    """Per-channel mean of every k-th row, k chosen so that about CHUNK_VALUES numbers are read, float64 (C,): a
    centre for ``centred_sums`` near the batch's mean, taken from across the whole batch (a batch sorted by some
    property would make the first rows alone a poor sample). A subset of m of the n numbers has a mean within
    σ·√(n/m − 1) of the batch's, so Σ(x − K)² about it loses at most a factor n/m of float32 precision to
    cancellation in an adversarial batch, and nothing measurable in a batch of ordinary images."""
    step = max(1, rows.shape[0] * rows.shape[1] // CHUNK_VALUES)
    sample = rows[::step]
    per_channel = sample.shape[0] * rows.shape[1] // channels                # numbers of each channel read
    return fold(column_sums(sample, group_rows(rows.shape[1])), channels) / per_channel


def each_chunk(work, n_rows, row_length, scratch=None):
    """Run ``work(part)`` for every chunk of rows (``chunks``), the chunks taken by the compute threads in turn.

    ``scratch`` (a dtype): ``work(part, buffer)`` instead, with one chunk-sized buffer per thread for its
    temporaries, reused for all of that thread's chunks.
    """
    parts = chunks(n_rows, row_length)
    for_each_item(work, parts, setup=None if scratch is None else chunk_buffer(parts, row_length, scratch))


def chunk_buffer(parts, row_length, dtype):
    """A ``setup`` for ``for_each_item``: makes one buffer the size of the largest of ``parts`` (the first),
    for a thread to reuse for each chunk it takes (in cache)."""
    return lambda: np.empty((parts[0].stop - parts[0].start, row_length), dtype)
