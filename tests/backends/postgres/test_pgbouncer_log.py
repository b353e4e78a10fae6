"""The PostgreSQL command log through PgBouncer in transaction pooling mode: the log contract,
gap-safe tailing under concurrent appenders (the append lock is transaction-scoped, so it
holds through the pooler), and wake-ups by polling or from a direct LISTEN session.

The contract and the shared scenarios are the ones the direct log and the broker logs run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests._services import require_service, unique_name
from tests.backends.postgres._pgbouncer import PgBouncer
from tests.commandlog import _broker_cases as cases
from tests.commandlog import test_log as contract
from workhive.commandlog import MessageLog
from workhive.commandlog.postgres import PostgresMessageLog
from workhive.errors import ConfigError

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

MakeLog = Callable[[], MessageLog]


@pytest.fixture(params=["polling", "listen_url"])
async def make(request: pytest.FixtureRequest,
               pgbouncer: PgBouncer) -> AsyncIterator[MakeLog]:
    """Clients of one log through the pooler; with a direct ``listen_url`` or polling."""
    prefix = unique_name("bouncerlog")
    made: list[PostgresMessageLog] = []
    listen = require_service("postgres") if request.param == "listen_url" else None

    def factory() -> PostgresMessageLog:
        log = PostgresMessageLog(pgbouncer.url, prefix=prefix, pool_size=4,
                                 pooler="transaction", listen_url=listen, poll_interval=0.05)
        made.append(log)
        return log

    yield factory
    for log in made:
        await log.close()
    cleaner = PostgresMessageLog(require_service("postgres"), prefix=prefix)
    await cleaner.open()
    await cleaner.drop()
    await cleaner.close()


@pytest.fixture
async def log(make: MakeLog) -> MessageLog:
    opened = make()
    await opened.open()
    return opened


async def test_contract_through_pgbouncer(log: MessageLog) -> None:
    await contract.test_append_read_head(log)
    await contract.test_checkpoints(log)


async def test_transactions_through_pgbouncer(log: MessageLog) -> None:
    await contract.test_transaction_commits_writes_appends_and_checkpoint_together(log)


async def test_gap_safe_tail_through_pgbouncer(log: MessageLog, make: MakeLog) -> None:
    await cases.gap_safe_tail_under_concurrent_appenders(log, make)


async def test_wait_for_wakes_on_another_clients_append(log: MessageLog, make: MakeLog) -> None:
    await cases.wait_for_wakes_on_another_clients_append(log, make)
    assert isinstance(log, PostgresMessageLog)
    assert (log._listener is None) == (log._listen is None)


def test_options_from_the_dsn_and_their_errors() -> None:
    log = PostgresMessageLog("postgresql://u:pw@bouncer:6432/db?pooler=transaction"
                             "&listen_url=postgresql://u@db:5432/db&sslmode=require")
    assert log.pooler == "transaction"
    assert log.url == "postgresql://u:***@bouncer:6432/db?sslmode=require"
    assert log._listen == ("postgresql://u@db:5432/db", "pw")  # the main password by default
    polling = PostgresMessageLog("postgresql://u@bouncer/db?pooler=transaction")
    assert polling._listen is None and polling.poll_interval == 0.25
    with pytest.raises(ConfigError, match="'pooler' must be one of"):
        PostgresMessageLog("postgresql://u@h/db?pooler=statement")
    with pytest.raises(ConfigError, match="'listen_url' must be a postgresql://"):
        PostgresMessageLog("postgresql://u@h/db", listen_url="redis://h")
    with pytest.raises(ConfigError, match="'poll_interval' must be a positive"):
        PostgresMessageLog("postgresql://u@h/db?poll_interval=0")
