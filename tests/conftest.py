"""Shared test configuration: fixtures for real services live in jupyter_qsecure.testing."""

pytest_plugins = [
    "jupyter_qsecure.testing.pytest_plugin",
    "jupyter_qsecure.testing.pytest_plugin_postgres",
]
