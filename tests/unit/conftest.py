import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from fakehost import standard_host  # noqa: E402


@pytest.fixture
def fake(tmp_path):
    """A FakeHostBuilder with the lab-like standard layout."""
    return standard_host(tmp_path / "root")
