"""The e2e tier runs on the same fixtures as the integration tier: the real control plane, one namespace each."""

from tests.conftest import *  # noqa: F401,F403
from tests.integration.conftest import *  # noqa: F401,F403

# tests/conftest.py's hooks run once for the whole session already (they are found there too)
del pytest_collection_modifyitems, pytest_terminal_summary  # noqa: F821
