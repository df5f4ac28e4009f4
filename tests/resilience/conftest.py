"""The selector fixtures (a 3-node registry, a fake clock) serve the ejection tests too."""

from tests.selector.conftest import clock, registry, selector

__all__ = ["clock", "registry", "selector"]
