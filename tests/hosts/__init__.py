"""Host projects other than the example one, each proving relaybridge on another shape."""
