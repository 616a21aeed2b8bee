"""The fast tier: the plain ops of ``tinyresnet.ops`` again, made fast, each verified against its plain op.

Each kernel subclasses the plain op it accelerates (``accelerates`` names it), takes the same
arguments and returns the same values and gradients (float64 to 1e-12, float32 to 1e-5 relative;
``tests/test_kernels.py``). What makes them fast, measured in ``benchmarks/``:

- ``FastConv2dFunction`` (accelerates ``ops.conv.Conv2dFunction``): im2col by one strided copy into
  a reused buffer, a slice of the batch at a time (the columns still in cache for the product),
  the columns rebuilt in backward instead of kept, dx by a gather for stride 1 (and dW from the
  gather's columns of dout, so x's columns are not rebuilt), slices dealt out to threads.
- ``FastConv1x1Function`` (``ops.conv.Conv1x1Function``): the one product's rows dealt out to threads.
- ``FastBatchNorm2dFunction`` (``ops.norm.BatchNorm2dFunction``): sums of products as einsums,
  elementwise steps in place, the backward's two means from the sums already made.
- ``FastMaxPool2dFunction`` (``ops.pool.MaxPool2dFunction``): padding in the input's memory layout,
  the running maximum in place, no argmax when no backward can come.
- ``FastReLUFunction`` (``ops.activation.ReLUFunction``): the backward as a product, not NumPy's
  element-by-element ``where``, made in the forward's memory layout.
- ``FastAddFunction`` (``ops.basic.AddFunction``): the residual add on the threads, its sum channels-last
  when either map is (so a type-A shortcut's C-ordered map does not reorder the rest of the network).

``tinyresnet.use_kernels("plain")`` turns them off; a student's release leaves this package out.
Threads (``num_threads``) and the allocator (``keep_freed_memory``) are this tier's policy and live here.
"""

from .activation import FastReLUFunction
from .add import FastAddFunction
from .conv import FastConv1x1Function, FastConv2dFunction
from .memory import keep_freed_memory
from .norm import FastBatchNorm2dFunction
from .pool import FastMaxPool2dFunction
from .threads import for_each_item, get_num_threads, num_threads

KERNELS = (FastConv2dFunction, FastConv1x1Function, FastBatchNorm2dFunction, FastMaxPool2dFunction,
           FastReLUFunction, FastAddFunction)
FAST_KERNELS = {kernel.accelerates: kernel for kernel in KERNELS}     # plain op -> its fast kernel

__all__ = ["FAST_KERNELS", "KERNELS", "FastAddFunction", "FastBatchNorm2dFunction", "FastConv1x1Function",
           "FastConv2dFunction", "FastMaxPool2dFunction", "FastReLUFunction", "for_each_item", "get_num_threads",
           "keep_freed_memory", "num_threads"]
