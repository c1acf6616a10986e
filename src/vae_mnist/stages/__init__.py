"""The four DVC stages, one module and one function each, named as in dvc.yaml.

Each only composes: read its inputs, call the pure functions that compute, write its outputs
all-or-nothing (vae_mnist.common.outputs), and log to MLflow (vae_mnist.tracking).
"""
