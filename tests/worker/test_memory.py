"""The relay worker gives memory back once, when it goes idle after carrying runs."""

from __future__ import annotations

import pytest

from relaybridge.worker import intake as memory
from relaybridge.worker.intake import MemoryReturn


def test_memory_is_given_back_once_per_idle_spell() -> None:
    returns = MemoryReturn()
    assert not returns.check(0)  # never carried anything: nothing to give back
    assert not returns.check(3)
    assert not returns.check(1000)
    assert returns.check(0)  # idle after carrying runs
    assert not returns.check(0)  # still idle: once is enough
    assert not returns.check(1)
    assert returns.check(0)


def test_glibc_malloc_trim_is_found_on_linux() -> None:
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert memory._malloc_trim is not None
    assert memory._malloc_trim(0) in (0, 1)
