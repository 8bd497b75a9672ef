"""The prompt file formats: reading one safely, with bounded work and memory, and writing one.

A prompt file holds a payload: ``{"format", "version", "task", "obs_spec", "action_spec",
"episode": {"observations", "actions", "rewards", "seed", "episode_index", "success"}}``.

  .pkl   read with a RESTRICTED unpickler: only the numpy functions that rebuild arrays and a
         few builtin containers can be named by the file; any other global (os.system,
         pathlib.Path.touch, ...) is refused before it runs.
  .npz   numpy arrays, read with allow_pickle=False; the rest of the payload is a JSON string.
         Every member's header (shape, dtype) is read with numpy.lib.format and checked against
         the limits below before any member is loaded.
  .json  plain JSON, arrays as {"dtype", "shape", "data"}. The nesting depth is measured and
         every integer's digits counted before Python builds anything; each array's dtype must
         be a numeric one of `NUMERIC_DTYPES` and its declared shape within the limits, checked
         before numpy allocates it.

Every violation is a :class:`PromptError` naming the file and the limit.
"""

from __future__ import annotations

import builtins
import io
import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gato.errors import UserError
from gato.jat import TEXT_OBS, Episode

FORMAT = "gato-prompt"
VERSION = 1
SUFFIXES = (".pkl", ".npz", ".json")

# Limits of what a prompt file may declare. A real prompt is a few levels deep, its numbers are
# int64 at most (20 characters with the sign), and its largest array, an Atari episode of
# thousands of 84x84x4 frames, is well under a few hundred million elements.
MAX_JSON_DEPTH = 32
"""nesting of JSON arrays and objects (a payload uses 5)"""
MAX_INT_DIGITS = 20
"""digits of a JSON integer (uint64 has 20)"""
MAX_NDIM = 8
"""dimensions of a declared shape"""
MAX_ELEMENTS = 2**28
"""elements of one array"""
MAX_ARRAY_BYTES = 2**30
"""bytes of one array once loaded"""
MAX_TEXT_CHARS = 1 << 20
"""characters of one string element (.npz text and metadata members)"""
MAX_NPZ_MEMBERS = 64
"""arrays in one .npz file"""
NUMERIC_DTYPES = tuple(
    np.dtype(t).newbyteorder(order)
    for t in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")
    for order in ("<", ">")
)
"""the only dtypes a prompt's arrays may declare (either byte order)"""


class PromptError(UserError, ValueError):
    """A prompt file that cannot be used: unreadable, unsafe, too large, or for another task or
    layout (a user error: one line, exit 2)."""


@dataclass
class Prompt:
    """A loaded prompt file."""

    task: str
    episode: Episode
    obs_spec: dict  # as spec_to_dict, recorded when the file was written
    action_spec: dict


# ----------------------------------------------------------------------- restricted unpickler


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) a prompt pickle may reference -> the object itself. Names are resolved
    here, never imported by the file: numpy 1.x pickles say numpy.core, numpy 2.x numpy._core."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    objects = {
        "multiarray._reconstruct": multiarray._reconstruct,  # ndarray, protocol <= 4
        "multiarray.scalar": multiarray.scalar,  # numpy scalars
        "numeric._frombuffer": numeric._frombuffer,  # ndarray, protocol 5
    }
    allowed = {}
    for prefix in ("numpy.core", "numpy._core"):
        for key, obj in objects.items():
            module, name = key.split(".")
            allowed[(f"{prefix}.{module}", name)] = obj
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # numpy 2 pickles dtypes by their class, e.g. numpy.dtypes.Float32DType.
    import numpy.dtypes

    for name in dir(numpy.dtypes):
        if name.endswith("DType") and name != "ObjectDType":
            allowed[("numpy.dtypes", name)] = getattr(numpy.dtypes, name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "complex", "bytearray"):
        obj = _bytearray if name == "bytearray" else getattr(builtins, name)
        allowed[("builtins", name)] = obj
        allowed[("__builtin__", name)] = obj  # protocol 2's spelling
    allowed[("_codecs", "encode")] = _latin1_bytes  # how protocol 2 stores bytes
    return allowed


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles rebuild bytes as _codecs.encode(str, 'latin1'); any other codec name
    is refused (codec lookup imports modules by name)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise PromptError(f"refusing _codecs.encode with encoding {encoding!r} in a prompt pickle")
    return text.encode("latin1")


