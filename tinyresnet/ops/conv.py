"""2-D convolution by im2col, and the 1×1 convolution as one matrix product.

im2col copies every KH×KW window of the (padded) input into one row of a matrix, so the whole
convolution becomes a single matrix product with the reshaped weights. Rows are in
channels-last order: row (n, oh, ow) holds the window's values ordered (kh, kw, c).
col2im is its adjoint: it adds each row's values back to the input positions they came from.

How it is made fast (each step measured against PyTorch CPU; see benchmarks/README.md):

- im2col builds the rows with one copy of a strided view of the padded input: no Python loop
  over the window offsets.
- The convolutions work on a slice of the batch at a time (``batch_chunks``, about 2048 rows):
  the columns of a slice (4.7 MB for 64 channels) are still in cache when the matrix product reads
  them, and one buffer is reused for every slice (``im2col(..., out=buf)``). The columns are never
  kept for backward (they are 9× the input for a 3×3 kernel): backward rebuilds them, a slice at a
  time.
- The matrices are laid out so that BLAS needs no transposed copies: columns on the left,
  channels last. The output is therefore channels-last in memory, returned as an (N, C, H, W)
  view, and the next op (batch norm, ReLU, the next convolution) reads it in that order without
  a copy.
- A 1×1 convolution needs no im2col at all: it is one matrix product over all pixels.
- With ``backend.set_num_threads(n)`` (the training loop sets it), the slices are dealt out to n
  threads (``for_each_thread``), each building its own columns and calling BLAS on one thread.
  Run serially, a slice's copies use one core while BLAS's idle threads spin on the others.
"""

from ..autograd import Function
from ..backend import for_each_thread, get_array_module, get_num_threads
from .checks import check_4d, check_float, output_size

ROWS_PER_CHUNK = 2048   # im2col rows per slice of the batch: its columns are still in cache for the product


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), out=None):
    """Unfold the sliding windows of ``x`` into rows.

    ``out``, if given, is a C-contiguous (N*OH*OW, KH*KW*C) array to write the rows into: conv2d
    reuses one for every slice of the batch instead of asking for fresh memory each time.
    Shapes: x (N, C, H, W) -> cols (N*OH*OW, KH*KW*C)
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (sh, sw), (ph, pw) = stride, padding
    ### BEGIN SOLUTION im2col
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    x = x.transpose(0, 2, 3, 1)                                         # (N, H, W, C)
    if ph or pw:
        x = pad_hw(x, ph, pw)                                           # (N, H+2ph, W+2pw, C)
    # a view of every window, no copy: moving one output position moves (sh, sw) pixels,
    # moving one offset (i, j) inside the window moves one pixel
    sN, sH, sW, sC = x.strides
    windows = xp.lib.stride_tricks.as_strided(
        x, (N, OH, OW, kh, kw, C), (sN, sH * sh, sW * sw, sH, sW, sC))  # (N, OH, OW, KH, KW, C)
    if out is None:
        return windows.reshape(N * OH * OW, kh * kw * C)                # the one copy
    out.reshape(windows.shape)[...] = windows                           # the one copy, into out
    return out
    ### END SOLUTION im2col


def pad_hw(x, ph, pw, value=0):
    """x with ph rows of ``value`` above and below, pw columns left and right (as xp.pad, faster).

    Shapes: x (N, H, W, C) -> (N, H+2ph, W+2pw, C)
    """
    xp = get_array_module(x)
    N, H, W, C = x.shape
    out = xp.empty((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)
    out[:, :ph], out[:, ph + H:], out[:, :, :pw], out[:, :, pw + W:] = value, value, value, value   # the border
    out[:, ph:ph + H, pw:pw + W] = x                                               # the inside
    return out


def col2im(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0)):
    """The adjoint of im2col: add every row's values back where they came from.

    Shapes: cols (N*OH*OW, KH*KW*C) -> dx (N, C, H, W)
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    (sh, sw), (ph, pw) = stride, padding
    ### BEGIN SOLUTION col2im
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    cols = cols.reshape(N, OH, OW, kh, kw, C)
    dx = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=cols.dtype)   # padded, channels-last
    for i in range(kh):
        for j in range(kw):
            # overlapping windows touch the same pixel: their gradients add
            dx[:, i:i + sh * OH:sh, j:j + sw * OW:sw, :] += cols[:, :, :, i, j, :]
    dx = dx[:, ph:ph + H, pw:pw + W, :]                                # drop the padding
    return dx.transpose(0, 3, 1, 2)                                    # (N, C, H, W)
    ### END SOLUTION col2im


