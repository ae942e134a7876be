"""The pages' forms beyond the browser: a script's bearer token posts them without a session
(CSRF guards ambient cookies only), and a form past the bound on fields is a 400 page, never a
500."""
# ruff: noqa: F811  (the fixtures imported from test_episode_http are the parameters)

from __future__ import annotations

from uuid import UUID

from test_episode_http import (  # noqa: F401  (fixtures)
    bearer,
    client,
    csrf_of,
    episode,
    page_of,
    settings,
    sign_in,
    version,
)


def test_a_bearer_token_posts_a_form_without_a_session_or_csrf_token(client, settings, episode):
    before = version(client, episode)
    reply = client.post(f"/ui/episodes/{episode}/assessments", headers=bearer(settings), data={
        "instrument": "PHQ-9", "administered_on": "2026-03-09",
        **{f"item_{i}": "1" for i in range(1, 10)}}, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    assert version(client, episode) > before
    (latest,) = [a for a in client.app.state.services.app.assessments(UUID(episode))
                 if a.administered_on.isoformat() == "2026-03-09"]
    assert latest.total == 9 and latest.recorded_by == "dr-lee"


def test_a_bearer_token_of_the_wrong_role_is_refused_before_anything_is_read(
        client, settings, episode):
    before = version(client, episode)
    reply = client.post(f"/ui/episodes/{episode}/assessments",
                        headers=bearer(settings, sub="auditor-ng", roles=("auditor",)),
                        data={"instrument": "PHQ-9", "administered_on": "2026-03-09",
                              "total": "9"}, follow_redirects=False)
    assert reply.status_code == 403 and version(client, episode) == before


def test_a_session_without_the_csrf_field_is_still_refused(client, episode):
    sign_in(client)
    before = version(client, episode)
    reply = client.post(f"/ui/episodes/{episode}/assessments", data={
        "instrument": "PHQ-9", "administered_on": "2026-03-09", "total": "9"},
        follow_redirects=False)
    assert reply.status_code == 400 and version(client, episode) == before


def test_a_form_of_too_many_fields_is_a_400_page(client, episode):
    sign_in(client)
    csrf = csrf_of(page_of(client, episode))
    before = version(client, episode)
    body = "&".join([f"csrf={csrf}"] + [f"x{i}=1" for i in range(100)])
    reply = client.post(f"/ui/episodes/{episode}/assessments", content=body,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 400 and "too many fields" in reply.text
    assert version(client, episode) == before
