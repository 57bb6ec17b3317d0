"""mllabs: the classic ML and deep-learning labs as one package and one CLI."""

__version__ = "0.1.0"
