"""Which RemediationPolicy governs a namespace: the most specific, and dryRun is contagious."""

from remediator.core.match.policy_select import effective_policy

ALL = ("all", {"mode": "enforce"})
GLOB = ("glob", {"namespaces": ["shop-*"], "blastRadius": {"maxPods": 2}})
EXACT = ("exact", {"namespaces": ["shop-a"], "blastRadius": {"maxPods": 1}})
PROD = ("prod", {"namespaceSelector": {"matchLabels": {"environment": "production"}},
                 "blastRadius": {"maxPods": 3}})


def test_no_policy_applies_to_an_unlisted_namespace():
    assert effective_policy([GLOB, EXACT], "billing") is None


def test_a_policy_naming_the_namespace_beats_globs_and_cluster_wide_ones():
    assert effective_policy([ALL, GLOB, EXACT], "shop-a").blast_radius.max_pods == 1
    assert effective_policy([ALL, GLOB, EXACT], "shop-b").blast_radius.max_pods == 2


def test_a_selector_policy_applies_only_to_namespaces_with_its_labels():
    assert effective_policy([PROD], "web", {"environment": "production"}).blast_radius.max_pods == 3
    assert effective_policy([PROD], "web", {"environment": "staging"}) is None


def test_any_dry_run_policy_among_those_that_apply_makes_the_outcome_dry_run():
    dry = ("zz-dry", {"mode": "dryRun"})
    chosen = effective_policy([EXACT, dry], "shop-a")
    assert chosen.mode == "dryRun" and chosen.blast_radius.max_pods == 1


def test_an_invalid_stored_policy_is_ignored_rather_than_crashing_the_loop():
    assert effective_policy([("broken", {"mode": "sometimes"}), EXACT], "shop-a").blast_radius.max_pods == 1


def test_caps_take_the_strictest_applicable_bound_and_the_blast_radius():
    from remediator.api.models import RemediationPolicySpec
    from remediator.core.match.policy_select import caps_for

    policy = RemediationPolicySpec.model_validate({
        "blastRadius": {"maxPods": 4},
        "bounds": [{"namespaces": ["shop-*"], "maxReplicas": 20, "maxMemory": "4Gi"},
                   {"namespaces": ["shop-a"], "maxReplicas": 8, "maxMemory": "1536Mi"},
                   {"namespaces": ["billing"], "maxReplicas": 2}]})
    caps = caps_for(policy, "shop-a")
    assert (caps.max_replicas, caps.max_memory, caps.max_pods) == (8, "1536Mi", 4)
    assert caps_for(None, "shop-a").max_replicas is None
