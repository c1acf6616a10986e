"""vae-mnist."""
