"""A Child SA crosses the data-plane channel unchanged; a mangled install message is refused.

Any valid :class:`ChildSaSpec` (hypothesis builds them from the TS strategies of the codec
tests) encodes to one ``install`` message that decodes to an equal spec. Replacing any field
of such a message by an arbitrary JSON value, or feeding arbitrary bytes, gives either a valid
message or :class:`DataplaneError`, never another exception.
"""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.dataplane.messages import (
    DataplaneError,
    InstallChild,
    decode_control,
    decode_event,
    encode_control,
    spec_to_json,
)
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from tests.property.strategies_b import traffic_selectors

u16 = st.integers(0, 0xFFFF)
keys = st.binary(max_size=68)
limits = st.none() | st.integers(0, 2**64)
seconds = st.none() | st.floats(0, 1e9) | st.integers(0, 2**32)


def lifetimes() -> st.SearchStrategy[Lifetimes | None]:
    return st.none() | st.builds(
        Lifetimes,
        soft_bytes=limits,
        hard_bytes=limits,
        soft_packets=limits,
        hard_packets=limits,
        soft_seconds=seconds,
        hard_seconds=seconds,
    )


@st.composite
def child_sa_specs(draw: st.DrawFn) -> ChildSaSpec:
    endpoints = st.builds(Endpoint, st.ip_addresses(v=draw(st.sampled_from([4, 6]))), u16)
    selectors = st.lists(traffic_selectors(), min_size=1, max_size=4).map(tuple)
    return draw(
        st.builds(
            ChildSaSpec,
            spi_in=st.binary(min_size=4, max_size=4),
            spi_out=st.binary(min_size=4, max_size=4),
            encr=st.sampled_from(list(EncrId)),
            encr_key_bits=st.sampled_from([0, 128, 192, 256]),
            integ=st.sampled_from(list(IntegId)),
            esn=st.booleans(),
            mode=st.sampled_from(EspMode),
            local_ts=selectors,
            remote_ts=selectors,
            local=endpoints,
            remote=endpoints,
            encap=st.booleans(),
            replay_window=st.integers(0, 2**32),
            encr_key_in=keys,
            integ_key_in=keys,
            encr_key_out=keys,
            integ_key_out=keys,
            lifetimes=lifetimes(),
            outbound_active=st.booleans(),
        )
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=12), inner, max_size=7),
    max_leaves=20,
)


@given(child_sa_specs())
def test_a_child_sa_survives_the_channel(spec: ChildSaSpec) -> None:
    decoded = decode_control(encode_control(InstallChild(spec)))
    assert decoded == InstallChild(spec)
    assert isinstance(decoded, InstallChild)
    # the keys compare too, though no repr shows them
    got = decoded.spec
    assert (got.encr_key_in, got.integ_key_in, got.encr_key_out, got.integ_key_out) == (
        spec.encr_key_in,
        spec.integ_key_in,
        spec.encr_key_out,
        spec.integ_key_out,
    )


@given(child_sa_specs(), st.data())
def test_a_mangled_install_message_is_refused_or_valid(spec: ChildSaSpec, data: st.DataObject) -> None:
    child = spec_to_json(spec)
    key = data.draw(st.sampled_from(sorted(child)))
    if data.draw(st.booleans()):
        child[key] = data.draw(json_values)
    else:
        del child[key]
    raw = b"J" + json.dumps({"op": "install", "child": child}).encode()
    try:
        msg = decode_control(raw)
    except DataplaneError:
        return
    assert isinstance(msg, InstallChild)
    assert decode_control(encode_control(msg)) == msg


@given(st.binary(max_size=200) | json_values.map(lambda v: b"J" + json.dumps(v).encode()))
def test_arbitrary_messages_are_refused_or_valid(raw: bytes) -> None:
    for decode in (decode_control, decode_event):
        with contextlib.suppress(DataplaneError):
            decode(raw)
