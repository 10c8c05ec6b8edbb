"""Serving a policy to arms whose computer cannot run it, and the arm-side safety checks.

The robot's computer imports only this package's `wire`, `client` and `safety` modules, which
need numpy, msgpack and websockets, never torch, lerobot or the simulators. The server side
(`embodied serve`, `embodied.serve`) loads the checkpoint.

Conventions follow openpi's policy server, which real-arm users know: a websocket, the
server's metadata sent first on connect, then one msgpack message per request and per answer,
numpy arrays as typed byte buffers (never pickles).
"""
