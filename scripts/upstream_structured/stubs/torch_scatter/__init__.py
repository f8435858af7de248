"""CPU stub for torch_scatter: only scatter_max is imported by upstream (used in
anchor growing during training, which the harness never runs)."""


def scatter_max(*args, **kwargs):
    raise NotImplementedError("torch_scatter.scatter_max stub: training-only, not used by the harness")
