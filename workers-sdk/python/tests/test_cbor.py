"""The bundled CBOR codec: RFC 8949 examples, round trips, refusals."""

import math

import pytest

from multiagents_worker import cbor

# (value, hex) pairs from RFC 8949 appendix A that this codec encodes the same way.
RFC = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-1, "20"),
    (-1000, "3903e7"),
    ("", "60"),
    ("IETF", "6449455446"),
    ("\u00fc", "62c3bc"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (1.1, "fb3ff199999999999a"),
]


@pytest.mark.parametrize("value,hexed", RFC)
def test_rfc_examples_encode_and_decode(value, hexed):
    assert cbor.dumps(value).hex() == hexed
    assert cbor.loads(bytes.fromhex(hexed)) == value


def test_other_encoders_forms_decode():
    assert cbor.loads(bytes.fromhex("f93c00")) == 1.0  # half float
    assert cbor.loads(bytes.fromhex("fa47c35000")) == 100000.0  # single float
    assert math.isinf(cbor.loads(bytes.fromhex("f97c00")))
    assert cbor.loads(bytes.fromhex("9f018202039f0405ffff")) == [1, [2, 3], [4, 5]]  # indefinite
    assert cbor.loads(bytes.fromhex("7f657374726561646d696e67ff")) == "streaming"
    assert cbor.loads(bytes.fromhex("c11a514b67b0")) == 1363896240  # a tag's content


def test_round_trips_nested_values():
    value = {"order": {"id": "o-1", "items": [{"sku": "MUG", "qty": 2, "unit_price": 900}]}, "n": -5, "f": 0.5}
    assert cbor.loads(cbor.dumps(value)) == value


@pytest.mark.parametrize(
    "data,why",
    [
        (b"", "truncated"),
        (bytes.fromhex("1a0000"), "truncated"),
        (bytes.fromhex("0000"), "bytes after"),
        (bytes.fromhex("62c3"), "truncated"),
        (bytes.fromhex("62fffe"), "not UTF-8"),
        (bytes.fromhex("1c"), "reserved"),
        (bytes.fromhex("ff"), "break"),
        (b"\x81" * 300 + b"\x00", "deeper"),
    ],
)
def test_bad_bytes_are_a_cbor_error(data, why):
    with pytest.raises(cbor.CborError, match=why):
        cbor.loads(data)


def test_values_cbor_cannot_hold_are_refused():
    with pytest.raises(cbor.CborError, match="64 bits"):
        cbor.dumps(1 << 64)
    with pytest.raises(cbor.CborError, match="cannot encode a set"):
        cbor.dumps({1, 2})
    with pytest.raises(cbor.CborError, match="map key"):
        cbor.dumps({(1, 2): 3})


def test_keys_and_text_python_cannot_hold_are_cbor_errors():
    # {[[0]]: 1}: an array of arrays as a key becomes nested tuples.
    assert cbor.loads(bytes.fromhex("a181810001")) == {((0,),): 1}
    with pytest.raises(cbor.CborError, match="is a map"):
        cbor.loads(bytes.fromhex("a1a0f6"))
    with pytest.raises(cbor.CborError, match="not valid Unicode"):
        cbor.dumps("\ud800")
