import os

import pytest

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def data_path(*parts):
    """A file of ../shared/data; the test is skipped when the folder is absent."""
    p = os.path.abspath(os.path.join(DATA, *parts))
    if not os.path.exists(p):
        pytest.skip(f"{p} is not present")
    return p
