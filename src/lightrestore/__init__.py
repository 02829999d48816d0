"""lightrestore: image restoration across degradation levels (PyTorch Lightning + Hydra).

Importing the package is cheap and imports no optional dependency; import the
sub-packages you need (``lightrestore.degradations``, ``lightrestore.data``, ...).
"""

__version__ = "0.1.0"
