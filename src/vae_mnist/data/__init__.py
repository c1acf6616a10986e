"""MNIST files: reading, checking and fetching them."""
