"""Providers built on first use, inside the running loop.

A worker may start before the emulator (``make run`` starts both at once) or before the network
is up; building the clients at the first send keeps start-up from failing, and a failed build is
retried at the next send rather than cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from notifications.providers.base import PushProvider


class LazyProviders(Mapping[str, PushProvider]):
    def __init__(self, factory: Callable[[], dict[str, PushProvider]]) -> None:
        self._factory = factory
        self._built: dict[str, PushProvider] | None = None

    def _providers(self) -> dict[str, PushProvider]:
        if self._built is None:
            self._built = self._factory()
        return self._built

    def __getitem__(self, key: str) -> PushProvider:
        return self._providers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers())

    def __len__(self) -> int:
        return len(self._providers())

    async def close(self) -> None:
        if self._built is not None:
            for provider in self._built.values():
                await provider.close()
            self._built = None
