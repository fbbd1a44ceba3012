"""One shared-memory block, carved into numpy arrays in a fixed order, seen by the front and the scorer process.

API::

    block = SharedBlock.create(nbytes)        # the owner (front process); block.unlink() when the service stops
    block = SharedBlock.attach(block.name)    # the scorer process (it never unlinks)
    carve = block.carver()                    # a fresh cursor at the block's start
    arr = carve(np.float64, (n, m))           # the next 8-byte aligned array: both processes carving the same
                                              # shapes in the same order get views on the same bytes
    SharedBlock.size_of([(np.float64, (n, m)), ...])   # the nbytes those arrays need
    block.close()                             # after every array carved from it is gone

A new block is zero-filled (POSIX shared memory starts zeroed), so carved arrays start at 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
import numpy.typing as npt

ALIGN = 8

Carver = Callable[[npt.DTypeLike, tuple[int, ...]], npt.NDArray[Any]]


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


class SharedBlock:
    def __init__(self, shm: SharedMemory, owner: bool) -> None:
        self._shm = shm
        self.owner = owner

    @property
    def name(self) -> str:
        return self._shm.name

    @classmethod
    def create(cls, nbytes: int) -> SharedBlock:
        return cls(SharedMemory(create=True, size=max(ALIGN, nbytes)), owner=True)

    @classmethod
    def attach(cls, name: str) -> SharedBlock:
        # The creating process unlinks the block. Attaching registers it with the resource tracker again, which is
        # harmless here: a process spawned by multiprocessing shares its parent's tracker, which keeps one entry.
        return cls(SharedMemory(name=name), owner=False)

    @staticmethod
    def size_of(arrays: Iterable[tuple[npt.DTypeLike, tuple[int, ...]]]) -> int:
        offset = 0
        for dtype, shape in arrays:
            offset = _aligned(offset) + np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
        return offset

    def carver(self) -> Carver:
        buf = self._shm.buf
        offset = 0

        def carve(dtype: npt.DTypeLike, shape: tuple[int, ...]) -> npt.NDArray[Any]:
            nonlocal offset
            offset = _aligned(offset)
            arr: npt.NDArray[Any] = np.ndarray(shape, dtype=np.dtype(dtype), buffer=buf, offset=offset)
            offset += arr.nbytes
            return arr

        return carve

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # an array carved from it is still alive: the mapping goes at exit
            self._shm.close()

    def unlink(self) -> None:
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
