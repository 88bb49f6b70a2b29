"""Pure decisions: plain data in, plain data (with reasons) out.

Nothing in this package imports kopf, kubernetes, aiohttp or does I/O;
tests/unit/test_core_is_pure.py enforces it.
"""
