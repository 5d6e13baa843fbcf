"""loyalty-streams: an event-driven loyalty stream processor."""

__version__ = "0.1.0"
