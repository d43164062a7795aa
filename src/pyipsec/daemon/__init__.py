"""The daemon: glue between the sans-I/O engine and the world (see ``runtime``'s docstring).

``runtime`` feeds the engine and forwards its events; ``commands``, ``progress``,
``reconnect`` and ``mobike`` hold the policies; ``sink``/``dpsink`` and ``host`` are the seams to
the data plane and the host, ``clock`` the seam to time; ``build`` turns the config into an
engine, ``status`` SAs into JSON.
"""
