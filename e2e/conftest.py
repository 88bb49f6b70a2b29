"""The e2e tier runs on the same fixtures as the integration tier: the real control plane, one namespace each."""

from tests.conftest import *  # noqa: F401,F403
from tests.integration.conftest import *  # noqa: F401,F403

# tests/conftest.py's hooks are called for every item and the whole session already (pytest calls these through
# config.hook, every conftest's): a second copy here would run each twice
del pytest_collection_modifyitems, pytest_terminal_summary, pytest_runtest_protocol  # noqa: F821
