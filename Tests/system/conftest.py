"""Fixtures for the Swiftlet black-box system tests (see brokers.py for the process handling)."""

import uuid

import pytest

from brokers import ALL_BROKERS, BrokerFactory
from clients import GoodClient


@pytest.fixture
def broker_factory(tmp_path):
    """Function-scoped factory: brokers are stopped at the end of the test."""
    f = BrokerFactory(tmp_path)
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory):
    """Module-scoped factory: brokers live for the whole test module."""
    f = BrokerFactory(tmp_path_factory.mktemp("brokers"))
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    """A broker with the default configuration, shared by a test module."""
    return module_broker_factory()


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB server of the test session's own (dbservers.py), with the seed's tables."""
    from dbservers import MariaDB, require_root
    require_root()
    s = MariaDB()
    yield s
    s.destroy()


@pytest.fixture(scope="session")
def pgsql_server():
    """A PostgreSQL server of the test session's own (dbservers.py), with the seed's tables."""
    from dbservers import PostgreSQL, require_root
    require_root()
    s = PostgreSQL()
    yield s
    s.destroy()


@pytest.fixture
def uniq():
    """A unique topic prefix for one test (module brokers are shared)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def good(broker):
    """A well-behaved client publishing QoS 1 to itself in the background; call good.check()."""
    g = GoodClient(broker)
    yield g
    g.halt()
    g.c.disconnect()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for b in ALL_BROKERS:
            if b.alive() or b.proc is not None and b.returncode is None:
                status = "running" if b.alive() else f"exited {b.proc.returncode}"
                rep.sections.append((f"swiftlet log tail ({b.workdir.name}, {status})", b.tail()))
