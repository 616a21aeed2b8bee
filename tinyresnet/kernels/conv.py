"""Fast convolutions: the plain tier's ``Conv2dFunction`` and ``Conv1x1Function`` (``tinyresnet.ops.conv``)
made fast, each step measured against PyTorch CPU (see benchmarks/README.md). Same values, same gradients.

- im2col builds the rows with one copy of a strided view of the padded input (``strided_im2col``):
  no Python loop over the window offsets.
- The convolutions work on a slice of the batch at a time (``batch_chunks``, about 2048 rows):
  the columns of a slice (4.7 MB for 64 channels) are still in cache when the matrix product reads
  them, and one buffer is reused for every slice (``strided_im2col(..., out=buf)``). The columns are
  never kept for backward (they are 9× the input for a 3×3 kernel): backward rebuilds them, a slice
  at a time.
- The matrices are laid out so that BLAS needs no transposed copies: columns on the left,
  channels last. The output is therefore channels-last in memory, returned as an (N, C, H, W)
  view, and the next op (batch norm, ReLU, the next convolution) reads it in that order without
  a copy.
- For stride 1, dx is a gather (im2col of the padded dout times the flipped filters) instead of
  col2im's scatter, and dW comes from the same columns of dout (xᵀ · im2col(dout) is dW with its taps
  flipped), so backward never rebuilds x's columns: one backward of a 3×3 conv at batch 128 took
  20–30% less time on one thread (16@32: 38 → 31 ms; 64@8: 18 → 13 ms, thread CPU time).
- A dilation is only other strides in the strided view (a window's taps d pixels apart), so the
  forward, the weight gradient and the stride-1 gather handle it as they handle d = 1; a strided
  dilated dx goes through the plain ``col2im``, as every strided dx does.
- Inside ``kernels.num_threads(n)`` (the training loop runs in one), n threads take the slices in turn
  (``for_each_item``), each building its own columns and calling BLAS on one thread.
  Run serially, a slice's copies use one core while BLAS's idle threads spin on the others.
"""

import numpy as np

from ..backend import get_array_module
from ..ops.checks import output_size
from ..ops.conv import Conv1x1Function, Conv2dFunction, check_conv, col2im
from .threads import for_each_item, get_num_threads, uses_threads

ROWS_PER_CHUNK = 2048   # im2col rows per slice of the batch at most: its columns are still in cache for the product
# For products of up to 128 output channels the slice is cut further, to columns of about COLUMN_BYTES (in a 2 MiB
# L2 cache with the product's output), but never below MIN_ROWS rows. One 3×3 layer's forward and backward at
# batch 128, one thread, thread CPU time (5 rounds, medians): 64@8 26.2 ms in slices of 512 rows against 35.5 in
# 2048; 64@32 at batch 64 237 against 316 ms; 32@16 and 128@16 unchanged (1.02×, 1.00×). Wider products run better
# on more rows (256@8 at batch 64: 1.43× slower in slices of 128 rows, 512@4 1.72× in 64), so they keep 2048.
COLUMN_BYTES, MIN_ROWS, NARROW_PRODUCT = 5 << 18, 512, 128


