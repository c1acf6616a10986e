"""Judging a trained VAE on the test set: the metrics (ELBO terms, IWAE bound, active units),
the memory they need, the figures and the plane the latent space is drawn on. No MLflow."""
