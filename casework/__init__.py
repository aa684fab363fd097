"""casework: SEND disagreement-resolution and mediation case manager with legal clocks."""

__version__ = "0.1.0"
