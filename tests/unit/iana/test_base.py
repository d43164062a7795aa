from __future__ import annotations

from pyipsec.iana.ikev2 import NotifyType, PayloadType
from pyipsec.iana.transforms import EncrId


def test_unassigned_value_becomes_pseudo_member() -> None:
    n = NotifyType(40000)
    assert int(n) == 40000
    assert not n.is_assigned
    assert n is NotifyType(40000)
    assert isinstance(n, NotifyType)


def test_assigned_values_keep_iana_names() -> None:
    assert NotifyType(16390) is NotifyType.COOKIE
    assert NotifyType.COOKIE.is_assigned
    assert PayloadType(46) is PayloadType.SK
    assert EncrId(20).name == "ENCR_AES_GCM_16"


def test_error_and_status_ranges() -> None:
    assert NotifyType.INVALID_SYNTAX.is_error
    assert not NotifyType.NAT_DETECTION_SOURCE_IP.is_error
