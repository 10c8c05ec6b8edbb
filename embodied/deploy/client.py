"""The client of `embodied serve`, for the robot's computer: numpy, msgpack, websockets.

    client = PolicyClient("127.0.0.1", 8000, deadline_s=0.5)
    client.spec                  # cameras, sizes, action names and range of the checkpoint
    chunk = client.infer({"observation.images.front": frame_uint8_hwc,
                          "observation.state": state, "task": "pick up the cube"})

`infer` returns the action chunk (chunk_size, action_dim). Every request carries an id, so
an answer that arrives after its deadline is recognised and dropped instead of being taken
for the answer to the next request.
"""

import itertools
from typing import Any

import numpy as np

from embodied.deploy.spec import PolicySpec
from embodied.deploy.wire import WireError, pack, unpack


class ServerError(RuntimeError):
    """The server refused a request, left, or did not answer in time; the message says which."""


class PolicyClient:
    """One connection to a policy server.

    Args:
        host, port: the server.
        deadline_s: longest wait for an answer before `infer` raises ServerError.
        connect_s: longest wait to connect and receive the server's spec.
        max_message_mb: largest answer accepted.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        deadline_s: float = 1.0,
        connect_s: float = 10.0,
        max_message_mb: float = 16.0,
    ):
        from websockets.sync.client import connect

        self.deadline_s = deadline_s
        self._ids = itertools.count(1)
        try:
            self._ws = connect(
                f"ws://{host}:{port}", open_timeout=connect_s, compression=None,
                max_size=int(max_message_mb * 2**20),
            )  # fmt: skip
            self.spec = PolicySpec.from_dict(unpack(self._ws.recv(timeout=connect_s)))
        except (OSError, TimeoutError, WireError) as err:
            raise ServerError(f"no policy server at {host}:{port}: {err}") from None

    def infer(self, obs: dict[str, Any]) -> np.ndarray:
        """The server's action chunk for one observation; ServerError when it refuses the
        request, closes, or misses the deadline."""
        from websockets.exceptions import ConnectionClosed

        request_id = next(self._ids)
        try:
            self._ws.send(pack({**obs, "id": request_id}))
            while True:
                answer = unpack(self._ws.recv(timeout=self.deadline_s))
                if answer.get("id") == request_id:
                    break  # earlier ids are answers that came after their deadline
        except TimeoutError:
            raise ServerError(f"no answer within the {self.deadline_s} s deadline") from None
        except ConnectionClosed as closed:
            raise ServerError(f"the server closed the connection: {closed}") from None
        if "error" in answer:
            raise ServerError(f"the server refused the request: {answer['error']}")
        return self.spec.check_answer(answer.get("actions"))

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
