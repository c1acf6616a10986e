"""The project's own tooling, beside the library and not part of it: the local team stack
(PostgreSQL, Ceph's S3 gateway, `mlflow server`) and the writer of dvc.yaml's code deps.

It may import `vae_mnist`; `vae_mnist` never imports it. Its commands join the `vae-mnist` CLI
through the `vae_mnist.commands` entry points (pyproject.toml)."""
