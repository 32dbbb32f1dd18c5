"""OpenBao/Vault integration: layout and policies, credential broker, masking, embedded server.

How jupyter-qsecure reaches OpenBao lives here, once:

* :mod:`.client`: :class:`~.client.VaultConnection` (address, namespace, TLS, proxies,
  timeout, in our own settings) and the hvac clients built from it, logged in as
  configured (:func:`~.client.client_from_settings`);
* :mod:`.transport`: pooled keep-alive HTTP (urllib3) for the per-job hot paths;
* :mod:`.keywrap`: the transit key wrapping the save gate's recovery copies;
* :mod:`.process`: running a ``bao`` server (binary, ports, start, stop, health), shared
  by :mod:`.embedded` and the test fixture in ``jupyter_qsecure.testing.openbao``.

The transit *signer* is in :mod:`jupyter_qsecure.signing.transit`, with the other
signers; it gets its client from :mod:`.client`. Nothing here imports
``jupyter_qsecure.testing``.
"""