def batch_chunks(n, rows_per_image):
    """Slices of a batch of ``n`` images with about ROWS_PER_CHUNK im2col rows each (one image at least),
    and at least one slice per compute thread (``backend.set_num_threads``)."""
    step = max(1, min(ROWS_PER_CHUNK // rows_per_image, -(-n // get_num_threads())))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def row_blocks(n_rows):
    """``n_rows`` rows cut into one contiguous block per compute thread (``backend.set_num_threads``)."""
    step = -(-n_rows // get_num_threads())
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def check_conv(x, weight, bias, groups, op="conv2d"):
    check_4d(x, op)
    check_float(weight, op, "weight")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (OC, C/groups, KH, KW), got shape {tuple(weight.shape)}")
    N, C, H, W = x.shape
    OC, Cg = weight.shape[:2]
    if groups < 1 or C % groups or OC % groups:
        raise ValueError(f"{op}: groups={groups} must divide both the input channels ({C}) and "
                         f"the output channels ({OC})")
    if C != Cg * groups:
        raise ValueError(f"{op}: the input has {C} channels but the weight expects {Cg * groups} "
                         f"(weight shape {tuple(weight.shape)}, groups={groups}); make the layer's "
                         f"in_channels equal to the input's channel count")
    if bias is not None and tuple(bias.shape) != (OC,):
        raise ValueError(f"{op}: bias must have shape ({OC},), got {tuple(bias.shape)}")


class Conv2dFunction(Function):
    """2-D convolution (cross-correlation, as in PyTorch) by im2col + one matrix product per group.

    out = cols · Wmat with cols = im2col(x), computed a slice of the batch at a time.
    Shapes: x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC,) or None -> (N, OC, OH, OW)
            (the output is channels-last in memory)
    Saves:  x, weight (x is held by the graph anyway, so saving it costs no memory; the
            columns are rebuilt in backward rather than kept)
    """

    def __init__(self, stride=(1, 1), padding=(0, 0), groups=1):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, self.groups)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = weight.shape
        G, OCg = self.groups, OC // self.groups
        OH = output_size(H, KH, self.stride[0], self.padding[0], "conv2d", "height")
        OW = output_size(W, KW, self.stride[1], self.padding[1], "conv2d", "width")
        self.x, self.weight = x, weight
        out = xp.empty((N * OH * OW, OC), dtype=xp.result_type(x.dtype, weight.dtype))
        chunks = batch_chunks(N, OH * OW)
        wmats = [self._weight_matrix(g) for g in range(G)]   # (KH*KW*C/G, OC/G) per group

        def conv_slices(share):                              # one thread's slices of the batch
            buf = xp.empty((chunks[0].stop * OH * OW, KH * KW * Cg), dtype=x.dtype)   # one slice's columns
            for g in range(G):                               # a grouped conv is G independent convs
                c, oc = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)   # group g's channels
                for b in share:                              # a slice of the batch at a time
                    rows = slice(b.start * OH * OW, b.stop * OH * OW)
                    cols = im2col(x[b, c], KH, KW, self.stride, self.padding, out=buf[:rows.stop - rows.start])
                    xp.matmul(cols, wmats[g], out=out[rows, oc])     # out = cols · Wmat

        for_each_thread(conv_slices, chunks, xp)
        if bias is not None:
            out += bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

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

    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        _, Cg, KH, KW = self.weight.shape
        G, OCg = self.groups, OC // self.groups
        x, (ph, pw) = self.x, self.padding
        H, W = x.shape[2:]
        ### BEGIN SOLUTION conv_backward
        # out = cols · Wmat with cols = im2col(x)  =>  dWmatᵀ = doutᵀ · cols,  dcols = dout · Wmatᵀ,
        # dx = col2im(dcols). A slice of the batch at a time, the columns rebuilt from x as in forward.
        # With stride 1, dx is a gather instead of col2im's scatter: dout padded by K−1−p, correlated
        # with the flipped filters (input and output channels swapped), i.e. im2col(dout) · Wflip.
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)   # (N*OH*OW, OC)
        dx_mat = None                                                     # dx as (N*H*W, C), channels-last
        if self.needs_input_grad[0]:
            dx_mat = xp.empty((N * H * W, Cg * G), dtype=dout.dtype)
        gather = self.stride == (1, 1) and ph < KH and pw < KW
        chunks = batch_chunks(N, OH * OW)
        # per group: the flipped filters, rows in im2col's order over dout's channels (KH*KW*OC/G, C/G),
        # or (for col2im) the forward's weight matrix (KH*KW*C/G, OC/G)
        wflips = [self.weight[g * OCg:(g + 1) * OCg, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(KH * KW * OCg, Cg)
                  for g in range(G)]
        wmats = [None if gather else self._weight_matrix(g) for g in range(G)]

        def backward_slices(share):                                       # one thread's slices of the batch
            n_images = share[0].stop - share[0].start                     # its first slice is its largest
            buf = xp.empty((n_images * OH * OW, KH * KW * Cg), dtype=x.dtype)   # one slice's columns of x,
            dout_buf = (xp.empty((n_images * H * W, KH * KW * OCg), dtype=dout.dtype)
                        if gather else None)                               # of dout (one row per pixel of x),
            dw_part = (xp.empty((OCg, KH * KW * Cg), dtype=dout.dtype)    # and one slice's share of dWmatᵀ
                       if len(share) > 1 else None)
            dwmat_t = xp.empty((G, OCg, KH * KW * Cg), dtype=dout.dtype)  # dWmatᵀ per group: a filter per row
            for g in range(G):
                c, oc = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)   # group g's channels
                for i, b in enumerate(share):
                    rows, x_rows = slice(b.start * OH * OW, b.stop * OH * OW), slice(b.start * H * W, b.stop * H * W)
                    cols = im2col(x[b, c], KH, KW, self.stride, self.padding, out=buf[:rows.stop - rows.start])
                    if i == 0:
                        xp.matmul(dout_mat[rows, oc].T, cols, out=dwmat_t[g])      # dWmatᵀ = doutᵀ · cols,
                    else:
                        xp.matmul(dout_mat[rows, oc].T, cols, out=dw_part)
                        dwmat_t[g] += dw_part                                      # summed over the slices
                    if dx_mat is None:
                        continue
                    if gather:
                        dout_cols = im2col(dout[b, oc], KH, KW, (1, 1), (KH - 1 - ph, KW - 1 - pw),
                                           out=dout_buf[:x_rows.stop - x_rows.start])   # (n*H*W, KH*KW*OC/G)
                        xp.matmul(dout_cols, wflips[g], out=dx_mat[x_rows, c])     # dx = im2col(dout) · Wflip
                    else:
                        dcols = dout_mat[rows, oc] @ wmats[g].T                    # dcols = dout · Wmatᵀ
                        dx = col2im(dcols, x[b, c].shape, KH, KW, self.stride, self.padding)   # (n, C/G, H, W)
                        dx_mat[x_rows, c] = dx.transpose(0, 2, 3, 1).reshape(-1, Cg)
            return dwmat_t

        dwmat_t, *others = for_each_thread(backward_slices, chunks, xp)   # each thread's sums over its slices
        for other in others:
            dwmat_t += other
        dweight = dwmat_t.reshape(OC, KH, KW, Cg).transpose(0, 3, 1, 2).copy()   # (OC, C/G, KH, KW), groups in order
        dx = None if dx_mat is None else dx_mat.reshape(N, H, W, Cg * G).transpose(0, 3, 1, 2)   # (N, C, H, W)
        dbias = dout.sum(axis=(0, 2, 3)) if len(self.needs_input_grad) == 3 else None
        ### END SOLUTION conv_backward
        if len(self.needs_input_grad) == 3:
            return dx, dweight, dbias
        return dx, dweight


