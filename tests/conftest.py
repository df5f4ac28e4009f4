"""Test-wide settings: keep mDNS and servers on loopback whatever the caller's env says."""

from __future__ import annotations

import os

os.environ.setdefault("MICRO_MDNS_INTERFACES", "127.0.0.1")
os.environ.setdefault("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
