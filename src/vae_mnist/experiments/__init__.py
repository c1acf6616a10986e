"""What users run on top of the pipeline: recipes, sweeps (Optuna studies of DVC experiments),
the rebuild of a registered version, the comparison report, and the seed-noise yardstick all of
them judge by."""
