"""The runtime's test step types serve these tests too."""

from tests.runtime.conftest import recorder, registry

__all__ = ["recorder", "registry"]
