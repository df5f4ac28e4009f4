"""Sans-IO parts of the Kubernetes registry: go-micro's pod labels and annotations.

go-plugins' kubernetes registry keeps services on the pods that run them:

    labels       micro.mu/type: service
                 micro.mu/selector-<name>: service
    annotations  micro.mu/service-<name>: <go-micro Service JSON>

``<name>`` is the service name with every character outside ``[-A-Za-z0-9_.]`` replaced by
``_`` (label keys allow no more); the JSON inside holds the real name. Only pods in phase
``Running`` count.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from micro.errors import RegistryError
from micro.registry import Service, decode_service, encode_service

__all__ = [
    "ANNOTATION_PREFIX",
    "LABEL_TYPE",
    "SELECTOR_PREFIX",
    "key_name",
    "pod_services",
    "register_patch",
]

log = logging.getLogger("micro.registry.kubernetes")

LABEL_TYPE = "micro.mu/type"
SELECTOR_PREFIX = "micro.mu/selector-"
ANNOTATION_PREFIX = "micro.mu/service-"
_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]")
_MAX_NAME = 63  # a label key's name part


def key_name(service: str) -> str:
    """The service name as go-micro puts it in label and annotation keys.

    Raises:
        ValueError: the name is too long for a label key.
    """
    name = _UNSAFE.sub("_", service)
    if not name or len(f"selector-{name}") > _MAX_NAME:
        raise ValueError(f"service name {service!r} does not fit a Kubernetes label key")
    return name


def register_patch(services: dict[str, Service | None]) -> dict[str, Any]:
    """A merge patch setting (or, for ``None``, removing) services on a pod."""
    labels: dict[str, str | None] = {LABEL_TYPE: "service"}
    annotations: dict[str, str | None] = {}
    for name, service in services.items():
        key = key_name(name)
        labels[SELECTOR_PREFIX + key] = "service" if service is not None else None
        annotations[ANNOTATION_PREFIX + key] = (
            encode_service(service).decode() if service is not None else None
        )
    return {"metadata": {"labels": labels, "annotations": annotations}}


def pod_services(pod: Any) -> dict[str, Service]:
    """The services a pod carries, by name; nothing for a pod that is not running.

    Annotations that do not parse, or a pod that is not a pod, are logged and skipped.
    """
    if not isinstance(pod, dict):
        log.warning("kubernetes registry: skipped a malformed pod: %.80r", pod)
        return {}
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if not isinstance(metadata, dict) or not isinstance(status, dict):
        log.warning("kubernetes registry: skipped a malformed pod: %.80r", pod)
        return {}
    if status.get("phase") != "Running" or metadata.get("deletionTimestamp"):
        return {}
    found: dict[str, Service] = {}
    annotations = metadata.get("annotations") or {}
    for key, value in annotations.items() if isinstance(annotations, dict) else ():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        try:
            service = decode_service(value if isinstance(value, str) else "")
        except RegistryError as exc:
            where = metadata.get("name", "?")
            log.warning("kubernetes registry: skipped annotation %s on pod %s: %s", key, where, exc)
            continue
        found[service.name] = service
    return found
