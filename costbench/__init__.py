"""costbench: which purchase-prediction configuration buys the most accuracy per dollar, GB and ms."""

__version__ = "0.1.0"
