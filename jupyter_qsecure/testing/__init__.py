"""Test and benchmark helpers that run REAL services (OpenBao, PostgreSQL).

Nothing here is imported by the library at run time. Process control lives in
plain modules (no pytest import) so benchmarks can use it too; the pytest
fixtures are in :mod:`jupyter_qsecure.testing.pytest_plugin`.
"""
