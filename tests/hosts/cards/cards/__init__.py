"""The ``cards`` app: cards (which take agents' answers) and boards (which do not)."""
