"""The files ``micro new`` writes. Tokens: __SERVICE__, __NAME__, __PKG__, __CLASS__, __DIST__
(this library's PyPI name) and __VERSION__ (its version)."""

from __future__ import annotations

__all__ = ["FILES"]

HANDLER = '''\
"""The __SERVICE__ handler: typed messages in, typed messages out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from msgspec import Struct


class CallRequest(Struct):
    name: str


class CallResponse(Struct):
    msg: str


class StreamRequest(Struct):
    count: int


class StreamResponse(Struct):
    count: int


class __CLASS__:
    """Endpoints __CLASS__.Call and __CLASS__.Stream."""

    async def call(self, req: CallRequest) -> CallResponse:
        """Greet someone by name."""
        return CallResponse(msg=f"Hello {req.name}")

    async def stream(self, req: StreamRequest) -> AsyncIterator[StreamResponse]:
        """Send 0..count-1, one message each."""
        for n in range(req.count):
            yield StreamResponse(count=n)
'''

MAIN = '''\
"""Serve __SERVICE__: python -m __PKG__ (flags: python -m __PKG__ --help)."""

from __future__ import annotations

import logging

import micro

from __PKG__.handler import __CLASS__


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = micro.Service("__SERVICE__", version="latest")
    service.handle(__CLASS__())
    service.run()


if __name__ == "__main__":
    main()
'''

DUNDER_MAIN = """\
from __PKG__.main import main

main()
"""

TEST = '''\
"""__SERVICE__ served in-process (memory registry and transport) by micro.testing.serve."""

from __future__ import annotations

import pytest

from micro.errors import BadRequest
from micro.testing import serve

from __PKG__.handler import __CLASS__


async def test_call_greets_by_name() -> None:
    async with serve(__CLASS__(), name="__SERVICE__") as client:
        rsp = await client.call("__SERVICE__", "__CLASS__.Call", {"name": "Alice"})
    assert rsp == {"msg": "Hello Alice"}


async def test_call_rejects_a_bad_request() -> None:
    async with serve(__CLASS__(), name="__SERVICE__") as client:
        with pytest.raises(BadRequest):
            await client.call("__SERVICE__", "__CLASS__.Call", {"name": 42}, retries=0)


async def test_stream_sends_every_count() -> None:
    async with serve(__CLASS__(), name="__SERVICE__") as client:
        async with client.stream("__SERVICE__", "__CLASS__.Stream", {"count": 3}) as stream:
            got = [msg async for msg in stream]
    assert got == [{"count": 0}, {"count": 1}, {"count": 2}]
'''

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "__NAME__"
version = "0.1.0"
description = "The __SERVICE__ micro service"
requires-python = ">=3.11"
dependencies = ["__DIST__>=__VERSION__"]  # imported as `micro`

[project.optional-dependencies]
# the micro command (micro run, micro call) and the tests: pip install -e '.[dev]'
dev = ["__DIST__[toolkit]>=__VERSION__", "pytest>=8", "pytest-asyncio>=0.23"]

[tool.hatch.build.targets.wheel]
packages = ["__PKG__"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["."]
testpaths = ["tests"]
filterwarnings = ["error"]
"""

README = """\
# __SERVICE__

A micro service (library `__DIST__`, imported as `micro`) made by `micro new __NAME__`.

| file | what |
|---|---|
| `__PKG__/handler.py` | typed messages; the handler (`__CLASS__.Call`, `.Stream`) |
| `__PKG__/main.py` | the service: registers as `__SERVICE__` and serves until Ctrl-C |
| `tests/test_handler.py` | tests that serve the handler in-process (`micro.testing.serve`) |
| `Dockerfile`, `k8s/deployment.yaml` | container image and Kubernetes deployment |
| `wheels/` | wheels the image installs before PyPI (e.g. a locally built `__DIST__`) |

```sh
pip install -e '.[dev]'                # in a venv: this project, __DIST__, micro, pytest
python -m pytest                       # run the tests
micro run __PKG__                      # serve, restarting when a file changes (or: micro run .)
micro call __SERVICE__ __CLASS__.Call '{"name": "John"}'
micro stream __SERVICE__ __CLASS__.Stream '{"count": 3}'
micro get service __SERVICE__
```

Every setting is a flag or a `MICRO_*` variable (`python -m __PKG__ --help`): for example
`MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=127.0.0.1:2379 python -m __PKG__`.
"""

DOCKERFILE = """\
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wheels ./wheels
COPY __PKG__ ./__PKG__
RUN pip install --no-cache-dir --find-links ./wheels .
ENV MICRO_SERVER_ADDRESS=0.0.0.0:8080
EXPOSE 8080
USER nobody
CMD ["python", "-m", "__PKG__"]
"""

K8S = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: __NAME__
---
# The kubernetes registry annotates the service's own pods and lists the others.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: __NAME__-registry
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: __NAME__-registry
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: __NAME__-registry
subjects:
  - kind: ServiceAccount
    name: __NAME__
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: __NAME__
  labels:
    app: __NAME__
spec:
  replicas: 2
  selector:
    matchLabels:
      app: __NAME__
  template:
    metadata:
      labels:
        app: __NAME__
    spec:
      serviceAccountName: __NAME__
      containers:
        - name: __NAME__
          image: __NAME__:latest
          imagePullPolicy: IfNotPresent
          ports:
            - containerPort: 8080
              name: mucp
          env:
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
            - name: MICRO_REGISTRY
              value: kubernetes
            - name: MICRO_SERVER_ADDRESS
              value: "0.0.0.0:8080"
            - name: MICRO_SERVER_ADVERTISE
              value: "$(POD_IP):8080"
          readinessProbe:
            tcpSocket:
              port: 8080
            periodSeconds: 5
          resources:
            requests:
              cpu: 50m
              memory: 64Mi
            limits:
              memory: 256Mi
"""

FILES = {
    "__PKG__/__init__.py": '"""The __SERVICE__ service."""\n',
    "__PKG__/__main__.py": DUNDER_MAIN,
    "__PKG__/handler.py": HANDLER,
    "__PKG__/main.py": MAIN,
    "tests/test_handler.py": TEST,
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "Dockerfile": DOCKERFILE,
    "k8s/deployment.yaml": K8S,
    ".gitignore": "__pycache__/\n*.egg-info/\n.venv/\n",
    "wheels/README.md": "Wheels put here are installed into the image before PyPI is asked.\n",
}
