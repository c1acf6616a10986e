"""The VAE (Keras 3): its ELBO terms, one module per model kind (`model.kind` in params.yaml),
and byte-stable model files."""
