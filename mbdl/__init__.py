"""mbdl: model-based deep learning experiments, from classical algorithms to deep networks."""

__version__ = "0.1.0"
