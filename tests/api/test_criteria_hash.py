"""What a criteria hash identifies (ADR 0003): the rules — SHA-256 of the set's kind and
parameters — while the id names the set and the version its revision. A custom set registered
with a variant's parameters has the variant's hash under its own id; every decision carries all
three. The built-in sets' hashes never change: stored decisions cite them."""

from __future__ import annotations

from api_helpers import V1

# As stored in every decision made under them since the sets were published.
BUILTIN_HASHES = {
    "frank1991": "c74cd4ad66207565a38608172b2814b8231929941e20820a4420bb219fc35c73",
    "frank1991-rec26w": "3f1d8d4b8e9393c3bd4c6ec5f7ee04c04a0f9e169c04076ed9ad0b4010510673",
    "acnp2006": "9a32a58c03653ca7a79532bf8d48ec9b1948f368df88c8e409d05a2ab0290aec",
    "acnp2006-symptom": "40526afee8d86aa48cc494b5e99fc80955707aaa4d5f690a37d8af4a3cec0799",
    "nhs-talking-therapies-2024":
        "dbf26c71d59822ba9683c05fbffb370ccbdc04666af594c86f7e7c3780bc9a2f",
    "cms159": "502e3654110f11d614fba88cd7c33d00f3cd5e8a50dca1fc102f2c963ab30983",
}
HALF_UP = {"rounding": "half_up"}
CUSTOM = {"base": "frank1991", "id": "clinic-a-half-up", "params": HALF_UP,
          "source": "Clinic A scoring policy 2026"}


def test_the_builtin_hashes_are_the_published_ones(api):
    listed = {c["id"]: c["hash"] for c in api.get("/criteria")["items"]}
    assert {k: listed[k] for k in BUILTIN_HASHES} == BUILTIN_HASHES


def test_a_custom_set_with_a_variants_parameters_shares_its_hash_not_its_id(api, client):
    # Given the variant frank1991|rounding=half_up, as an episode names it
    variant = client.post("/episodes", json={"patient_ref": "pt-1", "clinic_id": "clinic-a",
                                             "criteria": "frank1991", "params": HALF_UP,
                                             "opened_on": "2026-01-05"}).json()["criteria"]
    # When a clinic registers a custom set with the same parameters
    custom = client.post("/criteria", json=CUSTOM).json()
    # Then the rules are the same (same hash), the sets are not (own id and version)
    assert variant["id"] == "frank1991|rounding=half_up"
    assert custom["id"] == "clinic-a-half-up"
    assert custom["hash"] == variant["hash"]
    assert variant["hash"] not in BUILTIN_HASHES.values()  # a variant's rules are its own
    assert (custom["version"], variant["version"]) == ("1.0.0", "1.0.0-draft")


def test_every_decision_cites_id_version_and_hash_and_the_id_tells_equal_rules_apart(api,
                                                                                    client):
    # Given an episode staged under the variant
    episode_id = api.open(criteria="frank1991", params=HALF_UP)
    api.record_all(episode_id, V1[:4])
    custom = client.post("/criteria", json=CUSTOM).json()
    (response,) = api.get(f"/episodes/{episode_id}/stages")["events"]
    assert response["criteria"] == {"id": "frank1991|rounding=half_up",
                                    "version": "1.0.0-draft", "hash": custom["hash"]}
    # When the clinic adopts its custom set, whose rules are the same
    adopted = client.post(f"/episodes/{episode_id}/criteria",
                          json={"criteria": "clinic-a-half-up", "reason": "clinic policy"})
    # Then it is an adoption (another set), which withdraws and asserts nothing (same rules)
    assert adopted.status_code == 200
    assert (adopted.json()["retracted"], adopted.json()["stage_events"]) == ([], [])
    assert api.get(f"/episodes/{episode_id}")["criteria"] == {
        "id": "clinic-a-half-up", "version": "1.0.0", "hash": custom["hash"]}
    trail = [e["type"] for e in api.get(f"/episodes/{episode_id}/audit")["items"]]
    assert trail[-1] == "CriteriaAdopted"
