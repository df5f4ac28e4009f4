"""Side-by-side RPC benchmarks: micro against raw asyncio, aiohttp, grpcio and nameko.

Run ``python -m benchmarks --help`` from the repository root. See ``benchmarks/README.md``.
"""
