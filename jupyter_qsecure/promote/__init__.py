"""Review and promotion of notebooks (issue 14).

- :mod:`.digest`: the canonical digest of what a notebook will run.
- :mod:`.review`: signed approvals of a digest, and the policy they must satisfy.
"""
