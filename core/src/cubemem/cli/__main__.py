"""``python -m cubemem.cli``: the ``cubemem`` command (servers and workers are started so)."""

from cubemem.cli import app

app()
