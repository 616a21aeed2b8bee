"""torch-style dataset classes: ``TensorDataset(*tensors)`` and ``Digits(train=True)``.

>>> from tinyresnet.data import TensorDataset, Digits, DataLoader
>>> dataset = TensorDataset(images, labels)      # images (N, C, H, W), labels (N,)
>>> image, label = dataset[0]
>>> loader = DataLoader(dataset, batch_size=32, shuffle=True)
>>> train = Digits(train=True)                   # the bundled digits, as an ArrayDataset
"""

import numpy as np

from ..autograd import Tensor
from .datasets import ArrayDataset, load_digits


def _as_array(value, position):
    """A NumPy array from a NumPy array, a list, a tinyresnet Tensor or a torch.Tensor."""
    data = value.data if isinstance(value, Tensor) else value
    if hasattr(value, "detach") and hasattr(value, "cpu") and not isinstance(value, Tensor):   # a torch.Tensor
        data = value.detach().cpu().numpy()
    if hasattr(data, "get") and not isinstance(data, np.ndarray):   # a CuPy array
        data = data.get()
    array = np.asarray(data)
    if array.ndim == 0:
        raise ValueError(f"TensorDataset: tensor {position} is a single number (shape ()); every tensor needs "
                         f"a first dimension that counts the samples")
    return array


class TensorDataset:
    """Samples made of the rows of equally long tensors, as ``torch.utils.data.TensorDataset``.

    ``dataset[i]`` is the tuple ``(tensors[0][i], tensors[1][i], ...)``; ``len(dataset)`` is the
    tensors' common first dimension. The tensors (NumPy arrays, lists, tinyresnet or torch tensors)
    are kept as NumPy arrays in ``dataset.tensors``, and the items are NumPy arrays (or NumPy scalars).

    The project's ``DataLoader`` takes a TensorDataset of exactly two tensors, (inputs, targets):
    it calls ``get_batch(indices)``, which returns the two indexed arrays. Integer inputs (uint8
    images, say) come out of the loader as float32 with their values unchanged (not scaled to [0, 1]
    as ``ArrayDataset`` does with uint8); scale them first if the model expects [0, 1].

    Shapes: tensors[k] (N, ...) -> dataset[i] = (tensors[0][i], ..., tensors[-1][i])
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor, e.g. TensorDataset(images, labels)")
        self.tensors = tuple(_as_array(t, i) for i, t in enumerate(tensors))
        sizes = [len(t) for t in self.tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: the tensors' first dimensions differ ({sizes}); each needs one row "
                             f"per sample")

    def __len__(self):
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices):
        """(inputs, targets) for the given indices, as the ``DataLoader`` asks for them."""
        if len(self.tensors) != 2:
            raise ValueError(f"the DataLoader batches (inputs, targets) pairs, but this TensorDataset holds "
                             f"{len(self.tensors)} tensors; make it TensorDataset(inputs, targets), or index "
                             f"it yourself: dataset[indices]")
        indices = np.asarray(indices)
        return self.tensors[0][indices], self.tensors[1][indices]

    def __repr__(self):
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        return f"TensorDataset({len(self)} samples; tensors of shapes {shapes})"


class Digits(ArrayDataset):
    """The bundled UCI handwritten digits as one dataset object, in torchvision's style:
    ``Digits(train=True)`` is the 1,438-image training split, ``Digits(train=False)`` the 359 test images.

    The images are (1, 8, 8) float32 in [0, 1], labels 0–9; the split is the fixed, stratified one
    of ``load_digits(test_fraction, split_seed)``. Unlike torchvision's datasets it takes no
    ``transform``: augmentations work on whole batches here, so give them to the ``DataLoader``
    (``DataLoader(Digits(), transform=...)``). Nothing is downloaded: the file ships with tinyresnet.
    """

    def __init__(self, train=True, test_fraction=0.2, split_seed=0):
        train_split, test_split = load_digits(test_fraction=test_fraction, split_seed=split_seed)
        split = train_split if train else test_split
        super().__init__(split.images, split.labels, split.classes, split.name)
        self.train = bool(train)
