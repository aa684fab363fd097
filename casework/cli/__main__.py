"""``python -m casework.cli``: the same CLI as the ``casework`` command."""

from casework.cli import app

app()
