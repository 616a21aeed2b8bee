"""The Optimizer base class: parameter groups, zero_grad, step, state_dict, as torch.optim.Optimizer."""

import numpy as np

from ..autograd import Tensor
from ..backend import device_of, get_array_module, to_device, to_numpy


class Optimizer:
    """Updates parameters (Tensors with ``.data`` and ``.grad``) from their gradients.

    ``params`` is an iterable of tensors, or of dicts (parameter groups) such as
    ``[{"params": convs}, {"params": biases, "weight_decay": 0}]``; a group's missing settings come
    from the optimizer's arguments. Subclasses implement ``update(p, grad, group, state)``, which
    changes ``p.data`` in place, as ``p.data -= ...`` (which counts a new version of ``p``: a graph
    built before the step then refuses a backward, whose gradients would mix the old and new values);
    ``state`` is this parameter's dict of running buffers.
    """

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; pass model.parameters()")
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}                     # id(parameter) -> dict of buffers
        for group in (params if isinstance(params[0], dict) else [{"params": params}]):
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(group["params"]):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter (shape {p.shape}) appears in two groups")
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def parameters(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Forget the gradients (``grad = None``, as torch ≥ 2.0 does by default) before the next backward."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = get_array_module(p.grad).zeros_like(p.grad)

    def step(self):
        """Update every parameter that has a gradient; parameters without one are left alone."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if tuple(p.grad.shape) != p.shape:
                    raise ValueError(f"a gradient of shape {tuple(p.grad.shape)} for a parameter of shape {p.shape}")
                self.update(p, p.grad, group, self.state.setdefault(id(p), {}))

    def update(self, p, grad, group, state):
        raise NotImplementedError

    # ------------------------------------------------------------------ saving and restoring
    def state_dict(self):
        """``{"state": {index: {name: array or number}}, "param_groups": [{settings, "params": [index, ...]}]}``.

        Parameters are numbered in order across the groups; arrays are host (NumPy) copies.
        """
        index = {id(p): i for i, p in enumerate(self.parameters())}
        state = {}
        for pid, buffers in self.state.items():
            if pid in index and buffers:
                state[index[pid]] = {k: (to_numpy(v).copy() if hasattr(v, "shape") else v) for k, v in buffers.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore settings and buffers saved by ``state_dict()``; buffers go to each parameter's device."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"the saved optimizer has {len(groups)} parameter groups, this one has "
                             f"{len(self.param_groups)}")
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"a saved parameter group has {len(saved['params'])} parameters, this one has "
                                 f"{len(group['params'])}: the optimizer was saved for a different model")
        params = self.parameters()
        self.state = {}
        for key, buffers in state_dict["state"].items():
            i = int(key)                   # int keys may come back as strings from JSON
            if not 0 <= i < len(params):
                raise ValueError(f"saved optimizer state for parameter {i}, but there are only {len(params)}")
            p = params[i]
            restored = {}
            for name, value in buffers.items():
                if hasattr(value, "shape") and np.ndim(value) > 0:
                    if tuple(value.shape) != p.shape:
                        raise ValueError(f"saved optimizer buffer {name!r} of parameter {i} has shape "
                                         f"{tuple(value.shape)} but the parameter has shape {p.shape}: "
                                         f"the optimizer was saved for a different model")
                    value = to_device(np.array(value, dtype=p.dtype), device_of(p.data))
                elif hasattr(value, "shape"):
                    value = value.item()
                restored[name] = value
            self.state[id(p)] = restored
        for saved, group in zip(groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} parameters, {settings}")
        return "\n".join(lines + [")"])
