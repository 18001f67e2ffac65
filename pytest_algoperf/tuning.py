"""Former import path of `pytest_algoperf.api.halton` (search spaces and Halton points), kept working."""

import sys

from pytest_algoperf.api import halton as _api_module

sys.modules[__name__] = _api_module
