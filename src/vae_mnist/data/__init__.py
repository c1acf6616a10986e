"""The data: the raw MNIST files, fetching and reading them, the splits and the processed arrays."""
