"""Drives the Exa Websets profile of a running `haltway serve` with the official `exa-py`
SDK, unchanged (it validates every answer with its pydantic models).

Environment: HALTWAY_URL (the server root), HALTWAY_KEY (tenant A), HALTWAY_OTHER_KEY
(tenant B). Exits non-zero, with the failed assertion, when the profile breaks the contract.
Run by tests/tests/profiles_sdk.rs.
"""

import os
import sys
import time

import httpx
from exa_py import Exa

URL = os.environ["HALTWAY_URL"]
KEY = os.environ["HALTWAY_KEY"]
OTHER = os.environ["HALTWAY_OTHER_KEY"]


def wait_for(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def expect_status(code, call):
    try:
        call()
    except ValueError as e:
        assert f"status code {code}" in str(e), str(e)
        return
    raise AssertionError(f"expected a {code}")


def billing_is_exact(search_id, found):
    """The search's usage is its fixed cost plus the costs of the entries it kept."""
    native = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {KEY}"})
    job = native.get(f"/v1/jobs/{search_id}").json()
    entries = native.get(f"/v1/jobs/{search_id}/results", params={"limit": 1000}).json()["data"]
    kept = sum(e["cost"] for e in entries)
    assert job["usage"]["total"] == job["usage"]["fixed"] + kept, job["usage"]
    assert len(entries) == found, (len(entries), found)


def all_items(exa, webset_id, **kw):
    items, cursor = [], None
    while True:
        page = exa.websets.items.list(webset_id, cursor=cursor, limit=7, **kw)
        items.extend(page.data)
        if not page.has_more:
            return items
        cursor = page.next_cursor


def main():
    exa = Exa(KEY, base_url=URL)
    other = Exa(OTHER, base_url=URL)

    # A webset with a first search that runs a while.
    ws = exa.websets.create(params={
        "search": {"query": "fintech companies", "count": 150,
                   "criteria": [{"description": "is a fintech company"}]},
        "title": "Fintech", "externalId": "crm-42", "metadata": {"owner": "growth"},
    })
    assert ws.status in ("running", "pending"), ws.status
    assert ws.title == "Fintech" and ws.external_id == "crm-42" and ws.metadata == {"owner": "growth"}
    first = ws.searches[0]
    assert first.count == 150

    # Items while it runs, through cursor pages and with expand=items.
    wait_for("items while running", lambda: len(exa.websets.items.list(ws.id).data) >= 8)
    running = exa.websets.get(ws.id, expand=["items"])
    assert running.status == "running", running.status
    assert running.items and running.searches[0].status == "running"
    paged = all_items(exa, ws.id)
    assert len({i.id for i in paged}) == len(paged) >= 8, "paging repeated an item"
    one = exa.websets.items.get(ws.id, paged[0].id)
    assert one.id == paged[0].id and one.source_id == first.id and one.properties.type == "company"

    # An appended search runs beside it and completes.
    second = exa.websets.searches.create(ws.id, params={"query": "devtools", "count": 3, "behavior": "append"})
    wait_for("the second search to complete",
             lambda: exa.websets.searches.get(ws.id, second.id).status == "completed")
    done = exa.websets.searches.get(ws.id, second.id)
    assert done.progress.found == 3 and done.progress.completion == 100, done.progress

    # Cancel the first search: canceled at once, items kept, nothing added afterwards.
    canceled = exa.websets.searches.cancel(ws.id, first.id)
    assert canceled.status == "canceled", canceled.status
    assert canceled.canceled_at is not None and canceled.canceled_reason is None
    time.sleep(0.5)
    kept = exa.websets.searches.get(ws.id, first.id)
    items_first = all_items(exa, ws.id, source_id=first.id)
    assert len(items_first) == kept.progress.found > 0
    time.sleep(1.0)
    assert len(all_items(exa, ws.id, source_id=first.id)) == len(items_first), \
        "an item was added after the cancel"
    billing_is_exact(first.id, len(items_first))
    expect_status(409, lambda: exa.websets.searches.cancel(ws.id, first.id))
    expect_status(409, lambda: exa.websets.searches.cancel(ws.id, second.id))
    assert len(all_items(exa, ws.id)) == len(items_first) + 3

    # With nothing running the webset is idle; cancelling it is idempotent.
    assert exa.websets.get(ws.id).status == "idle"
    assert exa.websets.cancel(ws.id).status == "idle"

    # A webset cancel reaches its running searches (reason webset_canceled).
    ws2 = exa.websets.create(params={"search": {"query": "retail", "count": 150}})
    wait_for("the second webset to run", lambda: exa.websets.get(ws2.id).status == "running")
    idle = exa.websets.cancel(ws2.id)
    assert idle.status == "idle", idle.status
    assert idle.searches[0].status == "canceled"
    assert idle.searches[0].canceled_reason == "webset_canceled", idle.searches[0].canceled_reason

    # A webset with no search.
    empty = exa.websets.create(params={"title": "later"})
    assert empty.status == "idle" and empty.searches == []

    # Every webset, newest first, through the SDK's own cursor pages of two.
    listed = list(exa.websets.list_all(limit=2))
    assert [w.id for w in listed] == [empty.id, ws2.id, ws.id], [w.id for w in listed]
    assert [len(w.searches) for w in listed] == [0, 1, 2], [len(w.searches) for w in listed]
    assert listed[2].searches[1].id == second.id and listed[2].title == "Fintech"
    first_page = exa.websets.list(limit=2)
    assert first_page.has_more and first_page.next_cursor == ws2.id, first_page
    expect_status(422, lambda: exa.websets.list(cursor=first.id))
    assert other.websets.list().data == []
    expect_status(422, lambda: other.websets.list(cursor=ws.id))

    # The tenant's event log: filtered by type, paged by cursor, one by id.
    events, cursor = [], None
    while True:
        page = exa.websets.events.list(cursor=cursor, limit=50)
        events.extend(page.data)
        if not page.has_more:
            break
        cursor = page.next_cursor
    kinds = {e.type for e in events}
    for kind in ("webset.created", "webset.search.created", "webset.item.created",
                 "webset.search.canceled", "webset.search.completed", "webset.idle"):
        assert kind in kinds, f"no {kind} in {kinds}"
    assert len({e.id for e in events}) == len(events), "event ids repeat"
    only = exa.websets.events.list(types=["webset.search.canceled", "webset.search.completed"], limit=200)
    assert {e.type for e in only.data} == {"webset.search.canceled", "webset.search.completed"}
    assert exa.websets.events.get(events[0].id).id == events[0].id

    # Another tenant sees none of it; unknown ids are 404.
    expect_status(404, lambda: other.websets.get(ws.id))
    expect_status(404, lambda: other.websets.searches.get(ws.id, first.id))
    expect_status(404, lambda: other.websets.items.list(ws.id))
    expect_status(404, lambda: other.websets.cancel(ws.id))
    expect_status(404, lambda: other.websets.events.get(events[0].id))
    assert other.websets.events.list().data == []
    expect_status(404, lambda: exa.websets.get("0" * 32))
    expect_status(404, lambda: exa.websets.searches.get(ws.id, ws2.searches[0].id))

    # Account webhooks: the secret once, list, get, update, attempts, delete; another
    # tenant sees none. (Delivery itself is tested with a receiver in profiles_webhooks.rs.)
    hook = exa.websets.webhooks.create(params={
        "events": ["webset.item.created", "webset.search.completed"],
        "url": "https://example.com/exa-hook", "metadata": {"team": "growth"},
    })
    assert hook.secret and hook.status == "active", hook
    assert [str(getattr(e, "value", e)) for e in hook.events] == \
        ["webset.item.created", "webset.search.completed"], hook.events
    got = exa.websets.webhooks.get(hook.id)
    assert got.secret is None and got.metadata == {"team": "growth"}, got
    assert [w.id for w in exa.websets.webhooks.list().data] == [hook.id]
    updated = exa.websets.webhooks.update(hook.id, params={"events": ["webset.idle"]})
    assert [str(getattr(e, "value", e)) for e in updated.events] == ["webset.idle"], updated.events
    assert exa.websets.webhooks.attempts.list(hook.id).data == []
    expect_status(404, lambda: other.websets.webhooks.get(hook.id))
    assert other.websets.webhooks.list().data == []
    assert exa.websets.webhooks.delete(hook.id).id == hook.id
    expect_status(404, lambda: exa.websets.webhooks.get(hook.id))
    print("exa-py: every check passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        raise
