"""modelpack: pack thousands of distinct PyTorch models onto efficient compute and load-test them."""

__version__ = "0.1.0"