def _bytearray(source: Any = b"", *args) -> bytearray:
    """bytearray(bytes) as pickles use it; bytearray(N), which would allocate N zeroed bytes
    that the file never held, is refused."""
    if isinstance(source, int):
        raise PromptError(f"refusing bytearray({source}) in a prompt pickle: not stored data")
    return bytearray(source, *args)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other global is an error."""

    _allowed = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        obj = RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise PromptError(
                f"refusing to load {module}.{name} from a prompt pickle: prompt files may only "
                "hold plain containers and numpy arrays (nothing in the file was run)"
            )
        return obj

    def persistent_load(self, pid):
        raise PromptError("prompt pickles may not use persistent ids")


def restricted_loads(data: bytes) -> Any:
    """pickle.loads that admits only plain containers and numpy arrays."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except PromptError:
        raise
    except Exception as e:  # truncated or corrupted pickles raise many different types
        raise PromptError(f"not a readable prompt pickle: {type(e).__name__}: {e}") from e


# ------------------------------------------------------------------------------ the limits


def check_declared_array(shape, dtype, source: str, text_ok: bool = False) -> np.dtype:
    """The numpy dtype of a declared array, after checking its shape and dtype against the
    limits (a PromptError naming `source` and the limit otherwise); nothing is allocated.
    `text_ok` also admits a unicode string dtype (text observations, the .npz metadata)."""
    if isinstance(dtype, str):
        if len(dtype) > 16:
            raise PromptError(f"{source}: dtype string of {len(dtype)} characters is not a dtype")
        try:
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise PromptError(f"{source}: unknown dtype {dtype!r}") from e
    if not isinstance(dtype, np.dtype):
        raise PromptError(f"{source}: the dtype must be a string, got {type(dtype).__name__}")
    is_text = text_ok and dtype.kind == "U"
    if dtype not in NUMERIC_DTYPES and not is_text:
        raise PromptError(
            f"{source}: dtype {dtype.str} is not allowed in a prompt file (only bool, int, uint "
            f"and float{', or text' if text_ok else ''})"
        )
    if is_text and dtype.itemsize > 4 * MAX_TEXT_CHARS:
        raise PromptError(
            f"{source}: dtype {dtype.str} declares strings of {dtype.itemsize // 4} characters, "
            f"more than the limit of {MAX_TEXT_CHARS}"
        )
    if not isinstance(shape, list | tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise PromptError(f"{source}: the shape must be a list of non-negative integers")
    if len(shape) > MAX_NDIM:
        raise PromptError(f"{source}: {len(shape)} dimensions, more than the limit of {MAX_NDIM}")
    elements = math.prod(shape)
    if elements > MAX_ELEMENTS:
        raise PromptError(
            f"{source}: shape {tuple(shape)} declares {elements} elements, more than the "
            f"limit of {MAX_ELEMENTS}"
        )
    if elements * dtype.itemsize > MAX_ARRAY_BYTES:
        raise PromptError(
            f"{source}: shape {tuple(shape)} of {dtype.str} is {elements * dtype.itemsize} "
            f"bytes, more than the limit of {MAX_ARRAY_BYTES}"
        )
    return dtype


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text, counted without parsing it
    (brackets inside strings do not count), in linear time and without recursion."""
    skeleton = _JSON_STRING.sub("", text).encode("utf-8", "replace")
    chars = np.frombuffer(skeleton, np.uint8)
    steps = np.isin(chars, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(chars, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def bounded_json_loads(text: str, source: str) -> Any:
    """json.loads with the nesting depth and every integer's digits checked first."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise PromptError(
            f"{source}: JSON nested {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}"
        )

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise PromptError(
                f"{source}: a JSON integer of {len(digits.lstrip('-'))} digits, more than the "
                f"limit of {MAX_INT_DIGITS}"
            )
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except PromptError:
        raise
    except (ValueError, RecursionError) as e:
        raise PromptError(f"{source}: not a readable prompt .json ({e})") from e


# ------------------------------------------------------------------------ payload <-> file


def array_to_json(a: np.ndarray) -> dict:
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.reshape(-1).tolist()}


def array_from_json(d: Any, source: str) -> np.ndarray:
    """An array from its JSON form, its declared dtype and shape checked before allocation."""
    if not isinstance(d, dict) or not {"dtype", "shape", "data"} <= set(d):
        raise PromptError(f"{source}: an array must be an object with dtype, shape and data")
    dtype = check_declared_array(d["shape"], d["dtype"], source)
    data, count = d["data"], math.prod(d["shape"])
    if not isinstance(data, list) or len(data) != count:
        have = len(data) if isinstance(data, list) else type(data).__name__
        raise PromptError(f"{source}: shape {tuple(d['shape'])} needs {count} values, got {have}")
    if not all(isinstance(x, int | float) for x in data):  # bool is an int
        raise PromptError(f"{source}: array data must be numbers")
    try:
        return np.asarray(data, dtype).reshape(d["shape"])
    except (ValueError, OverflowError, TypeError) as e:
        raise PromptError(f"{source}: its values do not fit {dtype.str} ({e})") from e


