"""The asyncio layer: one long-lived process holds the deployment's Relay connection.

Everything that can be decided without a socket lives in :mod:`relaybridge.protocol`;
this package only moves bytes, talks to the database through one thread of its own
and pushes stream events to the channel layer.

A streamed token, from the socket to the page, in six steps:

1. :meth:`.connection.RelayConnection._read` takes the frame off the socket and
   parses it (:func:`relaybridge.protocol.parse`);
2. :meth:`relaybridge.protocol.RelaySession.on_frame` matches it to its run: a
   ``TokenReceived`` outcome (and what to answer, if anything, in ``data_to_send``);
3. :meth:`.run_streams.RunStreams.on_outcome` queues it on that run's stream,
   :meth:`.run_stream.RunStream.add_token` -- "a delta arrives for run X";
4. the stream's task takes it up (:meth:`.run_stream.RunStream._take_tokens`): pushed
   at once if the run's flush deadline has passed, else joined with the next tokens
   until it does;
5. :meth:`.run_stream.RunStream._push_pending` appends it to the text-so-far buffer
   (:mod:`relaybridge.buffers`) and ``group_send``\\ s a ``run.delta`` to the thread's
   group (:mod:`.group_pushes`: the appends and pushes of runs that stream at the same
   moment share round trips to Redis);
6. :meth:`relaybridge.consumers.ThreadStreamConsumer.relaybridge_run_delta` sends it
   to each page watching the thread.

The modules:

``bridge``        :class:`~.bridge.BridgeWorker`: leadership, the watched side tasks
                  (restarted when they die; a dead connection loop stops the worker
                  with an error), graceful drain on SIGTERM
``intake``        runs coming in (the intake channel, the sweep), the watchdog, and
                  answers lost with a connection asked again (``RunIntake.lost``)
``connection``    :class:`~.connection.RelayConnection`, the connection loop: connect,
                  reconnect, read, send, heartbeat; the only driver of the session
``handshake``     opening the connection; auth failures told from network trouble
``run_streams``   :class:`~.run_streams.RunStreams`: every run's stream, and what they share
``run_stream``    :class:`~.run_stream.RunStream`: one run's queue and task, flush
                  deadline, pushes, first-token write and end (reply or error)
``group_pushes``  the pushes to pages' groups, pipelined on the Pub/Sub layer
``database``      the database thread, every ORM call the worker makes, and the
                  writes batched beside the streams (first tokens, progress)
``options``       :class:`~.options.WorkerOptions`, read from settings (defaults in conf)
``leader``        the leadership lock (Redis, or local)
``status``        the short-lived status record ``relay_status`` and the admin read
``launch``        starting a worker: the Relay endpoint (or the emulator) and the lock
"""
