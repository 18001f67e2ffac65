"""Former import path of `pytest_algoperf.api.spec`, kept working for existing code."""

import sys

from pytest_algoperf.api import spec as _api_module

sys.modules[__name__] = _api_module
