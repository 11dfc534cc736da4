"""The service answers and identifies its caller."""

from tests.conftest import error_codes


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_me(gql, world):
    data = await gql.ok("{ me { name role email } }", as_=world.agent)
    assert data["me"]["email"] == world.agent.email
    assert data["me"]["role"] == "AGENT"


async def test_anonymous_is_unauthenticated(gql):
    assert error_codes(await gql("{ me { name } }")) == ["UNAUTHENTICATED"]


async def test_operations_not_yet_available_say_so_to_a_logged_in_caller_only(gql, world):
    """R20: a contract operation whose feature has not landed answers NOT_AVAILABLE, and
    like every other one asks for a login first."""
    assert error_codes(await gql("{ audiences { id } }")) == ["UNAUTHENTICATED"]
    assert error_codes(await gql("{ audiences { id } }", as_=world.admin)) == ["NOT_AVAILABLE"]
    assert error_codes(await gql("{ campaigns { totalCount } }", as_=world.agent)) == [
        "NOT_AVAILABLE"
    ]
