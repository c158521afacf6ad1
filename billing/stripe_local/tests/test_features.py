"""Entitlement features and their attachment to products (``/v1/products/{id}/features``), which
dj-stripe lists on every product sync."""

from __future__ import annotations

import pytest
import stripe

from billing.stripe_local import StripeLocal

from .test_shape import _get, check


def test_a_products_features_are_listed_attached_and_detached(local: StripeLocal) -> None:
    product = stripe.Product.create(name="Pro")
    assert stripe.Product.list_features(product.id).data == []  # what dj-stripe reads on a sync

    feature = stripe.entitlements.Feature.create(name="AI assistant", lookup_key="ai-assistant")
    assert (feature.object, feature.active, feature.livemode) == ("entitlements.feature", True, False)
    assert feature.id.startswith("feat_")
    attached = stripe.Product.create_feature(product.id, entitlement_feature=feature.id)
    assert attached.object == "product_feature" and attached.id.startswith("prodft_")
    # Stripe returns the whole feature, not its id.
    assert attached.entitlement_feature.id == feature.id
    assert attached.entitlement_feature.lookup_key == "ai-assistant"

    listed = stripe.Product.list_features(product.id)
    assert [f.id for f in listed.data] == [attached.id]
    assert listed.url == f"/v1/products/{product.id}/features"
    assert stripe.Product.retrieve_feature(product.id, attached.id).entitlement_feature.name == "AI assistant"
    other = stripe.Product.create(name="Starter")
    assert stripe.Product.list_features(other.id).data == []
    with pytest.raises(stripe.InvalidRequestError):  # not this product's
        stripe.Product.retrieve_feature(other.id, attached.id)
    with pytest.raises(stripe.InvalidRequestError):  # attached once only
        stripe.Product.create_feature(product.id, entitlement_feature=feature.id)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe.Product.create_feature(product.id, entitlement_feature="feat_missing")
    assert unknown.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as no_product:
        stripe.Product.list_features("prod_missing")
    assert no_product.value.http_status == 404

    deleted = stripe.Product.delete_feature(product.id, attached.id)
    assert (deleted.id, deleted.deleted) == (attached.id, True)
    assert stripe.Product.list_features(product.id).data == []
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Product.retrieve_feature(product.id, attached.id)


def test_features_are_listed_filtered_and_archived(local: StripeLocal) -> None:
    ai = stripe.entitlements.Feature.create(name="AI", lookup_key="ai", metadata={"tier": "pro"})
    sso = stripe.entitlements.Feature.create(name="SSO", lookup_key="sso")
    assert ai.metadata["tier"] == "pro"
    assert [f.id for f in stripe.entitlements.Feature.list().data] == [sso.id, ai.id]
    assert [f.id for f in stripe.entitlements.Feature.list(lookup_key="sso").data] == [sso.id]
    with pytest.raises(stripe.InvalidRequestError):  # lookup keys are unique
        stripe.entitlements.Feature.create(name="AI again", lookup_key="ai")

    archived = stripe.entitlements.Feature.modify(sso.id, active=False, name="Single sign-on")
    assert (archived.active, archived.name) == (False, "Single sign-on")
    assert [f.id for f in stripe.entitlements.Feature.list(archived=True).data] == [sso.id]
    assert [f.id for f in stripe.entitlements.Feature.list(archived=False).data] == [ai.id]
    assert stripe.entitlements.Feature.retrieve(sso.id).active is False
    product = stripe.Product.create(name="Pro")
    with pytest.raises(stripe.InvalidRequestError):  # an archived feature is not attached
        stripe.Product.create_feature(product.id, entitlement_feature=sso.id)
    with pytest.raises(stripe.InvalidRequestError):  # unknown parameters refused as everywhere
        stripe.Product.create_feature(product.id, entitlement_feature=ai.id, feature=ai.id)  # type: ignore[call-arg]


def test_feature_objects_have_the_fixture_shape(local: StripeLocal) -> None:
    problems: list[str] = []
    product = stripe.Product.create(name="Pro")
    feature = stripe.entitlements.Feature.create(name="AI", lookup_key="ai")
    attached = stripe.Product.create_feature(product.id, entitlement_feature=feature.id)
    check("entitlements.feature", _get(local, f"/v1/entitlements/features/{feature.id}"), problems)
    check("product_feature", _get(local, f"/v1/products/{product.id}/features/{attached.id}"), problems)
    check("product_feature", _get(local, f"/v1/products/{product.id}/features")["data"][0], problems)
    check(
        "deleted_product_feature", stripe.Product.delete_feature(product.id, attached.id).to_dict(), problems
    )
    assert problems == []
