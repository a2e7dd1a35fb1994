"""Open a :class:`Directory` on the configured domain controllers."""

from __future__ import annotations

import asyncio

from core.config import Config
from core.directory.directory import Directory
from core.directory.pool import ConnectionFactory, ConnectionPool


async def connect(config: Config, password: str | None, *, operator_password: str | None = None) -> Directory:
    """Bind (with fail-over across ``directory.urls``) and return a ready directory.

    The first connection is opened here so that a wrong password, an unreachable
    server or a certificate problem surfaces at once as one clear error. When a shared
    service account acts for ``directory.operator``, the operator proves who they are
    here too (their own password, or their Kerberos ticket), or nothing opens.
    """
    factory = ConnectionFactory(config.directory, password)
    pool = ConnectionPool(factory.open, config.directory.pool_size)
    await pool.start()
    operator = None
    if config.directory.operator:
        try:
            operator = await asyncio.to_thread(factory.prove_operator, operator_password)
        except BaseException:
            await pool.close()
            raise
    return Directory(config, pool, server=lambda: factory.bound_url, bound_as=factory.bound_as,
                     account=factory.account, operator=operator,
                     pinner=lambda url: ConnectionPool(factory.reaching((url,)).open, config.directory.pool_size),
                     cataloger=lambda: ConnectionPool(factory.reaching(config.directory.gc_urls).open, 1),
                     credentials=factory.for_child)
