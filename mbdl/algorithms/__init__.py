"""Classical iterations written once, batched and differentiable, in torch.

Model-based, learned-optimizer and unfolded methods differ only in how the parameters of the
same iteration are held (see :class:`mbdl.algorithms.parameters.IterationParameter`)."""
