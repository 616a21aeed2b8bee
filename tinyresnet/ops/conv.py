"""2-D convolution by im2col, and the 1×1 convolution as one matrix product (the plain tier).

im2col copies every KH×KW window of the (padded) input into one row of a matrix, so the whole
convolution becomes one matrix product with the reshaped filters. Rows are in channels-last
order: row (n, oh, ow) holds the window's values ordered (kh, kw, c). col2im is its adjoint: it
adds each row's values back to the input positions they came from, which is what the backward
pass needs. A dilated window (``dilation`` d) takes every d-th pixel: its tap (i, j) is i·dh rows
and j·dw columns from its corner, so it spans d·(K − 1) + 1 pixels with only K of them read.

This is the version the handout derives, written to be read: the columns of the whole batch at
once, one product per group, the columns kept for backward. ``tinyresnet.kernels`` has the fast
versions (slices of the batch, reused buffers, threads, a gather for dx), tested against these.
"""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d, check_float, check_same_dtype, output_size


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Unfold the sliding windows of ``x`` into rows.

    Shapes: x (N, C, H, W) -> cols (N*OH*OW, KH*KW*C)
    Layout: row n·OH·OW + oh·OW + ow is the window at (oh, ow) of image n, its values ordered (kh, kw, c);
            tap (i, j) of that window is the padded pixel (oh·sh + i·dh, ow·sw + j·dw)
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ### BEGIN SOLUTION im2col
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xpad = xp.pad(x.transpose(0, 2, 3, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0)))   # (N, H+2ph, W+2pw, C)
    cols = xp.empty((N, OH, OW, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # offset (i, j) of every window at once: window (oh, ow) starts at pixel (oh·sh, ow·sw),
            # its tap (i, j) lies (i·dh, j·dw) further on
            cols[:, :, :, i, j, :] = xpad[:, i * dh:i * dh + sh * OH:sh, j * dw:j * dw + sw * OW:sw, :]
    return cols.reshape(N * OH * OW, kh * kw * C)
    ### END SOLUTION im2col


def col2im(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """The adjoint of im2col: add every row's values back where they came from.

    Shapes: cols (N*OH*OW, KH*KW*C) -> dx (N, C, H, W)
    Layout: cols as im2col makes them; dx is channels-last in memory
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ### BEGIN SOLUTION col2im
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = cols.reshape(N, OH, OW, kh, kw, C)
    dx = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=cols.dtype)   # padded, channels-last
    for i in range(kh):
        for j in range(kw):
            # overlapping windows touch the same pixel: their gradients add
            dx[:, i * dh:i * dh + sh * OH:sh, j * dw:j * dw + sw * OW:sw, :] += cols[:, :, :, i, j, :]
    dx = dx[:, ph:ph + H, pw:pw + W, :]                                # drop the padding
    return dx.transpose(0, 3, 1, 2)                                    # (N, C, H, W)
    ### END SOLUTION col2im


def weight_matrix(weight, g, groups):
    """Group g's filters as a (KH*KW*C/G, OC/G) matrix, rows in im2col's (kh, kw, c) order.

    Shapes: weight (OC, C/G, KH, KW) -> (KH*KW*C/G, OC/G)
    """
    OC, Cg, KH, KW = weight.shape
    OCg = OC // groups
    return weight[g * OCg:(g + 1) * OCg].transpose(2, 3, 1, 0).reshape(KH * KW * Cg, OCg)


def check_conv(x, weight, bias, groups, op="conv2d"):
    check_4d(x, op)
    check_float(weight, op, "weight")
    check_same_dtype(x, weight, op, "weight")
    check_same_dtype(x, bias, op, "bias")
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
    """2-D convolution (cross-correlation, as in PyTorch) by im2col and one matrix product per group.

    A grouped convolution is G independent ones: group g's OC/G filters see only its C/G channels.
    For each group, out_g = cols_g · Wmat_g with cols_g = im2col(x_g). A dilation d spaces the
    kernel's taps d pixels apart (im2col's windows do it), OH = ⌊(H + 2p − d·(KH − 1) − 1) / s⌋ + 1.
    Shapes: x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC,) or None -> (N, OC, OH, OW)
    Saves:  each group's columns (N*OH*OW, KH*KW*C/G), the weight, whether a bias was passed
    Layout: the output is channels-last in memory (an (N, OC, OH, OW) view of the product's rows)
    """

    def __init__(self, stride=(1, 1), padding=(0, 0), groups=1, dilation=(1, 1)):
        self.stride, self.padding, self.groups, self.dilation = stride, padding, groups, dilation

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, self.groups)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = weight.shape
        OH = output_size(H, KH, self.stride[0], self.padding[0], "conv2d", "height", self.dilation[0])
        OW = output_size(W, KW, self.stride[1], self.padding[1], "conv2d", "width", self.dilation[1])
        self.x_shape, self.weight, self.has_bias = x.shape, weight, bias is not None
        self.cols = [im2col(x[:, g * Cg:(g + 1) * Cg], KH, KW, self.stride, self.padding, self.dilation)
                     for g in range(self.groups)]                          # (N*OH*OW, KH*KW*C/G) each
        outs = [cols @ weight_matrix(weight, g, self.groups) for g, cols in enumerate(self.cols)]
        out = xp.concatenate(outs, axis=1)                                 # (N*OH*OW, OC)
        if bias is not None:
            out = out + bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)           # (N, OC, OH, OW)

    def backward(self, dout):                                              # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        _, Cg, KH, KW = self.weight.shape
        G, OCg = self.groups, OC // self.groups
        H, W = self.x_shape[2:]
        ### BEGIN SOLUTION conv_backward
        # out = cols · Wmat  =>  dWmat = colsᵀ · dout,  dcols = dout · Wmatᵀ,  dx = col2im(dcols)
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)   # one row per output pixel, like cols
        dweights, dxs = [], []
        for g, cols in enumerate(self.cols):
            d = dout_mat[:, g * OCg:(g + 1) * OCg]                        # group g's output channels
            dwmat = cols.T @ d                                            # (KH*KW*C/G, OC/G)
            dweights.append(dwmat.reshape(KH, KW, Cg, OCg).transpose(3, 2, 0, 1))   # (OC/G, C/G, KH, KW)
            dcols = d @ weight_matrix(self.weight, g, G).T                # (N*OH*OW, KH*KW*C/G)
            dxs.append(col2im(dcols, (N, Cg, H, W), KH, KW, self.stride, self.padding, self.dilation))
        dx = xp.concatenate(dxs, axis=1)                                  # (N, C, H, W)
        dweight = xp.concatenate(dweights, axis=0)                        # (OC, C/G, KH, KW)
        dbias = dout.sum(axis=(0, 2, 3)) if self.has_bias else None       # each bias touched every pixel
        ### END SOLUTION conv_backward
        return (dx, dweight, dbias) if self.has_bias else (dx, dweight)


class Conv1x1Function(Function):
    """A 1×1 convolution as one matrix product: a per-pixel mix of channels, no im2col.

    A stride s keeps every s-th pixel (the projection shortcut's subsampling). Pixels are rows,
    channels columns, so all N·OH·OW pixels go through a single product: out = x_mat · Wᵀ.
    A one-tap kernel has nothing to dilate: conv2d sends 1×1 kernels here whatever the dilation.
    Shapes: x (N, C, H, W), weight (OC, C, 1, 1), bias (OC,) or None -> (N, OC, ⌈H/s⌉, ⌈W/s⌉)
    Saves:  x, the weight, whether a bias was passed (the kept pixels are taken again in backward)
    Layout: the output is channels-last in memory; x_mat is a view, not a copy, when the stride is
            1 and x is channels-last (as a convolution or batch norm leaves it)
    """

    def __init__(self, stride=(1, 1)):
        self.stride = stride

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, 1)
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        N, OC = x.shape[0], weight.shape[0]
        OH, OW = -(-x.shape[2] // self.stride[0]), -(-x.shape[3] // self.stride[1])   # ⌈H/s⌉, ⌈W/s⌉
        out = self._pixels() @ weight.reshape(OC, -1).T      # (N*OH*OW, C)·(C, OC) = (N*OH*OW, OC)
        if bias is not None:
            out = out + bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

    def _pixels(self):
        """The input pixels the stride keeps, one per row: (N*OH*OW, C)."""
        sh, sw = self.stride
        xs = self.x[:, :, ::sh, ::sw]                        # (N, C, OH, OW)
        N, C, OH, OW = xs.shape
        return xs.transpose(0, 2, 3, 1).reshape(N * OH * OW, C)

    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        C, H, W = self.x.shape[1:]
        sh, sw = self.stride
        ### BEGIN SOLUTION conv1x1_backward
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)  # (N*OH*OW, OC)
        # out = x_mat · Wᵀ  =>  dW = doutᵀ · x_mat,  dx_mat = dout · W
        dweight = (dout_mat.T @ self._pixels()).reshape(OC, C, 1, 1)
        dx_kept = (dout_mat @ self.weight.reshape(OC, C)).reshape(N, OH, OW, C)   # the kept pixels' gradient
        dx = xp.zeros((N, H, W, C), dtype=dout.dtype)
        dx[:, ::sh, ::sw, :] = dx_kept                       # skipped pixels get no gradient
        dx = dx.transpose(0, 3, 1, 2)                        # (N, C, H, W)
        dbias = dout_mat.sum(axis=0) if self.has_bias else None   # dbias = Σ dout over every pixel
        ### END SOLUTION conv1x1_backward
        return (dx, dweight, dbias) if self.has_bias else (dx, dweight)
