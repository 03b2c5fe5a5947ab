"""Deprecated: the worker now lives in :mod:`connectzap.core.worker`, its parts in
:mod:`~connectzap.core.dispatcher`, :mod:`~connectzap.core.sender` and :mod:`~connectzap.core.bookkeeping`."""

import warnings

from .worker import Worker

warnings.warn("connectzap.core.workers is deprecated; import Worker from connectzap.core.worker",
              DeprecationWarning, stacklevel=2)

__all__ = ["Worker"]
