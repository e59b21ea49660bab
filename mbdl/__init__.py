"""mbdl: model-based deep learning experiments, from classical algorithms to deep networks."""

__version__ = "0.1.0"

from mbdl import config as _config  # noqa: E402, F401 - registers the config resolvers (``${mbdl.direction:...}``)
