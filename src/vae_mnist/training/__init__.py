"""Training the VAE: the fit loop, its schedules and callbacks, tf.distribute strategies and
local workers, and a sweep's trial as the fit sees it. No MLflow."""
