"""Issue 13 item 6: prompt files are bounded in what they may declare, checked before any
allocation: JSON nesting depth and integer digits, array dtypes (numeric only) and declared
shapes, in JSON and in .npz member headers. Each violation is one PromptError (a UserError)
naming the file and the limit."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy
from test_prompts import cartpole_episode

from gato import prompt_files as PF
from gato.errors import UserError
from gato.prompts import PromptError, load_prompt, save_prompt


@pytest.fixture
def good_json(tmp_path):
    """A valid JSON prompt file's payload (loaded back as a dict) and where to write variants."""
    path = save_prompt(tmp_path / "good.json", cartpole_episode(4), "cartpole.balance")
    return json.loads(path.read_text()), tmp_path / "bad.json"


def _write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_prompt_error_is_a_user_error_and_a_value_error():
    assert issubclass(PromptError, UserError) and issubclass(PromptError, ValueError)


def test_deep_nesting_is_refused_before_parsing(good_json):
    data, bad = good_json
    depth = 100_000
    with pytest.raises(PromptError, match=r"bad.json: JSON nested 100000 levels deep, more than "
                       r"the limit of 32"):  # fmt: skip
        load_prompt(_write(bad, "[" * depth + "]" * depth))
    # Brackets inside strings are text, not nesting: a valid prompt with such a string loads.
    data["episode"]["note"] = "[" * 1000 + '\\"{'
    assert load_prompt(_write(bad, data)).task == "cartpole.balance"
    assert PF.json_depth('{"a": [[1], {"b": "]]]]"}]}') == 3


def test_a_4000_digit_integer_is_refused(good_json):
    data, bad = good_json
    text = json.dumps(data).replace('"seed": 0', '"seed": ' + "9" * 4000)
    assert "9" * 4000 in text
    with pytest.raises(PromptError, match="bad.json: a JSON integer of 4000 digits, more than the "
                       "limit of 20"):  # fmt: skip
        load_prompt(_write(bad, text))
    # In array data too (where numpy would raise OverflowError).
    data["episode"]["rewards"]["data"][0] = int("7" * 30)
    with pytest.raises(PromptError, match="30 digits"):
        load_prompt(_write(bad, data))


@pytest.mark.parametrize(
    "dtype, message",
    [
        ("<U100000000", r"dtype <U100000000 is not allowed in a prompt file"),
        ("|O", r"dtype \|O is not allowed"),
        ("<c16", r"dtype <c16 is not allowed"),
        ("f4," * 100_000, r"dtype string of 300000 characters is not a dtype"),
        ("nonsense", r"unknown dtype 'nonsense'"),
        (7, r"the dtype must be a string, got int"),
    ],
)
def test_only_numeric_dtypes(good_json, dtype, message):
    data, bad = good_json
    data["episode"]["actions"]["dtype"] = dtype
    with pytest.raises(PromptError, match=f"bad.json: actions: {message}"):
        load_prompt(_write(bad, data))


@pytest.mark.parametrize(
    "shape, message",
    [
        (
            [10**6, 10**6],
            r"shape \(1000000, 1000000\) declares 1000000000000 elements, more "
            r"than the limit of 268435456",
        ),  # fmt: skip
        ([2**27, 2, "<f8"], r"shape \(134217728, 2\) of <f8 is 2147483648 bytes, more than"),
        ([1] * 9, r"9 dimensions, more than the limit of 8"),
        ([-1], r"the shape must be a list of non-negative integers"),
        ([4, 5], r"shape \(4, 5\) needs 20 values, got 4"),
    ],
)
def test_declared_shapes_are_bounded_before_allocation(good_json, shape, message):
    data, bad = good_json
    if isinstance(shape[-1], str):  # a dtype given with the shape
        *shape, data["episode"]["rewards"]["dtype"] = shape
    data["episode"]["rewards"]["shape"] = shape
    with pytest.raises(PromptError, match=f"bad.json: rewards: {message}"):
        load_prompt(_write(bad, data))


def test_array_values_must_be_numbers_that_fit(good_json):
    data, bad = good_json
    data["episode"]["rewards"]["data"][0] = "1.5"
    with pytest.raises(PromptError, match="rewards: array data must be numbers"):
        load_prompt(_write(bad, data))
    data["episode"]["rewards"]["data"][0] = 0.5
    data["episode"]["actions"].update(dtype="|u1", data=[300, 0, 0, 0])
    with pytest.raises(PromptError, match="actions: its values do not fit |u1"):
        load_prompt(_write(bad, data))


def _npz(path, members: dict[str, tuple[tuple, str, bytes]]) -> str:
    """An .npz whose members carry the given (shape, dtype) headers over the given bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (shape, dtype, body) in members.items():
            buf = io.BytesIO()
            header = {"shape": shape, "fortran_order": False, "descr": dtype}
            npy.write_array_header_1_0(buf, header)
            archive.writestr(f"{name}.npy", buf.getvalue() + body)
    return str(path)


@pytest.mark.parametrize(
    "member, shape, dtype, message",
    [
        ("rewards", (10**12,), "<f8", r"rewards: shape \(1000000000000,\) declares"),
        (
            "obs/continuous_observations",
            (3,),
            "<U100000000",
            r"obs/continuous_observations: dtype <U100000000 is not allowed",
        ),
        (
            "meta",
            (),
            "<U100000000",
            r"meta: dtype <U100000000 declares strings of 100000000 "
            r"characters, more than the limit of 1048576",
        ),  # fmt: skip
        ("actions", (2,), "|O", r"actions: dtype \|O is not allowed"),
    ],
)
def test_npz_headers_are_checked_before_any_member_is_loaded(
    tmp_path, monkeypatch, member, shape, dtype, message
):
    good = save_prompt(tmp_path / "good.npz", cartpole_episode(4), "cartpole.balance")
    with np.load(good) as z:
        members = {k: (z[k].shape, z[k].dtype.str, z[k].tobytes()) for k in z.files}
    members[member] = (shape, dtype, b"\x00" * 64)
    path = _npz(tmp_path / "bad.npz", members)

    def no_load(*args, **kwargs):
        raise AssertionError("np.load ran before the headers were checked")

    monkeypatch.setattr(PF.np, "load", no_load)
    with pytest.raises(PromptError, match=f"bad.npz: {message}"):
        load_prompt(path)


def test_npz_round_trip_through_the_header_check(tmp_path):
    episode = cartpole_episode(5)
    path = save_prompt(tmp_path / "good.npz", episode, "cartpole.balance")
    PF.check_npz_headers(path)  # a real file passes
    np.testing.assert_array_equal(load_prompt(path).episode.actions, episode.actions)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PromptError, match="not a readable prompt .npz"):
        load_prompt(path)


def test_pickle_may_not_allocate_what_it_does_not_hold():
    class Alloc:
        def __reduce__(self):
            return (bytearray, (10**12,))

    with pytest.raises(PromptError, match=r"refusing bytearray\(1000000000000\)"):
        PF.restricted_loads(pickle.dumps({"x": Alloc()}, protocol=2))
    assert PF.restricted_loads(pickle.dumps(bytearray(b"ab"), protocol=2)) == bytearray(b"ab")
