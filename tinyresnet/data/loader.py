"""DataLoader: batches of (images, labels), shuffled with a seed, prepared in a background thread.

Randomness is a pure function of ``(seed, epoch, batch index)``: the order of epoch ``e`` comes
from a generator seeded with ``(seed, e)``, and the augmentation of batch ``b`` from one seeded
with ``(seed, e, b)``. So the same seed gives the same batches whatever happened before, and a
run resumed in the middle of an epoch sees exactly the batches it would have seen.
"""

import queue
import threading

import numpy as np

from ..backend import check_device, to_device

_DONE = object()


class DataLoader:
    """Iterate over a dataset in batches, as ``torch.utils.data.DataLoader``.

    ``dataset`` has ``get_batch(indices) -> (images, labels)`` and ``len()`` (an ``ArrayDataset``).
    ``transform(images, rng=...)`` is applied to each batch of images (see ``transforms``).
    ``prefetch`` batches are prepared ahead by a background thread (0: prepare in the caller's
    thread); ``device`` ("cpu" or "cuda") is where the yielded arrays live.

    Each ``for`` loop over the loader is one epoch; the epoch number starts at 0 and advances after
    every complete pass, or is set with ``set_epoch`` (as ``DistributedSampler.set_epoch``).
    """

    def __init__(self, dataset, batch_size=64, shuffle=False, seed=0, drop_last=False, transform=None,
                 prefetch=2, device="cpu", num_workers=0, pin_memory=False):
        # num_workers, pin_memory: PyTorch's, accepted so that its loops run; batches are made by a
        # background thread here (``prefetch`` of them ahead), since they are slices of arrays in memory
        del num_workers, pin_memory
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.seed, self.drop_last, self.transform = int(seed), bool(drop_last), transform
        self.prefetch, self.device = int(prefetch), check_device(device)
        self.epoch = 0

    def __len__(self):
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch):
        """The sample indices of one epoch, in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def make_batch(self, epoch, index, order=None):
        """Batch number ``index`` of ``epoch``: (images, labels) on the loader's device."""
        order = self.order(epoch) if order is None else order
        indices = order[index * self.batch_size:(index + 1) * self.batch_size]
        x, y = self.dataset.get_batch(indices)
        if self.transform is not None:
            x = self.transform(x, rng=np.random.default_rng([self.seed, epoch, index]))
        x = np.ascontiguousarray(x, dtype=x.dtype if x.dtype.kind == "f" else np.float32)
        return to_device(x, self.device), to_device(y, self.device)

    def iterate(self, epoch, start=0):
        """Yield the batches of ``epoch`` from batch number ``start`` on (to resume mid-epoch)."""
        order = self.order(epoch)
        indices = range(start, len(self))
        if self.prefetch <= 0:
            for b in indices:
                yield self.make_batch(epoch, b, order)
            return
        yield from _background(lambda b: self.make_batch(epoch, b, order), indices, self.prefetch)

    def __iter__(self):
        epoch = self.epoch
        yield from self.iterate(epoch)
        self.epoch = epoch + 1


def _background(make, indices, depth):
    """Yield ``make(i)`` for each ``i``, computed by a worker thread up to ``depth`` items ahead.

    An exception in the worker is re-raised here; leaving the loop early stops the worker.
    """
    ready = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for i in indices:
                if stop.is_set() or not put(("batch", make(i))):
                    return
            put(("done", _DONE))
        except BaseException as e:   # handed to the consumer, raised there
            put(("error", e))

    worker = threading.Thread(target=work, name="tinyresnet-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