def strided_im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), out=None, dilation=(1, 1), padded=None):
    """``ops.conv.im2col`` by one copy of a strided view: the same rows, no loop over the window offsets.

    ``out``, if given, is a C-contiguous (N*OH*OW, KH*KW*C) array to write the rows into: conv2d
    reuses one for every slice of the batch instead of asking for fresh memory each time. ``padded``,
    likewise, is an (N', H+2ph, W+2pw, C) array with N' ≥ N and a border of zeros (``padded_buffer``),
    reused for the padded copy of x: only its inside is written.
    Shapes: x (N, C, H, W) -> cols (N*OH*OW, KH*KW*C)
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x = x.transpose(0, 2, 3, 1)                                         # (N, H, W, C)
    if ph or pw:
        x = pad_hw(x, ph, pw, out=None if padded is None else padded[:N])   # (N, H+2ph, W+2pw, C)
    # a view of every window, no copy: moving one output position moves (sh, sw) pixels,
    # moving one offset (i, j) inside the window moves (dh, dw) pixels
    sN, sH, sW, sC = x.strides
    windows = xp.lib.stride_tricks.as_strided(
        x, (N, OH, OW, kh, kw, C), (sN, sH * sh, sW * sw, sH * dh, sW * dw, sC))  # (N, OH, OW, KH, KW, C)
    if out is None:
        return windows.reshape(N * OH * OW, kh * kw * C)                # the one copy
    out.reshape(windows.shape)[...] = windows                           # the one copy, into out
    return out


def pad_hw(x, ph, pw, value=0, after=None, out=None):
    """x with ph rows of ``value`` above and below, pw columns left and right (as xp.pad, faster).

    ``after`` = (rows below, columns right), if given, replaces ph and pw below and right (a pool's
    ceil_mode pads more there). ``out``, if given, is an array of the result's shape whose border
    already holds ``value`` (``padded_buffer``): only the inside is written, and ``out`` returned.
    Shapes: x (N, H, W, C) -> (N, H+2ph, W+2pw, C), or (N, ph+H+after[0], pw+W+after[1], C)
    """
    xp = get_array_module(x)
    N, H, W, C = x.shape
    bottom, right = (ph, pw) if after is None else after
    if out is None:
        out = xp.empty((N, ph + H + bottom, pw + W + right, C), dtype=x.dtype)
        out[:, :ph], out[:, ph + H:], out[:, :, :pw], out[:, :, pw + W:] = value, value, value, value   # the border
    out[:, ph:ph + H, pw:pw + W] = x                                               # the inside
    return out


def padded_buffer(x, images, padding, xp=np):
    """Zeros of shape (images, H+2ph, W+2pw, C) for ``strided_im2col(..., padded=)`` of slices of x (N, C, H, W):
    the border stays zero and each slice writes only the inside, so that no slice asks for memory or writes
    the border again (about 10-20% of a 3×3 im2col of 16-64 channels); None where there is no padding."""
    (ph, pw), (_, C, H, W) = padding, x.shape
    return xp.zeros((images, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype) if ph or pw else None


def slice_rows(columns, products, itemsize):
    """im2col rows per slice of the batch for ``columns`` numbers a row (KH·KW·C) of ``itemsize`` bytes each,
    multiplied into ``products`` output channels: ROWS_PER_CHUNK, or for up to NARROW_PRODUCT channels as many
    as fill COLUMN_BYTES (MIN_ROWS at least)."""
    if products > NARROW_PRODUCT:
        return ROWS_PER_CHUNK
    return min(ROWS_PER_CHUNK, max(MIN_ROWS, COLUMN_BYTES // (columns * itemsize)))


def batch_chunks(n, rows_per_image, xp=np, rows=None):
    """Slices of a batch of ``n`` images with about ``rows`` im2col rows each (default ROWS_PER_CHUNK; one image
    at least), and at least one slice per compute thread (``kernels.num_threads``). An empty batch is one empty
    slice, so that the products still run (and give a zero weight gradient), as in PyTorch. On a GPU
    (``xp`` not NumPy) the whole batch is one slice: the slices exist for the CPU's cache and cores,
    and on a GPU they would only multiply the kernel launches (ResNet-20's step at batch 64: 7699
    against 1716, counted on the test suite's stand-in GPU)."""
    if xp is not np:
        return [slice(0, n)]
    rows = ROWS_PER_CHUNK if rows is None else rows
    step = max(1, min(rows // rows_per_image, -(-n // get_num_threads())))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)] or [slice(0, 0)]


def row_blocks(n_rows, xp=np):
    """``n_rows`` rows cut into one contiguous block per compute thread (``kernels.num_threads``);
    no rows (an empty batch) is one empty block; one block on a GPU (see ``batch_chunks``)."""
    if xp is not np:
        return [slice(0, n_rows)]
    step = max(1, -(-n_rows // get_num_threads()))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)] or [slice(0, 0)]


class FastConv2dFunction(Conv2dFunction):
    """``ops.conv.Conv2dFunction``, a slice of the batch at a time, with reused buffers and threads.

    out = cols · Wmat with cols = strided_im2col(x), computed a slice of the batch at a time.
    Shapes: x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC,) or None -> (N, OC, OH, OW)
    Saves:  x, the weight, whether a bias was passed (the columns, 9× x for a 3×3 kernel, are rebuilt in
            backward rather than kept)
    Layout: the output is channels-last in memory, as the plain op's
    """

    accelerates = Conv2dFunction

    @uses_threads
    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, self.groups)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = weight.shape
        G, OCg = self.groups, OC // self.groups
        OH = output_size(H, KH, self.stride[0], self.padding[0], "conv2d", "height", self.dilation[0])
        OW = output_size(W, KW, self.stride[1], self.padding[1], "conv2d", "width", self.dilation[1])
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        out = xp.empty((N * OH * OW, OC), dtype=xp.result_type(x.dtype, weight.dtype))
        chunks = batch_chunks(N, OH * OW, xp, slice_rows(KH * KW * Cg, OCg, x.dtype.itemsize))
        wmats = [self._weight_matrix(g) for g in range(G)]   # (KH*KW*C/G, OC/G) per group

        def buffers():                                       # each thread's: one slice's columns and its padded copy
            return (xp.empty((chunks[0].stop * OH * OW, KH * KW * Cg), dtype=x.dtype),
                    padded_buffer(x[:, :Cg], chunks[0].stop, self.padding, xp))

        def conv_slice(item, state):                         # one slice of the batch, one group
            (g, b), (buf, padded) = item, state              # a grouped conv is G independent convs
            c, oc = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)   # group g's channels
            rows = slice(b.start * OH * OW, b.stop * OH * OW)
            cols = self._columns(x[b, c], buf[:rows.stop - rows.start], padded)
            xp.matmul(cols, wmats[g], out=out[rows, oc])     # out = cols · Wmat

        for_each_item(conv_slice, [(g, b) for g in range(G) for b in chunks], xp, setup=buffers)
        if bias is not None:
            out += bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

    def _columns(self, x, out, padded):
        """``strided_im2col`` of a slice of x into ``out``, with this convolution's window geometry."""
        KH, KW = self.weight.shape[2:]
        return strided_im2col(x, KH, KW, self.stride, self.padding, out=out, padded=padded, **self._dilated())

    def _dilated(self):
        """``dilation=`` for strided_im2col where there is one; none at all for an undilated conv, whose
        calls stay ``strided_im2col(x, kh, kw, stride, padding, out=...)`` (as the tests' spies expect)."""
        return {} if self.dilation == (1, 1) else {"dilation": self.dilation}

    def _weight_matrix(self, g):
        """Group g's filters as a (KH*KW*C/G, OC/G) matrix, rows in im2col's (kh, kw, c) order.

        It is the transpose (a view, which BLAS reads without a copy) of one filter per row: copying
        (OC, C, KH, KW) to (OC, KH, KW, C) moves values within each filter only, which is several times
        faster than gathering (KH, KW, C, OC) across filters.
        """
        OC, Cg, KH, KW = self.weight.shape
        OCg = OC // self.groups
        wg = self.weight[g * OCg:(g + 1) * OCg]              # (OC/G, C/G, KH, KW)
        return wg.transpose(0, 2, 3, 1).reshape(OCg, KH * KW * Cg).T

    @uses_threads
    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        _, Cg, KH, KW = self.weight.shape
        G, OCg = self.groups, OC // self.groups
        x, (ph, pw), (dh, dw) = self.x, self.padding, self.dilation
        H, W = x.shape[2:]
        # out = cols · Wmat with cols = strided_im2col(x)  =>  dWmatᵀ = doutᵀ · cols,  dcols = dout · Wmatᵀ,
        # dx = col2im(dcols). A slice of the batch at a time, the columns rebuilt from x as in forward.
        # With stride 1, dx is a gather instead of col2im's scatter: dout padded by d·(K−1)−p, correlated
        # with the flipped filters (input and output channels swapped, the same dilation d),
        # i.e. im2col(dout) · Wflip.
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)   # (N*OH*OW, OC)
        dx_mat = None                                                     # dx as (N*H*W, C), channels-last
        if self.needs_input_grad[0]:
            dx_mat = xp.empty((N * H * W, Cg * G), dtype=dout.dtype)
        gather = self.stride == (1, 1) and ph <= dh * (KH - 1) and pw <= dw * (KW - 1)
        widest = max(Cg, OCg)                                             # the wider of the two products' inputs
        chunks = batch_chunks(N, OH * OW, xp, slice_rows(KH * KW * widest, widest, dout.dtype.itemsize))
        # per group: the flipped filters, rows in im2col's order over dout's channels (KH*KW*OC/G, C/G),
        # or (for col2im) the forward's weight matrix (KH*KW*C/G, OC/G)
        wflips = [self.weight[g * OCg:(g + 1) * OCg, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(KH * KW * OCg, Cg)
                  for g in range(G)]
        wmats = [None if gather else self._weight_matrix(g) for g in range(G)]

        # With the gather, dW comes from the same dout columns: x[q] meets dout at q − d·(K−1−kh') + p in the
        # window (kh', kw') of dout's columns, which is the forward's tap (K−1−kh', K−1−kw'), so
        # xᵀ · im2col(dout) is dW with the taps flipped, and x's own columns are never built in backward.
        from_dout = gather and dx_mat is not None
        reach = (dh * (KH - 1) - ph, dw * (KW - 1) - pw)                  # dout's padding for the gather

        shape = (Cg, KH * KW * OCg) if from_dout else (OCg, KH * KW * Cg)
        # each slice's share of dW, per group: dWmatᵀ (a filter per row), or from dout's columns the flipped
        # (C/G, KH·KW·OC/G); summed over the slices in their order, so the sum is the same whichever thread ran each
        dw_parts = xp.empty((G, len(chunks), *shape), dtype=dout.dtype)

        def buffers():                                                    # each thread's, for its slices:
            n_images = chunks[0].stop - chunks[0].start                   # (the first slice is the largest)
            if from_dout:                                                 # dout's columns (a row per pixel of x)
                return (xp.empty((n_images * H * W, KH * KW * OCg), dtype=dout.dtype),
                        padded_buffer(dout[:, :OCg], n_images, reach, xp))    # and the padded copy they come from
            return (xp.empty((n_images * OH * OW, KH * KW * Cg), dtype=x.dtype),  # or x's columns
                    padded_buffer(x[:, :Cg], n_images, self.padding, xp))

        def backward_slice(item, state):                                  # one slice of the batch, one group
            (g, i, b), (buf, padded) = item, state
            c, oc = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)   # group g's channels
            rows, x_rows = slice(b.start * OH * OW, b.stop * OH * OW), slice(b.start * H * W, b.stop * H * W)
            if from_dout:
                dout_cols = strided_im2col(dout[b, oc], KH, KW, (1, 1), reach, out=buf[:x_rows.stop - x_rows.start],
                                           padded=padded, **self._dilated())     # (n*H*W, KH*KW*OC/G)
                pixels = x[b, c].transpose(0, 2, 3, 1).reshape(-1, Cg)         # (n*H*W, C/G), a view if
                xp.matmul(pixels.T, dout_cols, out=dw_parts[g, i])             # x is channels-last: xᵀ · im2col(dout)
                xp.matmul(dout_cols, wflips[g], out=dx_mat[x_rows, c])         # dx = im2col(dout) · Wflip
                return
            cols = self._columns(x[b, c], buf[:rows.stop - rows.start], padded)
            xp.matmul(dout_mat[rows, oc].T, cols, out=dw_parts[g, i])          # dWmatᵀ = doutᵀ · cols
            if dx_mat is not None:
                dcols = dout_mat[rows, oc] @ wmats[g].T                        # dcols = dout · Wmatᵀ
                dx = col2im(dcols, x[b, c].shape, KH, KW, self.stride, self.padding, self.dilation)  # (n, C/G, H, W)
                dx_mat[x_rows, c] = dx.transpose(0, 2, 3, 1).reshape(-1, Cg)

        items = [(g, i, b) for g in range(G) for i, b in enumerate(chunks)]
        for_each_item(backward_slice, items, xp, setup=buffers)
        dw_sum = dw_parts.sum(axis=1)                                     # (G, *shape), the slices in order
        if from_dout:                                                     # (G, C/G, KH', KW', OC/G), flipped
            flipped = dw_sum.reshape(G, Cg, KH, KW, OCg)[:, :, ::-1, ::-1, :]
            dweight = flipped.transpose(0, 4, 1, 2, 3).reshape(OC, Cg, KH, KW)   # a copy, groups in order
        else:
            dweight = dw_sum.reshape(OC, KH, KW, Cg).transpose(0, 3, 1, 2).copy()   # (OC, C/G, KH, KW)
        dx = None if dx_mat is None else dx_mat.reshape(N, H, W, Cg * G).transpose(0, 3, 1, 2)   # (N, C, H, W)
        if self.has_bias:
            return dx, dweight, dout.sum(axis=(0, 2, 3))
        return dx, dweight


class FastConv1x1Function(Conv1x1Function):
    """``ops.conv.Conv1x1Function``, its product's rows dealt out to threads in blocks, each written
    into the output in place; dx only where it is needed, and no scatter for stride 1.

    Shapes: x (N, C, H, W), weight (OC, C, 1, 1), bias (OC,) or None -> (N, OC, ⌈H/s⌉, ⌈W/s⌉)
    Saves:  x, the weight, whether a bias was passed
    Layout: the output is channels-last in memory, as the plain op's
    """

    accelerates = Conv1x1Function

    @uses_threads
    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, 1)
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        xp = get_array_module(x)
        x_mat = self._pixels()                               # (N*OH*OW, C)
        N, OC = x.shape[0], weight.shape[0]
        OH, OW = -(-x.shape[2] // self.stride[0]), -(-x.shape[3] // self.stride[1])   # ⌈H/s⌉, ⌈W/s⌉
        w_t = weight.reshape(OC, -1).T                       # (C, OC)
        out = xp.empty((x_mat.shape[0], OC), dtype=xp.result_type(x.dtype, weight.dtype))

        def product(rows):                                   # out = x_mat · Wᵀ, a block of rows
            xp.matmul(x_mat[rows], w_t, out=out[rows])

        for_each_item(product, row_blocks(x_mat.shape[0], xp), xp)
        if bias is not None:
            out += bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

    @uses_threads
    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        C = self.x.shape[1]
        sh, sw = self.stride
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)  # (N*OH*OW, OC)
        # out = x_mat · Wᵀ  =>  dW = doutᵀ · x_mat,  dx_mat = dout · W
        x_mat, w = self._pixels(), self.weight.reshape(OC, C)
        dx_mat = xp.empty((N * OH * OW, C), dtype=dout.dtype) if self.needs_input_grad[0] else None

        def products(rows):                                  # a block of rows: its share of dW, its rows of dx
            if dx_mat is not None:
                xp.matmul(dout_mat[rows], w, out=dx_mat[rows])
            return dout_mat[rows].T @ x_mat[rows]            # (OC, C)

        parts = for_each_item(products, row_blocks(N * OH * OW, xp), xp)
        dweight = parts[0]
        for part in parts[1:]:                               # the blocks' shares in order
            dweight += part
        dweight = dweight.reshape(OC, C, 1, 1)
        dx = None
        if dx_mat is not None:
            dxs = dx_mat.reshape(N, OH, OW, C)               # (N, OH, OW, C)
            if (sh, sw) == (1, 1):
                dx = dxs.transpose(0, 3, 1, 2)
            else:
                H, W = self.x.shape[2:]
                dx = xp.zeros((N, H, W, C), dtype=dout.dtype)
                dx[:, ::sh, ::sw, :] = dxs                   # skipped pixels get no gradient
                dx = dx.transpose(0, 3, 1, 2)                # (N, C, H, W)
        if self.has_bias:
            return dx, dweight, dout_mat.sum(axis=0)
        return dx, dweight
