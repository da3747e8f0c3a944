"""The asyncio layer: one long-lived process holds the deployment's Relay connection.

Everything that can be decided without a socket lives in :mod:`relaybridge.protocol`;
this package only moves bytes, talks to the database through ``sync_to_async`` and
pushes stream events to the channel layer.
"""
