"""The e2e tier runs on the same fixtures as the integration tier: the real control plane, one namespace each."""

from tests.conftest import *  # noqa: F401,F403
from tests.integration.conftest import *  # noqa: F401,F403
