"""The sans-I/O Relay core.

Pure data and decisions: frames, parsing, policies and the session state machine.
Nothing here imports django, asyncio or websockets, so every rule can be tested
without a socket or an event loop.
"""
