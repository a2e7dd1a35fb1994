"""Open a :class:`Directory` on the configured domain controllers."""

from __future__ import annotations

from core.config import Config
from core.directory.directory import Directory
from core.directory.pool import ConnectionFactory, ConnectionPool


async def connect(config: Config, password: str) -> Directory:
    """Bind (with fail-over across ``directory.urls``) and return a ready directory.

    The first connection is opened here so that a wrong password, an unreachable
    server or a certificate problem surfaces at once as one clear error.
    """
    factory = ConnectionFactory(config.directory, password)
    pool = ConnectionPool(factory.open, config.directory.pool_size)
    await pool.start()
    return Directory(
        config, pool, server=lambda: factory.bound_url,
        pinner=lambda url: ConnectionPool(factory.pinned(url).open, config.directory.pool_size),
    )
