"""Former import path of `pytest_algoperf.api.upstream_names`, kept working for existing code."""

import sys

from pytest_algoperf.api import upstream_names as _api_module

sys.modules[__name__] = _api_module
