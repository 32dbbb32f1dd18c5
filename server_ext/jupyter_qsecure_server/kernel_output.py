"""Kernels' own stdout/stderr reach the server's log only through the masker.

Every kernel this server starts gets, as its standard output and its standard
error, the write end of a pipe that the server reads; what it reads is masked with
the websocket's own masker (:meth:`CredentialService.masker`, one build per registry
version shared by every consumer, see :mod:`jupyter_qsecure.vault.registry_masking`)
through :class:`jupyter_qsecure.vault.output_log.MaskedLines`, and logged line by
line, as ``kernel <id> stdout: <line>`` (or ``stderr``).

Why this and not a change inside the kernel. ipykernel captures output written at
the file-descriptor level (``subprocess``, ``os.system``, C extensions) by
redirecting fds 1 and 2 to a pipe, and its watcher thread writes every byte it
reads there, raw, to a copy of the kernel's *original* stdout/stderr, which is the
Jupyter server's log; ``sys.stdout.fileno()`` also returns that copy (so
``subprocess.run(..., stdout=sys.stdout)`` writes there directly and not to the
browser), and ipykernel's own log handlers are rerouted to it. Turning the echo
off in the qsecure kernel extension would close one of these routes, only in
kernels that load the extension, and only as long as user code does not undo it
(the kernel is not trusted). The server, by contrast:

- starts every kernel, including the plain ``python3`` one: credentials are
  attached to *every* execute_request that goes through the server's websocket,
  whatever the kernel, so every kernel can hold values;
- owns the other end of the descriptors, so every route to them is covered,
  including grandchildren that inherit them and a kernel that fails to start;
- keeps the kernel's own diagnostics (startup errors, crash tracebacks), which
  discarding the streams (``DEVNULL``) would lose.

The pipes are created once per kernel and passed as ``stdout``/``stderr`` to
``start_kernel``; jupyter_client keeps these launch arguments for restarts, so a
restarted kernel writes into the same pipes. They are closed when the kernel is
shut down (and drained before the shutdown returns, so before the kernel's
credentials are revoked and their values leave the masker), when the kernel dies
for good, and when the server stops.

One pipe per stream, because writers into one pipe interleave: ipykernel echoes in
chunks of up to 1,000 bytes, one thread per stream, and a value cut by another
writer's chunk is no longer the value. Within one stream that can still happen
when a child process writes to the kernel's original descriptor directly (e.g.
``subprocess.run(..., stdout=sys.stdout)``) while ipykernel is still echoing: the
pieces are masked by the masker's fragment matching (runs of a value, issue 11
case 2), not as the whole value.

Not covered: kernels started by a remote provisioner or gateway (their output
never reaches this server's log), and Windows consoles (a pipe works there too,
but is untested).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from jupyter_qsecure.vault.masking import Masker
from jupyter_qsecure.vault.output_log import MaskedLines

#: Bytes read from a kernel's pipe at once.
READ_SIZE = 65_536
#: How long a shutdown waits for the reader to log what the kernel wrote last. Only
#: a process that outlives the kernel and keeps the pipe open makes it wait this long.
DRAIN_SECONDS = 10.0


class KernelPipe:
    """One kernel's stdout/stderr pipe and the thread that logs what comes out of it."""

    def __init__(
        self, masker: Callable[[], Masker | None], log: logging.Logger, stream: str = "stdout"
    ) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.label = "(starting)"
        self.stream = stream
        self._log = log
        self._lines = MaskedLines(masker, self._emit)
        self._write_closed = False
        self._lock = threading.Lock()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qsecure-kernel-output", daemon=True)
        self._thread.start()

    def _emit(self, line: str) -> None:
        self._log.info("kernel %s %s: %s", self.label, self.stream, line)

    def _run(self) -> None:
        working = True
        try:
            while data := os.read(self.read_fd, READ_SIZE):
                if not working:
                    continue  # keep draining, so the kernel never blocks on a full pipe
                try:
                    self._lines.feed(data)
                except Exception as exc:  # fail closed: drop the output, never log it raw
                    working = False
                    self._log.error(
                        "jupyter-qsecure: masking the output of kernel %s failed (%s); "
                        "its stdout/stderr is left out of the log from now on",
                        self.label,
                        type(exc).__name__,
                    )
            if working:
                self._lines.close()
        except Exception as exc:
            self._log.error("jupyter-qsecure: kernel output reader failed: %s", type(exc).__name__)
        finally:
            os.close(self.read_fd)
            self.done.set()

    def close_write_end(self) -> None:
        """The server no longer hands this pipe to a (re)started kernel. Idempotent."""
        with self._lock:
            if self._write_closed:
                return
            self._write_closed = True
        os.close(self.write_fd)


class KernelOutputLog:
    """Gives every kernel a masked pipe for stdout/stderr; wraps the kernel manager.

    ``masker``: the server's masker now (:meth:`CredentialService.masker`, thread-safe;
    the reader threads call it on every read, so the log and the websocket mask the
    same values). Install it *before* :meth:`CredentialService.install_kernel_hooks`,
    so that a shutdown drains the pipe before the credentials are revoked.
    """

    def __init__(self, masker: Callable[[], Masker | None], log: logging.Logger) -> None:
        self.masker = masker
        self.log = log
        self.pipes: dict[str, tuple[KernelPipe, KernelPipe]] = {}

    def install(self, kernel_manager: Any) -> None:
        start = kernel_manager.start_kernel
        shutdown = kernel_manager.shutdown_kernel
        output = self

        async def start_kernel(*args: Any, **kwargs: Any) -> Any:
            pipes = (
                KernelPipe(output.masker, output.log, "stdout"),
                KernelPipe(output.masker, output.log, "stderr"),
            )
            # Overrides any stdout/stderr given by a caller: none may bypass the masker.
            kwargs["stdout"], kwargs["stderr"] = (pipe.write_fd for pipe in pipes)
            try:
                kernel_id = start(*args, **kwargs)
                if inspect.isawaitable(kernel_id):
                    kernel_id = await kernel_id
            except BaseException:
                for pipe in pipes:
                    pipe.close_write_end()
                raise
            if kernel_id in output.pipes:  # an existing kernel was returned: pipes unused
                for pipe in pipes:
                    pipe.close_write_end()
                return kernel_id
            for pipe in pipes:
                pipe.label = str(kernel_id)
            output.pipes[kernel_id] = pipes

            def on_dead() -> None:
                output.close(kernel_id)

            kernel_manager.add_restart_callback(kernel_id, on_dead, "dead")
            return kernel_id

        async def shutdown_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
            try:
                result = shutdown(kernel_id, *args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            finally:
                # log what the kernel wrote last while its values are still masked
                for pipe in output.close(kernel_id):
                    await _wait(pipe.done, DRAIN_SECONDS)
            return result

        kernel_manager.start_kernel = start_kernel
        kernel_manager.shutdown_kernel = shutdown_kernel

    def close(self, kernel_id: str) -> tuple[KernelPipe, ...]:
        """Stop handing ``kernel_id``'s pipes out; the readers end when the kernel has exited."""
        pipes = self.pipes.pop(kernel_id, ())
        for pipe in pipes:
            pipe.close_write_end()
        return pipes

    def close_all(self) -> None:
        for kernel_id in list(self.pipes):
            self.close(kernel_id)


async def _wait(event: threading.Event, timeout: float) -> None:
    if not event.is_set():
        await asyncio.to_thread(event.wait, timeout)
