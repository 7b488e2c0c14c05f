"""Drives the Parallel FindAll profile of a running `haltway serve` with the official
`parallel-web` SDK, unchanged and in strict response validation mode.

Environment: HALTWAY_URL (the server root), HALTWAY_KEY (tenant A), HALTWAY_OTHER_KEY
(tenant B). Exits non-zero, with the failed assertion, when the profile breaks the contract.
Run by tests/tests/profiles_sdk.rs.
"""

import os
import sys
import time

import httpx
import parallel
from parallel import Parallel

URL = os.environ["HALTWAY_URL"]
KEY = os.environ["HALTWAY_KEY"]
OTHER = os.environ["HALTWAY_OTHER_KEY"]


def client(key):
    return Parallel(api_key=key, base_url=URL, max_retries=0, _strict_response_validation=True)


def wait_for(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def billing_is_exact(findall_id, candidates):
    """The job's usage is its fixed cost plus the costs of the entries it kept."""
    native = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {KEY}"})
    job = native.get(f"/v1/jobs/{findall_id}").json()
    entries = native.get(f"/v1/jobs/{findall_id}/results", params={"limit": 1000}).json()["data"]
    kept = sum(e["cost"] for e in entries)
    assert job["usage"]["total"] == job["usage"]["fixed"] + kept, job["usage"]
    assert len(entries) == candidates, (len(entries), candidates)


def create(c, limit, objective="fintech companies"):
    return c.beta.findall.create(
        objective=objective,
        entity_type="company",
        generator="base",
        match_conditions=[{"name": "fintech", "description": "is a fintech company"}],
        match_limit=limit,
        metadata={"team": "growth", "priority": 2, "pilot": True},
        # Taken by the SDK's typed parameter; the deliveries are tested with a receiver in
        # profiles_webhooks.rs.
        webhook={"url": "https://example.com/parallel-hook",
                 "event_types": ["findall.run.completed"]},
    )


def main():
    c = client(KEY)
    other = client(OTHER)

    # Create: queued and active, metadata echoed.
    run = create(c, 150)
    assert run.status.status in ("queued", "running"), run.status
    assert run.status.is_active
    assert run.metadata == {"team": "growth", "priority": 2, "pilot": True}, run.metadata
    assert run.created_at

    # Partial results while it runs.
    partial = wait_for(
        "a partial result",
        lambda: (r := c.beta.findall.result(run.findall_id)).candidates and r,
    )
    assert partial.run.status.status == "running", partial.run.status
    assert all(x.match_status == "matched" for x in partial.candidates)
    assert isinstance(partial.last_event_id, str)

    # A stream held open past the 10 s heartbeat: the SDK must not break, and a
    # `findall.status` heartbeat arrives besides the state changes.
    started = time.monotonic()
    seen = list(c.beta.findall.events(run.findall_id, api_timeout=11.5))
    held = time.monotonic() - started
    assert held >= 10.5, f"the stream closed after {held:.1f} s"
    running = [e for e in seen if e.type == "findall.status" and e.data.status.status == "running"]
    assert len(running) >= 2, f"no heartbeat in {[e.type for e in seen]}"
    matched = [e for e in seen if e.type == "findall.candidate.matched"]
    assert matched, "no candidate event while running"
    last_seen = seen[-1].event_id

    # Cancel: cancelling, then cancelled; what was delivered is kept.
    c.beta.findall.cancel(run.findall_id)
    now = c.beta.findall.retrieve(run.findall_id)
    assert now.status.status in ("cancelling", "cancelled"), now.status
    done = wait_for(
        "the cancelled state",
        lambda: (r := c.beta.findall.retrieve(run.findall_id)).status.status == "cancelled" and r,
    )
    assert not done.status.is_active
    assert done.status.termination_reason == "user_cancelled", done.status
    kept = c.beta.findall.result(run.findall_id)
    assert len(kept.candidates) == done.status.metrics.matched_candidates_count > 0
    assert len(kept.candidates) >= len(partial.candidates)
    time.sleep(1.0)
    assert len(c.beta.findall.result(run.findall_id).candidates) == len(kept.candidates), \
        "a candidate was delivered after the cancel"
    billing_is_exact(run.findall_id, len(kept.candidates))

    # The stream of a terminal run replays and closes; a resume sends only later events,
    # with the same candidate ids as the result.
    replay = list(c.beta.findall.events(run.findall_id))
    assert replay[-1].type == "findall.status" and replay[-1].data.status.status == "cancelled"
    ids = [e.data.candidate_id for e in replay if e.type == "findall.candidate.matched"]
    assert ids == [x.candidate_id for x in kept.candidates], "replayed candidates differ"
    resumed = list(c.beta.findall.events(run.findall_id, last_event_id=last_seen))
    assert all(int(e.event_id) > int(last_seen) for e in resumed), resumed
    assert list(c.beta.findall.events(run.findall_id, last_event_id=replay[-1].event_id)) == []

    # 409 on a terminal cancel; 404 for an unknown run and for another tenant's.
    try:
        c.beta.findall.cancel(run.findall_id)
        raise AssertionError("a second cancel succeeded")
    except parallel.ConflictError as e:
        assert e.body["error"]["message"], e.body
    for call in (
        lambda: other.beta.findall.retrieve(run.findall_id),
        lambda: other.beta.findall.result(run.findall_id),
        lambda: other.beta.findall.cancel(run.findall_id),
        lambda: list(other.beta.findall.events(run.findall_id)),
        lambda: c.beta.findall.retrieve("0" * 32),
        lambda: c.beta.findall.retrieve("not-a-run"),
    ):
        try:
            call()
            raise AssertionError("expected a 404")
        except parallel.NotFoundError as e:
            assert e.body["type"] == "error", e.body

    # 422 for a match limit below 1.
    try:
        create(c, 0)
        raise AssertionError("match_limit 0 was accepted")
    except parallel.UnprocessableEntityError:
        pass

    # Extend a run completed at its match limit: same id, earlier candidates first.
    small = create(c, 3, "devtools companies")
    wait_for(
        "the small run to complete",
        lambda: c.beta.findall.retrieve(small.findall_id).status.status == "completed",
    )
    first = c.beta.findall.result(small.findall_id)
    assert first.run.status.termination_reason == "match_limit_met", first.run.status
    schema = c.beta.findall.extend(small.findall_id, additional_match_limit=2)
    assert schema.match_limit == 5, schema
    assert schema.objective == "devtools companies"
    wait_for(
        "the extended run to complete",
        lambda: (r := c.beta.findall.retrieve(small.findall_id)).status.status == "completed"
        and r.status.metrics.matched_candidates_count == 5,
    )
    second = c.beta.findall.result(small.findall_id)
    assert [x.candidate_id for x in second.candidates[:3]] == [x.candidate_id for x in first.candidates]
    assert len(second.candidates) == 5
    billing_is_exact(small.findall_id, 5)
    assert c.beta.findall.schema(small.findall_id).match_limit == 5
    try:
        c.beta.findall.extend(run.findall_id, additional_match_limit=1)
        raise AssertionError("a cancelled run was extended")
    except parallel.ConflictError:
        pass
    print("parallel-web: every check passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        raise
