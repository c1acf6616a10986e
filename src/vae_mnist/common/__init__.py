"""What every layer shares: params.yaml as one validated config, the one-line errors and signal
handling, all-or-nothing outputs, the names of quantities and of the pipeline's stages and files,
the machine fingerprint and TensorFlow's process settings. No TensorFlow, no MLflow."""
