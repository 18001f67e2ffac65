"""Former import path of `pytest_algoperf.api.random_utils`, kept working for existing code."""

import sys

from pytest_algoperf.api import random_utils as _api_module

sys.modules[__name__] = _api_module
