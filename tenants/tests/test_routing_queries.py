"""The hot path of a tenant API call costs a fixed number of queries, whatever the tenant count.

``make bench`` measures the latency side of the same claim (bench/routing.py).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

# GET /api/v1/projects on a tenant's host with a bearer token, queries in order:
#   1. SET search_path = "public"         the middleware starts every request on the public schema
#   2. Domain JOIN Tenant WHERE domain =  tenant resolution by host (one indexed row, LIMIT 1)
#   3. SET search_path = "<tenant>", ...  django-tenants, once after connection.set_tenant()
#                                         (TENANT_LIMIT_SET_CALLS: not again on every cursor)
#   4. AuthToken JOIN User WHERE hash =   bearer token authentication (tenant schema, unique index)
#   5. Project list                        the view's one query (tenant schema)
# No session, user or tenant re-read, no savepoint, no count: the API authenticates by token
# only and reads outside a transaction. Nothing here depends on how many tenants exist.
# Once in a tenant's life, its first call with a token also ticks its journey step
# "api_token_used" (tenants.journey); every later call finds it done in the cache.
PROJECT_LIST_QUERIES = 5


@pytest.fixture
def first_call(api, django_capture_on_commit_callbacks):
    """The tenant's first API call with a token: it ticks the journey step (a few queries, once),
    whose "done" mark reaches the cache when the tick commits (here: the test's transaction
    never commits, so its commit callbacks are run by hand)."""

    def call(handle, token):
        with django_capture_on_commit_callbacks(execute=True):
            _list_projects(api, handle, token)

    return call


def _list_projects(api, handle, token):
    response = api.get("/api/v1/projects", host=handle.host, token=token)
    assert response.status_code == 200, response.body
    return response


def _captured_sql(api, handle, token) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        _list_projects(api, handle, token)
    return [query["sql"] for query in captured.captured_queries]


def test_project_list_query_count_is_pinned(api, tenant_a, django_assert_num_queries, first_call):
    token = tenant_a.login(api)
    first_call(tenant_a, token)

    with django_assert_num_queries(PROJECT_LIST_QUERIES):
        response = _list_projects(api, tenant_a, token)
    assert [p["name"] for p in response.body["results"]] == ["Welcome"]


def test_project_list_queries_are_the_expected_ones(api, tenant_a, first_call):
    token = tenant_a.login(api)
    first_call(tenant_a, token)

    sql = _captured_sql(api, tenant_a, token)
    schema = tenant_a.tenant.schema_name
    assert len(sql) == PROJECT_LIST_QUERIES, sql
    assert sql[0] == 'SET search_path = "public"'
    assert '"tenants_domain"' in sql[1] and '"tenants_tenant"' in sql[1] and "LIMIT 1" in sql[1]
    assert sql[2] == f'SET search_path = "{schema}","public"'
    assert '"accounts_authtoken"' in sql[3] and '"accounts_user"' in sql[3] and "LIMIT 1" in sql[3]
    assert sql[4].startswith('SELECT "agents_project"')


def test_project_list_query_count_does_not_grow_with_tenants(
    api, make_tenant, django_assert_num_queries, first_call
):
    first = make_tenant("First Org")
    token = first.login(api)
    first_call(first, token)
    with django_assert_num_queries(PROJECT_LIST_QUERIES):
        _list_projects(api, first, token)

    others = [make_tenant(f"Other Org {n}") for n in range(2)]
    other_tokens = [other.login(api) for other in others]
    for other, other_token in zip(others, other_tokens, strict=True):
        first_call(other, other_token)

    # Three tenants now exist: every one of them, the first one included, is served with the
    # same queries as when it was alone (the two newcomers on their second request).
    for handle, handle_token in [(first, token), *zip(others, other_tokens, strict=True)]:
        with django_assert_num_queries(PROJECT_LIST_QUERIES):
            _list_projects(api, handle, handle_token)
