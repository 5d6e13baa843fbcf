"""The streaming shell: a faust-streaming app that moves records between Kafka and the pure
core. `app` builds the Faust app, `topology` wires topics, table and agent; the other modules
are plain Python that the agent calls (and the tests call directly)."""
