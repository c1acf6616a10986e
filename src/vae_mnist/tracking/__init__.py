"""MLflow: the store, the stages' runs, the registered models and the `champion` alias.

Every piece of MLflow knowledge lives in this package, one module per concern; the names that
writers and readers of a record share are in names.py.
"""
