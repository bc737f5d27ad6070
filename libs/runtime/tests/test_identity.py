from sutazai_runtime.identity import ROLES_KEY, USER_ID_KEY, Identity, merge_metadata


def test_identity_round_trips_through_metadata() -> None:
    original = Identity("u-1", frozenset({"admin", "user"}))
    assert Identity.from_metadata(original.to_metadata()) == original
    assert original.is_admin


def test_missing_or_empty_user_id_means_no_identity() -> None:
    assert Identity.from_metadata(None) is None
    assert Identity.from_metadata([("other", "x")]) is None
    assert Identity.from_metadata([(USER_ID_KEY, "")]) is None


def test_missing_roles_default_to_user_and_blanks_are_ignored() -> None:
    identity = Identity.from_metadata([(USER_ID_KEY, "u-2"), (ROLES_KEY, " , ")])
    assert identity == Identity("u-2", frozenset({"user"}))
    assert not identity.is_admin


def test_merge_replaces_a_forged_identity_and_keeps_other_keys() -> None:
    forged = [(USER_ID_KEY, "attacker"), (ROLES_KEY, "admin"), ("traceparent", "00-abc")]
    merged = merge_metadata(Identity("u-3"), forged)
    assert ("traceparent", "00-abc") in merged
    assert Identity.from_metadata(merged) == Identity("u-3")
