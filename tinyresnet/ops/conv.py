"""2-D convolution by im2col, and the 1×1 convolution as one matrix product.

im2col copies every KH×KW window of the (padded) input into one row of a matrix, so the whole
convolution becomes a single matrix product with the reshaped weights. Rows are in
channels-last order: row (n, oh, ow) holds the window's values ordered (kh, kw, c).
col2im is its adjoint: it adds each row's values back to the input positions they came from.
"""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d, check_float, output_size


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0)):
    """Unfold the sliding windows of ``x`` into rows.

    Shapes: x (N, C, H, W) -> cols (N*OH*OW, KH*KW*C)
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (sh, sw), (ph, pw) = stride, padding
    ### BEGIN SOLUTION im2col
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    x = x.transpose(0, 2, 3, 1)                                         # (N, H, W, C)
    if ph or pw:
        x = xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))             # (N, H+2ph, W+2pw, C)
    cols = xp.empty((N, OH, OW, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # window offset (i, j) of every output position at once
            cols[:, :, :, i, j, :] = x[:, i:i + sh * OH:sh, j:j + sw * OW:sw, :]
    return cols.reshape(N * OH * OW, kh * kw * C)
    ### END SOLUTION im2col


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

    Shapes: x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC,) or None -> (N, OC, OH, OW)
    Saves:  cols per group (N*OH*OW, KH*KW*C/G), weight, x.shape
    """

    def __init__(self, stride=(1, 1), padding=(0, 0), groups=1):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, self.groups)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = weight.shape
        G = self.groups
        OH = output_size(H, KH, self.stride[0], self.padding[0], "conv2d", "height")
        OW = output_size(W, KW, self.stride[1], self.padding[1], "conv2d", "width")
        self.x_shape, self.weight = x.shape, weight
        self.cols, outs = [], []
        for g in range(G):                                   # a grouped conv is G independent convs
            xg = x[:, g * Cg:(g + 1) * Cg]                   # (N, C/G, H, W)
            cols = im2col(xg, KH, KW, self.stride, self.padding)   # (N*OH*OW, KH*KW*C/G)
            outs.append(cols @ self._weight_matrix(g))       # (N*OH*OW, OC/G)
            self.cols.append(cols)
        xp = get_array_module(x)
        out = outs[0] if G == 1 else xp.concatenate(outs, axis=1)   # (N*OH*OW, OC)
        if bias is not None:
            out = out + bias
        return out.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # (N, OC, OH, OW)

    def _weight_matrix(self, g):
        """Group g's filters as a (KH*KW*C/G, OC/G) matrix, rows in im2col's (kh, kw, c) order."""
        OC, Cg, KH, KW = self.weight.shape
        OCg = OC // self.groups
        wg = self.weight[g * OCg:(g + 1) * OCg]              # (OC/G, C/G, KH, KW)
        return wg.transpose(2, 3, 1, 0).reshape(KH * KW * Cg, OCg)

    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        _, Cg, KH, KW = self.weight.shape
        G, OCg = self.groups, OC // self.groups
        ### BEGIN SOLUTION conv_backward
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)   # (N*OH*OW, OC)
        dx_groups, dw_groups = [], []
        for g in range(G):
            dout_g = dout_mat[:, g * OCg:(g + 1) * OCg]                  # (N*OH*OW, OC/G)
            # out = cols · Wmat  =>  dWmat = colsᵀ · dout,  dcols = dout · Wmatᵀ
            dw = self.cols[g].T @ dout_g                                  # (KH*KW*C/G, OC/G)
            dw_groups.append(dw.reshape(KH, KW, Cg, OCg).transpose(3, 2, 0, 1))
            if self.needs_input_grad[0]:
                dcols = dout_g @ self._weight_matrix(g).T                 # (N*OH*OW, KH*KW*C/G)
                xg_shape = (N, Cg) + tuple(self.x_shape[2:])
                dx_groups.append(col2im(dcols, xg_shape, KH, KW, self.stride, self.padding))
        dweight = dw_groups[0] if G == 1 else xp.concatenate(dw_groups, axis=0)
        dx = None
        if self.needs_input_grad[0]:
            dx = dx_groups[0] if G == 1 else xp.concatenate(dx_groups, axis=1)
        dbias = dout.sum(axis=(0, 2, 3)) if len(self.needs_input_grad) == 3 else None
        ### END SOLUTION conv_backward
        if len(self.needs_input_grad) == 3:
            return dx, dweight, dbias
        return dx, dweight


class Conv1x1Function(Function):
    """A 1×1 convolution as one matrix product: a per-pixel mix of channels, no im2col.

    A stride s keeps every s-th pixel (the projection shortcut's subsampling).
    Shapes: x (N, C, H, W), weight (OC, C, 1, 1), bias (OC,) or None -> (N, OC, ⌈H/s⌉, ⌈W/s⌉)
    Saves:  the subsampled input as (N, C, OH*OW), weight, x.shape
    """

    def __init__(self, stride=(1, 1)):
        self.stride = stride

    def forward(self, x, weight, bias=None):
        check_conv(x, weight, bias, 1)
        sh, sw = self.stride
        xs = x[:, :, ::sh, ::sw]                             # (N, C, OH, OW)
        N, C, OH, OW = xs.shape
        OC = weight.shape[0]
        self.x_shape, self.weight = x.shape, weight
        self.xs = xs.reshape(N, C, OH * OW)                  # (N, C, OH*OW)
        out = weight.reshape(OC, C) @ self.xs                # (OC, C)·(N, C, L) -> (N, OC, L)
        if bias is not None:
            out = out + bias[:, None]
        return out.reshape(N, OC, OH, OW)

    def backward(self, dout):                                # dout (N, OC, OH, OW)
        xp = get_array_module(dout)
        N, OC, OH, OW = dout.shape
        C = self.x_shape[1]
        dout = dout.reshape(N, OC, OH * OW)                  # (N, OC, L)
        # out[n] = W · xs[n]  =>  dW = Σₙ dout[n] · xs[n]ᵀ,  dxs[n] = Wᵀ · dout[n]
        dweight = xp.tensordot(dout, self.xs, axes=([0, 2], [0, 2])).reshape(OC, C, 1, 1)
        dx = None
        if self.needs_input_grad[0]:
            dxs = (self.weight.reshape(OC, C).T @ dout).reshape(N, C, OH, OW)
            dx = xp.zeros(self.x_shape, dtype=dout.dtype)
            dx[:, :, ::self.stride[0], ::self.stride[1]] = dxs   # skipped pixels get no gradient
        if len(self.needs_input_grad) == 3:
            return dx, dweight, dout.sum(axis=(0, 2))
        return dx, dweight