def check_npz_headers(path: Path) -> None:
    """Read every member's .npy header (numpy.lib.format) and check it against the limits before
    anything is loaded: numeric dtypes, text only for the metadata and text observations."""
    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_MEMBERS:
                raise PromptError(
                    f"{path}: {len(members)} arrays, more than the limit of {MAX_NPZ_MEMBERS}"
                )
            for member in members:
                name = member.filename.removesuffix(".npy")
                text_ok = name in ("meta", f"obs/{TEXT_OBS}")
                with archive.open(member) as f:
                    version = npy.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = npy.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = npy.read_array_header_2_0(f)
                    else:
                        raise PromptError(f"{path}: {name}: .npy format {version} not supported")
                check_declared_array(shape, dtype, f"{path}: {name}", text_ok)
    except PromptError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise PromptError(f"{path}: not a readable prompt .npz ({e})") from e


def write_prompt_file(path: Path, data: dict) -> None:
    """Write a payload (arrays as numpy arrays) in the format of the path's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(data, protocol=4))
    elif path.suffix == ".npz":
        ep = dict(data.pop("episode"))
        arrays = {f"obs/{k}": np.asarray(v) for k, v in ep.pop("observations").items()}
        arrays["actions"], arrays["rewards"] = ep.pop("actions"), ep.pop("rewards")
        meta = json.dumps({**data, "episode": ep})
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to other names
            np.savez_compressed(f, meta=np.array(meta), **arrays)
    elif path.suffix == ".json":
        ep = data["episode"]
        for k, v in ep["observations"].items():
            if k != TEXT_OBS:
                ep["observations"][k] = array_to_json(v)
        ep["actions"], ep["rewards"] = array_to_json(ep["actions"]), array_to_json(ep["rewards"])
        path.write_text(json.dumps(data))
    else:
        raise PromptError(f"{path}: unknown prompt format; use one of {', '.join(SUFFIXES)}")


def read_prompt_file(path: Path) -> Prompt:
    """Read a prompt file of any format within the limits (nothing in it is executed)."""
    if not path.is_file():
        raise PromptError(f"prompt file {path} does not exist")
    if path.suffix == ".pkl":
        return from_payload(restricted_loads(path.read_bytes()), path)
    if path.suffix == ".npz":
        check_npz_headers(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = bounded_json_loads(str(z["meta"]), f"{path}: meta")
                ep = data["episode"]
                ep["observations"] = {
                    k[4:]: (z[k].tolist() if k[4:] == TEXT_OBS else z[k])
                    for k in z.files
                    if k.startswith("obs/")
                }
                ep["actions"], ep["rewards"] = z["actions"], z["rewards"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            if isinstance(e, PromptError):
                raise
            raise PromptError(f"{path}: not a readable prompt .npz ({e})") from e
        return from_payload(data, path)
    if path.suffix == ".json":
        try:
            data = bounded_json_loads(path.read_text(), str(path))
            ep = data["episode"]
            for k, v in ep["observations"].items():
                if k != TEXT_OBS:
                    ep["observations"][k] = array_from_json(v, f"{path}: {k}")
            for k in ("actions", "rewards"):
                ep[k] = array_from_json(ep[k], f"{path}: {k}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if isinstance(e, PromptError):
                raise
            raise PromptError(f"{path}: not a readable prompt .json ({e})") from e
        return from_payload(data, path)
    raise PromptError(f"{path}: unknown prompt format; use one of {', '.join(SUFFIXES)}")


def from_payload(data: Any, path: Path) -> Prompt:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PromptError(f"{path} is not a gato prompt file (no format={FORMAT!r} marker)")
    if data.get("version") != VERSION:
        raise PromptError(f"{path}: prompt format version {data.get('version')} is not supported")
    try:
        ep = data["episode"]
        episode = Episode(
            task=str(data["task"]),
            observations=dict(ep["observations"]),
            actions=np.asarray(ep["actions"]),
            rewards=np.asarray(ep["rewards"], np.float32).reshape(-1),
            seed=ep.get("seed"),
            episode_index=ep.get("episode_index"),
            success=ep.get("success"),
        )
        return Prompt(episode.task, episode, dict(data["obs_spec"]), dict(data["action_spec"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PromptError(f"{path}: malformed prompt file ({type(e).__name__}: {e})") from e
