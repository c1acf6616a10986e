"""vae-mnist: a reproducible DVC + MLflow pipeline for a variational autoencoder on MNIST.

The library, in layers; a package imports only the ones below it (`make lint` checks the rule):

    cli                        the one `vae-mnist` command
    apps, experiments          the explorer and serving; recipes, sweeps, reproduce, report
    stages                     the DVC stages: compute composed with I/O and tracking
    training, evaluation       the fit loop; test metrics and figures
    model, data                the VAE and its kinds; MNIST, its files and splits
    tracking                   MLflow: store, runs, registry, lineage (uses common only)
    common                     config, errors, outputs, names shared by all

Importing it loads neither TensorFlow nor MLflow.
"""
