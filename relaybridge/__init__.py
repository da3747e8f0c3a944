"""relaybridge: @mention AI agents in Django task comments through Relay."""

__version__ = "0.1.0"