class Conv1x1Function(Function):
    """A 1×1 convolution as one matrix product: a per-pixel mix of channels, no im2col.

    A stride s keeps every s-th pixel (the projection shortcut's subsampling). Pixels are rows,
    channels columns (channels-last), so all N·OH·OW pixels go through a single product.
    Shapes: x (N, C, H, W), weight (OC, C, 1, 1), bias (OC,) or None -> (N, OC, ⌈H/s⌉, ⌈W/s⌉)
            (the output is channels-last in memory)
    Saves:  x, weight (the subsampled pixels are taken again in backward)
    """

    def __init__(self, stride=(1, 1)):
        self.stride = stride

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, 1)
        self.x, self.weight = x, weight
        xp = get_array_module(x)
        x_mat = self._pixels()                               # (N*OH*OW, C)
        N, OC = x.shape[0], weight.shape[0]
        OH, OW = -(-x.shape[2] // self.stride[0]), -(-x.shape[3] // self.stride[1])   # ⌈H/s⌉, ⌈W/s⌉
        w_t = weight.reshape(OC, -1).T                       # (C, OC)
        out = xp.empty((x_mat.shape[0], OC), dtype=xp.result_type(x.dtype, weight.dtype))

        def product(share):                                  # out = x_mat · Wᵀ, one thread's rows
            for rows in share:
                xp.matmul(x_mat[rows], w_t, out=out[rows])

        for_each_thread(product, row_blocks(x_mat.shape[0]), xp)
        if bias is not None:
            out += bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

    def _pixels(self):
        """The input pixels the stride keeps, one per row: (N*OH*OW, C); a view, not a copy, when the
        stride is 1 and x is channels-last in memory."""
        sh, sw = self.stride
        xs = self.x[:, :, ::sh, ::sw]                        # (N, C, OH, OW)
        N, C, OH, OW = xs.shape
        return xs.transpose(0, 2, 3, 1).reshape(N * OH * OW, C)

    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        C = self.x.shape[1]
        sh, sw = self.stride
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)  # (N*OH*OW, OC)
        # out = x_mat · Wᵀ  =>  dW = doutᵀ · x_mat,  dx_mat = dout · W
        x_mat, w = self._pixels(), self.weight.reshape(OC, C)
        dx_mat = xp.empty((N * OH * OW, C), dtype=dout.dtype) if self.needs_input_grad[0] else None

        def products(share):                                 # one thread's rows: its share of dW, its rows of dx
            dw = None
            for rows in share:
                part = dout_mat[rows].T @ x_mat[rows]        # (OC, C)
                dw = part if dw is None else dw + part
                if dx_mat is not None:
                    xp.matmul(dout_mat[rows], w, out=dx_mat[rows])
            return dw

        dweight, *others = for_each_thread(products, row_blocks(N * OH * OW), xp)
        for other in others:
            dweight += other
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
        if len(self.needs_input_grad) == 3:
            return dx, dweight, dout_mat.sum(axis=0)
        return dx, dweight
