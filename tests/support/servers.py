"""Real servers on 127.0.0.1 for tests: in-process (uvicorn in a thread) or a subprocess."""

from __future__ import annotations

import threading
import time

from thinkube.workloads.serving.process import ServeProcess, free_port, wait_healthy  # noqa: F401 (re-exported)


class ThreadServer:
    """uvicorn serving an ASGI app in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
