"""Programs on the registered models: the latent-space explorer and the served champion."""
