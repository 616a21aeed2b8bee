"""Fast ReLU: the plain tier's ``ReLUFunction`` (``tinyresnet.ops.activation``) with a backward by product."""

from ..ops.activation import ReLUFunction


class FastReLUFunction(ReLUFunction):
    """``ops.activation.ReLUFunction`` with the backward as ``dout · mask`` instead of
    ``where(mask, dout, 0)``: NumPy's ``where`` runs element by element, about 7× slower than the
    vectorised product on a float32 map (18 against 2.5 ms for 64×64×32×32). The product gives −0.
    where a negative ``dout`` meets ``False``; adding 0. turns every −0. into 0. in place, so the
    values equal the plain op's. They differ only where ``dout`` itself is ±inf or NaN at an input
    ≤ 0 (NaN here, 0. in the plain op), which only a diverged run produces. Forward is the plain op's.

    Shapes: x (any) -> same shape
    Saves:  the mask x > 0
    Layout: the output has x's memory layout
    """

    accelerates = ReLUFunction

    def backward(self, dout):
        dx = dout * self.mask
        dx += 0.0                                   # −0. + 0. = 0.: no negative zeros for students to see
        return dx
