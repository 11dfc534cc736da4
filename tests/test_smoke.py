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


async def test_audiences_and_campaigns_ask_for_a_login_first(gql):
    for query in ("{ audiences { id } }", "{ campaigns { totalCount } }"):
        assert error_codes(await gql(query)) == ["UNAUTHENTICATED"]
