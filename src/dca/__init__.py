"""DCA: Deliberative Credit Assignment for chain-of-thought training."""

__version__ = "0.1.0"
