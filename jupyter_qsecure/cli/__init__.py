"""The ``jupyter qsecure`` command line (also installed as ``jupyter-qsecure``)."""
