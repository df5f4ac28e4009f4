"""go-micro's pod labels and annotations, read from a recorded pod (no server)."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from micro.registry import Node, Service, encode_service
from micro.registry._k8s_pods import key_name, pod_services, register_patch
from tests.registry.kubernetes.fake_api import RECORDED_POD, merge_patch

SVC = Service("go.micro.srv.greeter", "1.0", {}, [], [Node("g-1", "10.244.1.17:8080", {})])


def _pod(**annotations: str) -> dict[str, Any]:
    pod = copy.deepcopy(RECORDED_POD)
    pod["metadata"]["annotations"].update(annotations)
    return pod


@pytest.mark.parametrize(
    ("name", "key"),
    [("go.micro.srv.greeter", "go.micro.srv.greeter"), ("a b/c", "a_b_c"), ("ü", "_")],
)
def test_key_names_follow_go_micro(name: str, key: str) -> None:
    assert key_name(name) == key


def test_too_long_names_are_refused() -> None:
    with pytest.raises(ValueError, match="label key"):
        key_name("x" * 60)


def test_patch_sets_and_removes_go_micros_keys() -> None:
    patch = register_patch({"greeter": SVC, "old": None})
    assert patch["metadata"]["labels"] == {
        "micro.mu/type": "service",
        "micro.mu/selector-greeter": "service",
        "micro.mu/selector-old": None,
    }
    annotations = patch["metadata"]["annotations"]
    assert json.loads(annotations["micro.mu/service-greeter"])["nodes"][0]["id"] == "g-1"
    assert annotations["micro.mu/service-old"] is None
    patched = merge_patch(_pod(**{"micro.mu/service-old": "{}"}), patch)
    assert "micro.mu/service-old" not in patched["metadata"]["annotations"]
    assert pod_services(patched)["go.micro.srv.greeter"] == SVC


def test_a_running_recorded_pod_yields_its_services() -> None:
    pod = _pod(**{"micro.mu/service-go.micro.srv.greeter": encode_service(SVC).decode()})
    assert pod_services(pod) == {"go.micro.srv.greeter": SVC}


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed", "Unknown"])
def test_pods_not_running_carry_nothing(phase: str) -> None:
    pod = _pod(**{"micro.mu/service-x": encode_service(SVC).decode()})
    pod["status"]["phase"] = phase
    assert pod_services(pod) == {}


def test_terminating_pods_carry_nothing() -> None:
    pod = _pod(**{"micro.mu/service-x": encode_service(SVC).decode()})
    pod["metadata"]["deletionTimestamp"] = "2024-05-01T11:00:00Z"
    assert pod_services(pod) == {}


def test_go_extras_and_nulls_are_accepted() -> None:
    raw = encode_service(SVC).decode().replace('"endpoints":[]', '"endpoints":null,"x":1')
    assert pod_services(_pod(**{"micro.mu/service-g": raw}))["go.micro.srv.greeter"].nodes


@pytest.mark.parametrize("bad", ["", "{", "[]", '{"name": 5}', '{"version": "1"}'])
def test_corrupt_annotations_are_skipped_with_a_warning(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = encode_service(SVC).decode()
    pod = _pod(**{"micro.mu/service-bad": bad, "micro.mu/service-good": good})
    with caplog.at_level(logging.WARNING, logger="micro.registry.kubernetes"):
        assert list(pod_services(pod)) == ["go.micro.srv.greeter"]
    assert "skipped annotation micro.mu/service-bad" in caplog.text


@pytest.mark.parametrize("pod", [None, 3, "pod", {"metadata": ["x"], "status": {}}])
def test_things_that_are_not_pods_are_skipped(
    pod: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="micro.registry.kubernetes"):
        assert pod_services(pod) == {}
    assert "malformed pod" in caplog.text
