"""Messages between policy server and client: msgpack maps holding numpy arrays.

An array travels as ``{"__ndarray__": True, "data": bytes, "dtype": "<f4", "shape": [...]}``
(openpi's layout). Only plain numeric and boolean dtypes are accepted in either direction,
so decoding a message can build nothing but numbers, strings, lists and maps: no pickle, no
object arrays, no msgpack extension types.
"""

from typing import Any

import msgpack
import numpy as np

ALLOWED_KINDS = "biuf"  # bool, signed and unsigned integers, floats
NDARRAY = "__ndarray__"


class WireError(ValueError):
    """A message that is not a well-formed request or answer."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        array = np.asarray(obj)
        if array.dtype.kind not in ALLOWED_KINDS:
            raise WireError(f"arrays of dtype {array.dtype} cannot be sent")
        array = np.ascontiguousarray(array)
        return {NDARRAY: True, "data": array.tobytes(), "dtype": array.dtype.str,
                "shape": list(array.shape)}  # fmt: skip
    raise TypeError(f"cannot send an object of type {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if obj.get(NDARRAY) is not True:
        return obj
    try:
        dtype = np.dtype(obj["dtype"])
        shape = tuple(int(n) for n in obj["shape"])
        data = obj["data"]
    except (KeyError, TypeError, ValueError) as err:
        raise WireError(f"malformed array: {err}") from None
    if dtype.kind not in ALLOWED_KINDS:
        raise WireError(f"arrays of dtype {dtype} are refused")
    if not isinstance(data, bytes) or any(n < 0 for n in shape):
        raise WireError("malformed array: data must be bytes and the shape non-negative")
    needed = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != needed:
        raise WireError(
            f"array of shape {list(shape)} and dtype {dtype} needs {needed} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # writable, owns its memory


def _refuse_extension(code: int, data: bytes) -> None:
    raise WireError(f"msgpack extension type {code} is refused")


def pack(message: dict) -> bytes:
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpack(payload: bytes | str) -> dict:
    """A message as a dict; WireError for anything else (text frames, extension types,
    trailing bytes, a top level that is not a map)."""
    if not isinstance(payload, bytes):
        raise WireError("expected a binary msgpack message, got a text frame")
    try:
        message = msgpack.unpackb(
            payload, object_hook=_decode, ext_hook=_refuse_extension, raw=False
        )
    except WireError:
        raise
    except Exception as err:  # msgpack raises several unrelated types for bad bytes
        raise WireError(f"not a msgpack message: {type(err).__name__}: {err}") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a map at the top level, got {type(message).__name__}")
    return message
