"""JupyterLab for the UI tests (and the start-up benchmark): a real Jupyter Server with the
jupyter-qsecure server extension on its embedded defaults, except that OpenBao is a
throwaway ``bao server -dev`` (the same helper as the Python fixtures,
:mod:`jupyter_qsecure.testing.openbao`) and every folder is temporary: the served root,
the qsecure data dir, the Jupyter data dir (the ``qsecure`` kernelspec), the workspaces.

Started by Playwright (``playwright.config.js``) as
``python -m jupyterlab --config jupyter_server_test_config.py`` with:

- ``QSECURE_UI_PORT``: the port to listen on (127.0.0.1);
- ``QSECURE_UI_EXTENSION``: ``on`` (default) or ``off``: JupyterLab without our lab
  extension and server extension (the benchmark's baseline);
- ``QSECURE_UI_OPENBAO``: ``dev`` (default: a throwaway ``bao server -dev``) or ``none``
  (no OpenBao at all, the other embedded default: approvals are signed with the
  server's local reviewer key, which an external OpenBao does not allow);
- ``QSECURE_UI_WHEELHOUSE``: ``1`` to build a wheel of this checkout into a temporary
  folder named by ``PIP_FIND_LINKS`` (promotion locks ``jupyter-qsecure`` itself, as
  from an index; :func:`jupyter_qsecure.testing.wheels.build_wheel`, as the Python tests);
- ``QSECURE_UI_ROOT``: an existing folder to serve instead of a fresh temporary one;
- ``QSECURE_UI_SCRATCH``: the folder to make the temporary folders in (default: the
  system's temporary folder);
- ``PYTHONPATH``: the checkout first, so the server and its kernels run this tree.

The lab extension is the checkout's build (``jupyter_qsecure/labextension``, from
``jlpm build``), found through ``LabServerApp.extra_labextensions_path``; nothing is
written into the Python environment. Never use this configuration for anything but
tests: Galata's helper turns off the server's authentication.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import jupyterlab.galata
from jupyterlab.galata import configure_jupyter_server

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (given by traitlets)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BUILT = REPO / "jupyter_qsecure" / "labextension"
LAB_EXTENSION = "jupyter-qsecure"

enabled = os.environ.get("QSECURE_UI_EXTENSION", "on") != "off"
_cleanup = contextlib.ExitStack()
atexit.register(_cleanup.close)
# Under QSECURE_UI_SCRATCH when the caller gives one (Playwright and the benchmark do, and
# remove it afterwards: a server stopped with kernels running may skip its atexit).
scratch = Path(tempfile.mkdtemp(prefix="qsecure-ui-", dir=os.environ.get("QSECURE_UI_SCRATCH")))
_cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)

configure_jupyter_server(c)
c.ServerApp.allow_root = True  # CI machines and containers run as root
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("QSECURE_UI_PORT", "0") or 0) or 8888
root = Path(os.environ.get("QSECURE_UI_ROOT") or scratch / "root")
root.mkdir(exist_ok=True)
c.ServerApp.root_dir = str(root)

# The qsecure kernelspec in a Jupyter data dir of our own (read when the kernel spec
# manager starts, after this file).
os.environ["JUPYTER_DATA_DIR"] = str(scratch / "jupyter-data")
labextensions = [str(Path(jupyterlab.galata.__file__).parent)]  # Galata's in-page helpers

if enabled:
    if not (BUILT / "package.json").is_file():
        raise SystemExit(
            f"the lab extension is not built ({BUILT} is missing): run `jlpm install && "
            "jlpm build` in the repository (or `pip install -e .`) first"
        )
    linked = scratch / "labextensions"
    linked.mkdir()
    (linked / LAB_EXTENSION).symlink_to(BUILT, target_is_directory=True)
    labextensions.insert(0, str(linked))

    from jupyter_qsecure.kernel.install import install_kernelspec
    from jupyter_qsecure.testing.openbao import dev_openbao
    from jupyter_qsecure.vault import layout

    install_kernelspec(user=True)
    data_dir = scratch / "qsecure-data"
    os.environ["QSECURE_DATA_DIR"] = str(data_dir)  # the kernel and the CLI agree
    os.environ["QSECURE_ENVIRONMENT"] = "dev"
    for name in ("BAO_ADDR", "BAO_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"):
        os.environ.pop(name, None)  # never the caller's OpenBao
    c.ServerApp.jpserver_extensions = {"jupyter_qsecure_server": True}
    c.QSecure.data_dir = str(data_dir)
    c.QSecure.environment = "dev"
    openbao = os.environ.get("QSECURE_UI_OPENBAO", "dev")
    if openbao == "dev":
        bao = _cleanup.enter_context(dev_openbao())
        admin = bao.client()
        layout.bootstrap(admin)
        # As `jupyter qsecure lab` does: the server's token from the environment, which
        # the extension removes before kernels start.
        os.environ["BAO_TOKEN"] = layout.create_server_token(admin, "dev")["client_token"]
        c.QSecure.vault_addr = bao.addr
    elif openbao != "none":
        raise SystemExit(f"QSECURE_UI_OPENBAO={openbao!r}: use dev or none")
    if os.environ.get("QSECURE_UI_WHEELHOUSE") == "1":
        from jupyter_qsecure.testing.wheels import build_wheel

        wheelhouse = scratch / "wheelhouse"
        wheelhouse.mkdir()
        build_wheel(wheelhouse)
        os.environ["PIP_FIND_LINKS"] = str(wheelhouse)
else:
    c.ServerApp.jpserver_extensions = {"jupyter_qsecure_server": False}
    # What `jupyter labextension disable jupyter-qsecure` writes, in a config dir of our
    # own: the lab extension stays off even where `pip install` put it in the prefix.
    labconfig = scratch / "jupyter-config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {LAB_EXTENSION: True}}), encoding="utf-8"
    )
    os.environ["JUPYTER_CONFIG_DIR"] = str(labconfig.parent)

c.LabServerApp.extra_labextensions_path = labextensions
