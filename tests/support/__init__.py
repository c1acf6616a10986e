"""What the tests share: helpers (these modules) and fixtures (plugins/, which conftest.py
loads)."""
