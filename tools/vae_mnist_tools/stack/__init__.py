"""A local team stack on 127.0.0.1: PostgreSQL, Ceph's S3 gateway and an `mlflow server`.

The infrastructure a team points the pipeline at (a tracking server on a database, artifacts and
the DVC remote in object storage), started and stopped by the project for tests and for trying
it out: `vae-mnist stack up|down|status|env`, or `control.up(folder)` /
`control.down(folder)`; `state.Stack` is what a running stack is.
"""
